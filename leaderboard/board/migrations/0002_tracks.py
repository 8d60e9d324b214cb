"""The two tracks. The container track stays closed until the container runner is deployed."""

from django.db import migrations

TRACKS = [
    (
        "prediction-file",
        "Prediction file",
        "Upload a CSV of predictions on the test split; the platform scores it.",
        True,
    ),
    (
        "container",
        "Container",
        "Submit a Docker image; the platform runs it with no network, read-only and "
        "unprivileged, once per missing-modality scenario, and scores its output.",
        False,
    ),
]


def add_tracks(apps, schema_editor):
    Track = apps.get_model("board", "Track")
    for slug, title, description, is_open in TRACKS:
        Track.objects.update_or_create(
            slug=slug, defaults={"title": title, "description": description, "is_open": is_open}
        )


class Migration(migrations.Migration):
    dependencies = [("board", "0001_initial")]

    operations = [migrations.RunPython(add_tracks, migrations.RunPython.noop)]
