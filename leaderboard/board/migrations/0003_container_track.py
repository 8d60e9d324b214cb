"""The container track opens: runs of an image are recorded on their evaluation."""

from django.db import migrations, models


def open_container_track(apps, schema_editor):
    Track = apps.get_model("board", "Track")
    Track.objects.filter(slug="container").update(
        is_open=True,
        description=(
            "Upload your model as a `docker save` archive; the platform runs it with no "
            "network, read-only and unprivileged, once per missing-modality scenario, and "
            "scores its output: the robustness results are verified."
        ),
    )


def close_container_track(apps, schema_editor):
    apps.get_model("board", "Track").objects.filter(slug="container").update(is_open=False)


class Migration(migrations.Migration):
    dependencies = [("board", "0002_tracks")]

    operations = [
        migrations.AddField(
            model_name="evaluation",
            name="container_run_id",
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.AddField(
            model_name="evaluation",
            name="container_run",
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="evaluation",
            name="container_logs",
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.RunPython(open_container_track, close_container_track),
    ]
