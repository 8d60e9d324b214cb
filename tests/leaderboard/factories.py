"""factory_boy factories for the platform's models.

Evaluations made here carry a summary and per-replicate values drawn from a seeded
generator: test data for the ranking and the list pages, in the shape the scorer writes.
"""

from __future__ import annotations

import hashlib

import factory
import numpy as np
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.utils import timezone

from benchmark_data.tasks import MEDMOD
from leaderboard.board.models import (
    Account,
    Benchmark,
    Evaluation,
    Submission,
    Suite,
    Task,
    Track,
)
from leaderboard.board.services.identity import account_create
from scoring.report import summarize
from scoring.report_types import REPORT_SCHEMA
from scoring.version import SCORER_VERSION


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.org")
    password = factory.django.Password("a-long-test-password")

    @factory.post_generation
    def email_confirmed(obj, create, extracted, **kwargs):
        """A confirmed address (a verified identity) unless ``email_confirmed=False``."""
        if not create or not obj.email or Account.objects.filter(user=obj).exists():
            return
        account_create(user=obj, email=obj.email, confirmed=extracted is not False)


class SuiteFactory(factory.django.DjangoModelFactory):
    """MedMod's suite row (the one the factories' benchmarks declare)."""

    class Meta:
        model = Suite
        django_get_or_create = ("slug",)

    slug = "medmod"
    title = "MedMod"


class BenchmarkFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Benchmark

    suite = factory.SubFactory(SuiteFactory)
    suite_spec = factory.LazyFunction(lambda: dict(MEDMOD.spec))
    name = "medmod-synthetic"
    version = factory.Sequence(lambda n: f"test-{n}")
    manifest_hash = factory.Sequence(lambda n: hashlib.sha256(f"bench{n}".encode()).hexdigest())
    uri = "/nonexistent/benchmark"
    manifest = factory.LazyFunction(lambda: {"seed": 42, "source": {"kind": "synthetic"}})
    is_current = True


def _current_benchmark():
    return Benchmark.objects.filter(is_current=True).first() or BenchmarkFactory()


class TaskFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Task
        django_get_or_create = ("benchmark", "slug")

    benchmark = factory.LazyFunction(_current_benchmark)
    slug = "in-hospital-mortality"
    n_test_units = 390


def _prediction_track():
    from tests.leaderboard.conftest import ensure_tracks

    ensure_tracks()
    return Track.objects.get(slug=Track.PREDICTION_FILE)


class SubmissionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Submission

    owner = factory.SubFactory(UserFactory)
    task = factory.SubFactory(TaskFactory)
    track = factory.LazyFunction(_prediction_track)
    method_name = factory.Sequence(lambda n: f"Method {n}")
    uses_ehr = True
    uses_cxr = True
    training_data = "The benchmark's train and validation splits only."
    file = factory.LazyAttribute(
        lambda s: ContentFile(b"stay_id,prediction\n1,0.5\n", name=f"{s.method_name}.csv")
    )
    sha256 = factory.Sequence(lambda n: hashlib.sha256(f"file{n}".encode()).hexdigest())
    size = 24
    status = Submission.Status.PUBLISHED
    visibility = Submission.Visibility.PUBLIC


def fake_scores(value: float, *, seed: int, replicates: int = 1000) -> dict:
    """Summary and replicate values of a result centred on ``value``."""
    rng = np.random.default_rng(seed)
    reps = np.clip(value + rng.normal(0, 0.02, size=replicates), 0, 1)
    lo, hi = np.quantile(reps, [0.025, 0.975])
    metrics = {
        "auroc": {"value": value, "ci": [float(lo), float(hi)]},
        "auprc": {"value": value / 2, "ci": [float(lo) / 2, float(hi) / 2]},
        "brier": {"value": 0.1, "ci": [0.09, 0.11]},
    }
    summary = {
        "primary_metric": "auroc",
        "value": value,
        "ci": [float(lo), float(hi)],
        "scenario": "paired",
        "metrics": metrics,
        "robustness": {
            "audc": {"value": value * 0.9, "ci": [0.5, 0.9]},
            "drop_cxr_missing_100": {"value": -0.05, "ci": [-0.08, -0.02], "p": 0.01},
        },
        "fairness": {"max_gap": 0.07, "attributes": {}},
    }
    return {
        "summary": summary,
        "replicate_values": [round(float(r), 7) for r in reps],
        "ci": (float(lo), float(hi)),
    }


