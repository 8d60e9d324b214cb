"""An entry's inputs as the list of its suite's modality slugs (a suite may declare more
than EHR and CXR); entries made before say ehr and cxr through two booleans."""

from django.db import migrations, models


def from_booleans(apps, schema_editor):
    Submission = apps.get_model("board", "Submission")
    for pk, ehr, cxr in Submission.objects.values_list("pk", "uses_ehr", "uses_cxr").iterator():
        used = [m for m, on in (("ehr", ehr), ("cxr", cxr)) if on]
        Submission.objects.filter(pk=pk).update(modalities=used)


class Migration(migrations.Migration):
    dependencies = [("board", "0008_suites")]

    operations = [
        migrations.AddField(
            model_name="submission",
            name="modalities",
            field=models.JSONField(default=list, help_text="modality slugs of the suite"),
        ),
        migrations.RunPython(from_booleans, migrations.RunPython.noop),
        migrations.RemoveConstraint(model_name="submission", name="uses_a_modality"),
        migrations.AddConstraint(
            model_name="submission",
            constraint=models.CheckConstraint(
                condition=~models.Q(modalities=[]), name="uses_a_modality"
            ),
        ),
    ]
