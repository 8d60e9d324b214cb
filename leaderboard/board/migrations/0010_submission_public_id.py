"""Entries get an opaque public identifier (``Submission.public_id``), filled here for the
entries already stored, each with a fresh random value."""

from django.db import migrations, models
from django.db.models import Q

import leaderboard.board.models


def fill_public_ids(apps, schema_editor):
    Submission = apps.get_model("board", "Submission")
    taken: set[str] = set()
    for sub in Submission.objects.filter(public_id__isnull=True).only("pk").iterator():
        public_id = leaderboard.board.models.new_public_id()
        while public_id in taken:
            public_id = leaderboard.board.models.new_public_id()
        taken.add(public_id)
        Submission.objects.filter(pk=sub.pk).update(public_id=public_id)


class Migration(migrations.Migration):
    dependencies = [("board", "0009_submission_modalities")]

    operations = [
        migrations.AddField(
            model_name="submission",
            name="public_id",
            field=models.CharField(max_length=12, null=True, editable=False),
        ),
        migrations.RunPython(fill_public_ids, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="submission",
            name="public_id",
            field=models.CharField(
                default=leaderboard.board.models.new_public_id,
                editable=False,
                max_length=12,
                unique=True,
            ),
        ),
        migrations.AddConstraint(
            model_name="submission",
            constraint=models.CheckConstraint(
                condition=Q(public_id__regex="^[a-z][a-z2-7]{11}$"), name="public_id_form"
            ),
        ),
    ]