def fake_report(
    value: float,
    *,
    seed: int,
    replicates: int = 1000,
    scorer_version: str = SCORER_VERSION,
    benchmark_hash: str = "",
    summary: dict | None = None,
) -> dict:
    """A whole score report of the current version, centred on ``value`` (the scenario
    ``paired`` only, no fairness groups, no curves): what the reader takes for a report."""
    scores = fake_scores(value, seed=seed, replicates=replicates)
    metrics = scores["summary"]["metrics"]
    levels = [f"cxr_missing_{p}" for p in MEDMOD.modality("cxr").withheld_levels]
    report = {
        "schema": REPORT_SCHEMA, "task": "in-hospital-mortality",
        "scorer_version": scorer_version, "seed": seed, "replicates": replicates,
        "resampling": "patients (subject_id)", "ci": "percentile, 95%",
        "benchmark": {"name": "synthetic", "version": "1", "hash": benchmark_hash},
        "predictions": {"sha256": "0" * 64, "size": 1000, "rows": 400, "form": "probability",
                        "scenarios": ["paired"]},
        "threshold": 0.5, "primary_metric": "auroc", "greater_is_better": True,
        "main_scenario": "paired",
        "scenarios": {"paired": {
            "n_units": 400, "n_patients": 400, "metrics": metrics, "degenerate_replicates": {},
            "replicates": scores["replicate_values"], "prevalence": 0.2,
            "n_predicted_positive": 100,
        }},
        "fairness": {"metric": "auroc", "threshold": 0.5, "scenario": "paired",
                     "min_group_size": {"units": 50, "patients": 50, "per_class": 10},
                     "attributes": {}, "intersections": {}},
        "robustness": {"metric": "auroc", "scenarios_scored": ["paired"],
                       "scenarios_missing": levels, "drops": {}, "curve": [], "audc": None,
                       "modality": "cxr", "modality_title": "Chest X-ray"},
        "curves": {}, "plots": {},
    }  # fmt: skip
    report["summary"] = summary if summary is not None else summarize(report)
    return report


class EvaluationFactory(factory.django.DjangoModelFactory):
    """A finished, successful run under the current scorer version."""

    class Meta:
        model = Evaluation

    class Params:
        value = 0.8
        seed = factory.Sequence(lambda n: n)

    submission = factory.SubFactory(SubmissionFactory)
    status = Evaluation.Status.SUCCEEDED
    trigger = Evaluation.Trigger.SUBMISSION
    scorer_version = SCORER_VERSION
    benchmark_hash = factory.LazyAttribute(lambda e: e.submission.task.benchmark.manifest_hash)
    replicates = 1000
    seed = 12345
    form = "probability"
    primary_metric = "auroc"
    run_token = factory.Faker("uuid4")
    finished_at = factory.LazyFunction(timezone.now)
    duration_seconds = 2.5

    @factory.lazy_attribute
    def summary(self):
        return fake_scores(self.value, seed=self.seed)["summary"]

    @factory.lazy_attribute
    def replicate_values(self):
        return fake_scores(self.value, seed=self.seed)["replicate_values"]

    @factory.lazy_attribute
    def primary_value(self):
        return self.value

    @factory.lazy_attribute
    def primary_ci_low(self):
        return fake_scores(self.value, seed=self.seed)["ci"][0]

    @factory.lazy_attribute
    def primary_ci_high(self):
        return fake_scores(self.value, seed=self.seed)["ci"][1]

    @factory.lazy_attribute
    def report(self):
        return fake_report(self.value, seed=self.seed, scorer_version=self.scorer_version,
                           benchmark_hash=self.benchmark_hash or "")  # fmt: skip
