from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("board", "0013_notifications"),
    ]

    operations = [
        migrations.AddField(
            model_name="submission",
            name="needs_gpu",
            field=models.BooleanField(default=False, verbose_name="needs a GPU"),
        ),
        migrations.CreateModel(
            name="WorkerHost",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "name",
                    models.CharField(help_text="the Celery node name", max_length=200, unique=True),
                ),
                (
                    "queues",
                    models.JSONField(blank=True, default=list, help_text="kinds of work it serves"),
                ),
                ("concurrency", models.PositiveIntegerField(default=1)),
                ("gpus", models.PositiveIntegerField(default=0)),
                ("started_at", models.DateTimeField(blank=True, null=True)),
                ("last_seen", models.DateTimeField(blank=True, db_index=True, null=True)),
                ("drained", models.BooleanField(default=False)),
                ("drained_at", models.DateTimeField(blank=True, null=True)),
                ("drain_note", models.CharField(blank=True, max_length=300)),
            ],
            options={"ordering": ["name"]},
        ),
    ]
