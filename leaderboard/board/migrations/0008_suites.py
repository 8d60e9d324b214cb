"""Suites as data: a Suite table, each benchmark of a suite with the declaration it makes,
one current benchmark per suite, and task slugs without a fixed list. Benchmarks registered
before are MedMod's."""

import django.db.models.deletion
from django.db import migrations, models


def medmod_for_existing(apps, schema_editor):
    from benchmark_data.tasks import MEDMOD

    Suite = apps.get_model("board", "Suite")
    Benchmark = apps.get_model("board", "Benchmark")
    if not Benchmark.objects.exists():
        return
    suite, _ = Suite.objects.get_or_create(
        slug=MEDMOD.slug, defaults={"title": MEDMOD.title, "description": MEDMOD.description}
    )
    Benchmark.objects.filter(suite__isnull=True).update(suite=suite, suite_spec=dict(MEDMOD.spec))


class Migration(migrations.Migration):
    dependencies = [
        ("board", "0007_submission_streamed"),
    ]

    operations = [
        migrations.CreateModel(
            name="Suite",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("slug", models.SlugField(max_length=40, unique=True)),
                ("title", models.CharField(max_length=200)),
                ("description", models.TextField(blank=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
            options={"ordering": ["created_at", "id"]},
        ),
        migrations.AddField(
            model_name="benchmark",
            name="suite",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="benchmarks",
                to="board.suite",
            ),
        ),
        migrations.AddField(
            model_name="benchmark",
            name="suite_spec",
            field=models.JSONField(default=dict),
        ),
        migrations.RunPython(medmod_for_existing, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="benchmark",
            name="suite",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="benchmarks",
                to="board.suite",
            ),
        ),
        migrations.RemoveConstraint(model_name="benchmark", name="one_current_benchmark"),
        migrations.AddConstraint(
            model_name="benchmark",
            constraint=models.UniqueConstraint(
                condition=models.Q(("is_current", True)),
                fields=("suite", "is_current"),
                name="one_current_benchmark_per_suite",
            ),
        ),
        migrations.RemoveConstraint(model_name="task", name="task_slug_known"),
        migrations.AlterField(
            model_name="task",
            name="slug",
            field=models.CharField(max_length=40),
        ),
        migrations.AddConstraint(
            model_name="task",
            constraint=models.CheckConstraint(
                condition=models.Q(("slug__regex", "^[a-z0-9][a-z0-9_-]{0,38}$")),
                name="task_slug_form",
            ),
        ),
    ]
