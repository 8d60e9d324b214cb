"""Reference baselines trained in the background: one job per model and task (BaselineJob)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("board", "0010_submission_public_id"),
    ]

    operations = [
        migrations.CreateModel(
            name="BaselineJob",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("task", models.CharField(blank=True, max_length=64)),
                ("model", models.CharField(blank=True, max_length=64)),
                (
                    "label",
                    models.CharField(help_text="what the home page calls it", max_length=200),
                ),
                ("position", models.PositiveIntegerField(default=0, help_text="order of the plan")),
                ("needs", models.JSONField(blank=True, default=list)),
                ("run_dir", models.CharField(max_length=500)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("waiting", "Waiting for the models it builds on"),
                            ("queued", "Queued"),
                            ("running", "Running"),
                            ("done", "On the board"),
                            ("failed", "Failed"),
                        ],
                        default="waiting",
                        max_length=8,
                    ),
                ),
                ("message", models.TextField(blank=True)),
                (
                    "submissions",
                    models.JSONField(blank=True, default=list, help_text="public ids entered"),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("queued_at", models.DateTimeField(blank=True, null=True)),
                ("started_at", models.DateTimeField(blank=True, null=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                (
                    "benchmark",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="baseline_jobs",
                        to="board.benchmark",
                    ),
                ),
            ],
            options={
                "ordering": ["benchmark", "position"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("benchmark", "task", "model"), name="baselinejob_one_per_model"
                    )
                ],
            },
        ),
    ]
