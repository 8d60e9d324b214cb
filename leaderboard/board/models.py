"""Data of the platform: fields, states and the constraints the database enforces.

Workflows live in ``services/``; reads in ``selectors/``.
"""

from __future__ import annotations

import functools
import json
import secrets
import uuid
from typing import Any

from django.conf import settings
from django.db import IntegrityError, models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from benchmark_data.suite import Suite as SuiteSpec
from benchmark_data.suite import Task as TaskSpec
from benchmark_data.suite import parse_suite
from benchmark_data.tasks import MEDMOD, METRICS

# The suite a request means when it names none (the boards' URLs predate suites).
DEFAULT_SUITE = MEDMOD.slug


@functools.lru_cache(maxsize=64)
def _parsed(spec_json: str) -> SuiteSpec:
    return parse_suite(json.loads(spec_json))


class SubmissionStatus(models.TextChoices):
    SUBMITTED = "submitted", "Submitted"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SCORED = "scored", "Scored"
    PUBLISHED = "published", "Published"
    FAILED = "failed", "Failed"


class Visibility(models.TextChoices):
    PUBLIC = "public", "Public: published once scored"
    PRIVATE = "private", "Private: only you see it"
    HIDDEN = "hidden", "Hidden by the organizers"


class FailureKind(models.TextChoices):
    NONE = "", "None"
    INPUT = "input", "Problem in the submitted file"
    SYSTEM = "system", "Problem on the platform's side"


class EvaluationStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class Trigger(models.TextChoices):
    SUBMISSION = "submission", "New submission"
    RESCORE = "rescore", "Re-score"
    BASELINE = "baseline", "Reference baseline"


class AuditAction(models.TextChoices):
    SUBMISSION_CREATE = "submission.create", "Submission created"
    SUBMISSION_PUBLISH = "submission.publish", "Submission published"
    SUBMISSION_UNPUBLISH = "submission.unpublish", "Submission withdrawn from the board"
    SUBMISSION_HIDE = "submission.hide", "Submission hidden"
    RESCORE = "evaluation.rescore", "Re-score requested"
    EVALUATION_REQUEUE = "evaluation.requeue", "Stalled run re-queued"
    EVALUATION_ABANDON = "evaluation.abandon", "Stalled run given up"
    BENCHMARK_LOAD = "benchmark.load", "Benchmark registered"
    BENCHMARK_CURRENT = "benchmark.current", "Benchmark made current"
    BASELINE_LOAD = "baseline.load", "Reference baseline loaded"
    TOKEN_RESET = "token.reset", "API token regenerated"


class Suite(models.Model):
    """A benchmark suite (MedMod, Yu et al., ...): its benchmarks declare its tasks
    (``public/suite.json``); the platform keeps one current benchmark per suite."""

    slug = models.SlugField(max_length=40, unique=True)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return self.title


class Benchmark(models.Model):
    """A registered benchmark version (a directory or S3 prefix with a manifest)."""

    suite = models.ForeignKey(Suite, on_delete=models.PROTECT, related_name="benchmarks")
    # The suite's declaration as this benchmark makes it (public/suite.json).
    suite_spec = models.JSONField(default=dict)
    name = models.CharField(max_length=100)
    version = models.CharField(max_length=100)
    manifest_hash = models.CharField(max_length=64, unique=True)
    uri = models.CharField("location", max_length=500)
    credentialed_uri = models.CharField(
        "location of the credentialed part", max_length=500, blank=True
    )
    # The manifest without its file list (counts, source, seed), for display.
    manifest = models.JSONField(default=dict)
    n_files = models.PositiveIntegerField(default=0)
    is_current = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="benchmark_name_version"),
            models.UniqueConstraint(
                fields=["suite", "is_current"],
                condition=Q(is_current=True),
                name="one_current_benchmark_per_suite",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.version}"

    @functools.cached_property
    def suite_declaration(self) -> SuiteSpec:
        """The parsed declaration (cached per content); MedMod's for a benchmark stored
        without one."""
        if not self.suite_spec:
            return MEDMOD
        return _parsed(json.dumps(self.suite_spec, sort_keys=True))


class Task(models.Model):
    """A task of a benchmark's suite, as scored on that benchmark."""

    benchmark = models.ForeignKey(Benchmark, on_delete=models.PROTECT, related_name="tasks")
    slug = models.CharField(max_length=40)
    n_test_units = models.PositiveIntegerField(default=0)
    # Scored on every test unit, through the streaming gateway only: the public test files
    # hold no units of the task (docs/benchmark-format.md, "The test split").
    gateway_only = models.BooleanField(default=False)

    class Meta:
        ordering = ["benchmark", "id"]
        constraints = [
            models.UniqueConstraint(fields=["benchmark", "slug"], name="task_per_benchmark"),
            models.CheckConstraint(
                condition=Q(slug__regex=r"^[a-z0-9][a-z0-9_-]{0,38}$"), name="task_slug_form"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.slug} ({self.benchmark})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        declared = self.benchmark.suite_declaration.task_slugs
        if self.slug not in declared:
            raise IntegrityError(
                f"task {self.slug!r} is not declared by the suite of {self.benchmark} "
                f"({', '.join(declared)})"
            )
        super().save(*args, **kwargs)

    @property
    def spec(self) -> TaskSpec:
        return self.benchmark.suite_declaration.task(self.slug)

    @property
    def suite_slug(self) -> str:
        return self.benchmark.suite_declaration.slug

    @property
    def board_url(self) -> str:
        """The board's page: ``/suites/{suite}/tasks/{slug}/``, or ``/tasks/{slug}/`` for
        the default suite (MedMod, whose boards had that address before suites)."""
        from django.urls import reverse

        if self.suite_slug == DEFAULT_SUITE:
            return reverse("task-board", args=[self.slug])
        return reverse("suite-task-board", args=[self.suite_slug, self.slug])

    @property
    def leaderboard_api_url(self) -> str:
        """The board's CSV/JSON export, under the suite like the page."""
        from django.urls import reverse

        if self.suite_slug == DEFAULT_SUITE:
            return reverse("api-leaderboard", args=[self.slug])
        return reverse("api-suite-leaderboard", args=[self.suite_slug, self.slug])

    @property
    def title(self) -> str:
        return self.spec.title

    @property
    def primary_metric(self) -> str:
        return self.spec.primary_metric

    @property
    def greater_is_better(self) -> bool:
        return METRICS[self.spec.primary_metric].greater_is_better


TRACK_PREDICTION_FILE = "prediction-file"
TRACK_CONTAINER = "container"
VERIFIED = "verified"
SELF_REPORTED = "self-reported scenarios"


def verification_label(track_slug: str, streamed: bool = False) -> str:
    """Who produced an entry's predictions: the platform, which ran the model causally
    through the streaming gateway in every scenario (container entries and the streamed
    reference baselines, ``verified``), or the submitter, who held the inputs (the rows of
    a prediction file)."""
    return VERIFIED if track_slug == TRACK_CONTAINER or streamed else SELF_REPORTED


class Track(models.Model):
    """How entries are submitted: prediction files, or container images run by the platform."""

    PREDICTION_FILE = TRACK_PREDICTION_FILE
    CONTAINER = TRACK_CONTAINER
    SLUGS = [(TRACK_PREDICTION_FILE, "Prediction file"), (TRACK_CONTAINER, "Container")]

    slug = models.CharField(max_length=40, unique=True, choices=SLUGS)
    title = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    is_open = models.BooleanField(default=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(slug__in=[TRACK_PREDICTION_FILE, TRACK_CONTAINER]),
                name="track_slug_known",
            )
        ]

    def __str__(self) -> str:
        return self.title


def modalities_label(slugs: list[str]) -> str:
    """``EHR + CXR + Notes``: the short names of modality slugs."""
    return " + ".join(s.upper() if s in ("ehr", "cxr") else s.capitalize() for s in slugs)


# An entry's public identifier: 12 characters of lowercase base32 from ``secrets``, the first
# a letter (so that it never reads as a number, the entries' old addresses). About 2^59
# values: not derived from the primary key or the time, so ids neither count the entries
# nor can be walked.
PUBLIC_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
PUBLIC_ID_PATTERN = r"[a-z][a-z2-7]{11}"


def new_public_id() -> str:
    """A fresh random public identifier of an entry."""
    return secrets.choice(PUBLIC_ID_ALPHABET[:26]) + "".join(
        secrets.choice(PUBLIC_ID_ALPHABET) for _ in range(11)
    )


class Submission(models.Model):
    """An entry: a prediction file for one task, its description, and where it stands.

    ``public_id`` names it in every address and API field; the primary key stays inside.
    """

    Status = SubmissionStatus
    Visibility = Visibility
    FailureKind = FailureKind

    ACTIVE_STATUSES = (Status.SUBMITTED, Status.QUEUED, Status.RUNNING)

    public_id = models.CharField(max_length=12, unique=True, default=new_public_id, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="submissions"
    )
    task = models.ForeignKey(Task, on_delete=models.PROTECT, related_name="submissions")
    track = models.ForeignKey(Track, on_delete=models.PROTECT, related_name="submissions")

    method_name = models.CharField(max_length=120)
    # The entry's team: its owner's team when it was entered. PROTECT: a team with entries
    # is never deleted, so no board row loses its team. ``team_name`` keeps the name as
    # shown when the entry was made (and the platform's "Platform reference").
    team = models.ForeignKey(
        "Team", on_delete=models.PROTECT, null=True, blank=True, related_name="submissions"
    )
    team_name = models.CharField(max_length=120, blank=True)
    description = models.TextField(blank=True)
    paper_url = models.URLField(max_length=500, blank=True)
    code_url = models.URLField(max_length=500, blank=True)
    # The inputs the entry says it uses: slugs of its suite's modalities, in the suite's
    # order. uses_ehr and uses_cxr restate two of them for MedMod's board filters.
    modalities = models.JSONField(default=list, help_text="modality slugs of the suite")
    uses_ehr = models.BooleanField("uses the ICU time series (EHR)")
    uses_cxr = models.BooleanField("uses the chest X-rays (CXR)")
    training_data = models.TextField(
        "training data statement",
        help_text="Which data trained the model, and confirmation that no test subject was used.",
    )
    threshold = models.FloatField(
        null=True, blank=True, help_text="Decision threshold for threshold metrics (default 0.5)."
    )

    file = models.FileField(max_length=300)
    original_filename = models.CharField(max_length=255, blank=True)
    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField()

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SUBMITTED)
    failure_kind = models.CharField(
        max_length=8, choices=FailureKind.choices, blank=True, default=FailureKind.NONE
    )
    failure_code = models.CharField(max_length=64, blank=True)
    failure_reason = models.TextField(blank=True)
    visibility = models.CharField(
        max_length=8, choices=Visibility.choices, default=Visibility.PUBLIC
    )
    is_reference = models.BooleanField(default=False)
    # The platform ran the model through the streaming gateway itself (its reference
    # baselines, python -m leaderboard.containers stream-baselines): verified and causal.
    streamed = models.BooleanField(default=False)
    # A container entry that asks for a GPU: its runs go to the GPU runs' queue, and the
    # engine gives its container one GPU (docs/containers.md).
    needs_gpu = models.BooleanField("needs a GPU", default=False)
    # A reference model trained with this share of the training and validation stays'
    # chest X-rays withheld (the training-missingness sweep, docs/baselines.md): a variant
    # of a reference entry, shown on the robustness view's curve and never ranked.
    train_missing_rate = models.FloatField(
        "share of training stays without their image", null=True, blank=True
    )

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    scored_at = models.DateTimeField(null=True, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)

    # Not columns: what the selectors set on the entries they return with their runs
    # (selectors.submissions: LATEST_FIELDS, PENDING_FIELDS), and the queue position the
    # pages that list entries set. Declared for the type checker only: an entry read
    # otherwise has none of them.
    latest_evaluation_id: int | None
    latest_value: float | None
    latest_ci_low: float | None
    latest_ci_high: float | None
    latest_metric: str | None
    latest_scorer_version: str | None
    pending_evaluation_id: int | None
    pending_evaluation_status: str | None
    queue_position: int | None

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["owner", "task", "created_at"], name="submission_quota_idx"),
            models.Index(fields=["task", "status"], name="submission_board_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=SubmissionStatus.values), name="submission_status_known"
            ),
            models.CheckConstraint(
                condition=Q(visibility__in=Visibility.values),
                name="submission_visibility_known",
            ),
            models.CheckConstraint(
                condition=Q(failure_kind__in=FailureKind.values),
                name="submission_failure_kind_known",
            ),
            # Only a public entry is on the leaderboard.
            models.CheckConstraint(
                condition=~Q(status="published") | Q(visibility="public"),
                name="published_is_public",
            ),
            # A failed entry always says why; others carry no failure.
            models.CheckConstraint(
                condition=(Q(status="failed") & ~Q(failure_reason="") & ~Q(failure_kind=""))
                | (~Q(status="failed") & Q(failure_kind="")),
                name="failure_has_reason",
            ),
            models.CheckConstraint(condition=~Q(modalities=[]), name="uses_a_modality"),
            models.CheckConstraint(
                condition=Q(threshold__isnull=True) | Q(threshold__gte=0, threshold__lte=1),
                name="threshold_in_unit_interval",
            ),
            models.CheckConstraint(condition=Q(size__gte=0), name="size_not_negative"),
            models.CheckConstraint(
                condition=Q(train_missing_rate__isnull=True)
                | Q(is_reference=True, train_missing_rate__gt=0, train_missing_rate__lt=1),
                name="train_missing_rate_of_reference",
            ),
            models.CheckConstraint(
                condition=Q(public_id__regex=f"^{PUBLIC_ID_PATTERN}$"), name="public_id_form"
            ),
            # The same file cannot be entered twice for a task by one owner (failed ones aside).
            models.UniqueConstraint(
                fields=["owner", "task", "sha256"],
                condition=~Q(status="failed"),
                name="one_entry_per_file",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} {self.method_name} ({self.task.slug})"

    def get_absolute_url(self) -> str:
        from django.urls import reverse

        return reverse("entry", args=[self.public_id])

    def save(self, *args: Any, **kwargs: Any) -> None:
        # An entry made with the two booleans only (MedMod) names its modalities from them.
        if not self.modalities:
            self.modalities = [
                m for m, on in (("ehr", self.uses_ehr), ("cxr", self.uses_cxr)) if on
            ]
        super().save(*args, **kwargs)

    @property
    def modalities_label(self) -> str:
        return modalities_label(self.modalities)

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES

    @property
    def team_label(self) -> str:
        """The team the entry shows: its team's name, the name it was entered under, or
        its owner's user name."""
        if self.team_id is not None and self.team is not None:
            return self.team.name
        return self.team_name or self.owner.get_username()

    @property
    def is_container(self) -> bool:
        return self.track.slug == TRACK_CONTAINER

    @property
    def verification(self) -> str:
        """``verified`` when the platform ran the model in every scenario itself;
        ``self-reported scenarios`` for a prediction file."""
        return verification_label(self.track.slug, self.streamed)

    @property
    def causal(self) -> bool:
        """Run causally by the platform (the streaming gateway): container entries and the
        streamed reference baselines."""
        return self.verification == VERIFIED


class Evaluation(models.Model):
    """One scoring run of a submission. Append-only: re-scoring adds a new row; a finished
    run is never changed again."""

    Status = EvaluationStatus
    Trigger = Trigger

    IN_FLIGHT = (Status.QUEUED, Status.RUNNING)

    submission = models.ForeignKey(Submission, on_delete=models.PROTECT, related_name="evaluations")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    # Why this run was made, shown in the entry's history (e.g. re-run through the gateway
    # on a new benchmark version).
    note = models.CharField(max_length=300, blank=True)

    # What produced the result (filled when the run finishes).
    scorer_version = models.CharField(max_length=40, blank=True)
    benchmark_hash = models.CharField(max_length=64)
    seed = models.BigIntegerField(null=True, blank=True)
    replicates = models.PositiveIntegerField(null=True, blank=True)
    threshold = models.FloatField(null=True, blank=True)
    form = models.CharField(max_length=16, blank=True)

    # The result: the full report, and the few numbers list pages need, kept apart so that
    # a leaderboard never loads a report.
    report = models.JSONField(null=True, blank=True)
    summary = models.JSONField(null=True, blank=True)
    primary_metric = models.CharField(max_length=40, blank=True)
    primary_value = models.FloatField(null=True, blank=True)
    primary_ci_low = models.FloatField(null=True, blank=True)
    primary_ci_high = models.FloatField(null=True, blank=True)
    replicate_values = models.JSONField(null=True, blank=True)

    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)

    # Container track: the run of the image (statuses, exit codes, times per scenario; no
    # log) and the log tails per scenario, which only the entry's owner and staff may see.
    container_run_id = models.CharField(max_length=64, blank=True)
    container_run = models.JSONField(null=True, blank=True)
    container_logs = models.JSONField(null=True, blank=True)

    attempts = models.PositiveSmallIntegerField(default=0)
    run_token = models.UUIDField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "created_at"], name="evaluation_queue_idx"),
            models.Index(
                fields=["submission", "scorer_version", "benchmark_hash", "status"],
                name="evaluation_current_idx",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=EvaluationStatus.values), name="evaluation_status_known"
            ),
            models.CheckConstraint(
                condition=Q(trigger__in=Trigger.values),
                name="evaluation_trigger_known",
            ),
            # At most one run of a submission is queued or running at a time: a retried or
            # duplicated request cannot start a second one.
            models.UniqueConstraint(
                fields=["submission"],
                condition=Q(status__in=["queued", "running"]),
                name="one_run_in_flight",
            ),
            models.CheckConstraint(
                condition=~Q(status="succeeded")
                | (Q(report__isnull=False) & Q(summary__isnull=False) & ~Q(scorer_version="")),
                name="succeeded_has_report",
            ),
            models.CheckConstraint(
                condition=~Q(status="failed") | ~Q(error_message=""),
                name="failed_has_message",
            ),
            models.CheckConstraint(
                condition=~Q(status="running") | Q(run_token__isnull=False),
                name="running_has_token",
            ),
        ]

    def __str__(self) -> str:
        return f"evaluation {self.pk} of submission {self.submission_id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)


class AuditLog(models.Model):
    """Who did what: every publish, hide, re-score, benchmark change and reaper action."""

    Action = AuditAction

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    action = models.CharField(max_length=40, choices=Action.choices)
    submission = models.ForeignKey(
        Submission, on_delete=models.SET_NULL, null=True, blank=True, related_name="audit_entries"
    )
    evaluation = models.ForeignKey(
        Evaluation, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    benchmark = models.ForeignKey(
        Benchmark, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(action__in=AuditAction.values), name="audit_action_known"
            )
        ]

    def __str__(self) -> str:
        who = self.actor.get_username() if self.actor_id and self.actor else "system"
        return f"{self.created_at:%Y-%m-%d %H:%M} {who} {self.action}"


class BaselineJobStatus(models.TextChoices):
    WAITING = "waiting", "Waiting for the models it builds on"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "On the board"
    FAILED = "failed", "Failed"


class BaselineJob(models.Model):
    """One reference model of one task, trained, run through the streaming gateway, entered
    and scored by the platform's worker (``services/baseline_jobs.py``). A whole suite run
    (its models share their fitted encoders) is one job with ``task`` and ``model`` empty.

    ``needs`` names the jobs (``task/model``) whose trained models this one builds on: a
    fusion model on its task's unimodal models, a CXR model on the radiology CXR model that
    initialises its encoder. A job is queued once all of them are done."""

    Status = BaselineJobStatus

    benchmark = models.ForeignKey(Benchmark, on_delete=models.CASCADE, related_name="baseline_jobs")
    task = models.CharField(max_length=64, blank=True)
    model = models.CharField(max_length=64, blank=True)
    label = models.CharField(max_length=200, help_text="what the home page calls it")
    position = models.PositiveIntegerField(default=0, help_text="order of the plan")
    needs = models.JSONField(default=list, blank=True)
    run_dir = models.CharField(max_length=500)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.WAITING)
    message = models.TextField(blank=True)
    submissions = models.JSONField(default=list, blank=True, help_text="public ids entered")
    created_at = models.DateTimeField(auto_now_add=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["benchmark", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["benchmark", "task", "model"], name="baselinejob_one_per_model"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.label} ({self.status})"

    @property
    def key(self) -> str:
        return f"{self.task}/{self.model}"


class TeamRole(models.TextChoices):
    OWNER = "owner", "Owner"
    MEMBER = "member", "Member"


TEAM_SLUG_LENGTH = 60


def team_slug_for(name: str, taken: Any) -> str:
    """A URL slug for a team name, unique among ``taken`` (a callable saying whether a slug
    is used): the name slugified (``team`` when nothing is left), then ``-2``, ``-3``..."""
    from django.utils.text import slugify

    base = slugify(name)[: TEAM_SLUG_LENGTH - 6].strip("-") or "team"
    slug, n = base, 1
    while taken(slug):
        n += 1
        slug = f"{base}-{n}"
    return slug


class Team(models.Model):
    """A team of participants: its entries are shown under its name, and its members share
    the team's daily quota per task (besides each one's own). A user is in one team at most."""

    name = models.CharField(max_length=120, unique=True)
    slug = models.SlugField(max_length=TEAM_SLUG_LENGTH, unique=True, blank=True)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(Lower("name"), name="team_name_unique_ci"),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Teams made in the admin get their slug from the name.
        if not self.slug:
            others = Team.objects.exclude(pk=self.pk)
            self.slug = team_slug_for(self.name, lambda s: others.filter(slug=s).exists())
        super().save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        from django.urls import reverse

        return reverse("team-public", args=[self.slug])


class TeamMembership(models.Model):
    """A user's team: at most one, so that each user's entries and team quota have one
    holder. Owners invite, remove members and change roles."""

    Role = TeamRole

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="team_membership"
    )
    role = models.CharField(max_length=8, choices=TeamRole.choices, default=TeamRole.MEMBER)
    joined_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["team", "joined_at", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(role__in=TeamRole.values), name="team_role_known"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"

    @property
    def is_owner(self) -> bool:
        return self.role == TeamRole.OWNER


def new_invitation_token() -> str:
    return secrets.token_urlsafe(24)


class TeamInvitation(models.Model):
    """An owner's invitation to join a team, by user name (``invited_user``) or by e-mail
    address (``email``, matched against the confirmed address of whoever accepts it)."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="invitations")
    invited_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="team_invitations",
    )
    email = models.EmailField(max_length=254, blank=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    token = models.CharField(max_length=64, unique=True, default=new_invitation_token)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    declined_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # By user name or by address, never both.
            models.CheckConstraint(
                condition=(Q(invited_user__isnull=False) & Q(email=""))
                | (Q(invited_user__isnull=True) & ~Q(email="")),
                name="invitation_names_one_person",
            ),
            models.CheckConstraint(
                condition=Q(accepted_at__isnull=True) | Q(declined_at__isnull=True),
                name="invitation_accepted_or_declined",
            ),
            # One open invitation per person and team.
            models.UniqueConstraint(
                fields=["team", "invited_user"],
                condition=Q(accepted_at__isnull=True, declined_at__isnull=True)
                & Q(invited_user__isnull=False),
                name="one_open_invitation_per_user",
            ),
            models.UniqueConstraint(
                "team",
                Lower("email"),
                condition=Q(accepted_at__isnull=True, declined_at__isnull=True) & ~Q(email=""),
                name="one_open_invitation_per_email",
            ),
        ]

    def __str__(self) -> str:
        return f"invitation to {self.team} for {self.invited_as}"

    @property
    def invited_as(self) -> str:
        """What the owner typed: the user name or the address."""
        return self.email or (self.invited_user.get_username() if self.invited_user else "")

    @property
    def is_open(self) -> bool:
        return self.accepted_at is None and self.declined_at is None

    def is_expired(self, now: Any = None) -> bool:
        return (now or timezone.now()) >= self.expires_at


class Account(models.Model):
    """A user's e-mail address and whether it was confirmed.

    ``identity`` is the address normalised (lower case, ``+tag`` sub-addresses removed,
    Gmail's dots ignored): the verified identity that daily quotas count against, once
    ``confirmed_at`` is set. One address (case-insensitive) belongs to one account.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="account"
    )
    email = models.EmailField(max_length=254)
    identity = models.CharField(max_length=254, db_index=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["user"]
        constraints = [
            models.UniqueConstraint(Lower("email"), name="account_email_unique_ci"),
        ]

    def __str__(self) -> str:
        state = "confirmed" if self.confirmed_at else "not confirmed"
        return f"{self.email} ({state})"

    @property
    def is_confirmed(self) -> bool:
        return self.confirmed_at is not None


def new_upload_name(task_slug: str, suffix: str, *, folder: str = "submissions") -> str:
    """Storage name of an uploaded file: unguessable, never the user's name."""
    return f"{folder}/{task_slug}/{uuid.uuid4().hex}{suffix}"


class NotificationKind(models.TextChoices):
    PUBLISHED = "published", "An entry is scored (and published)"
    FAILED = "failed", "An entry fails"
    RANK_CHANGED = "rank_changed", "A re-score changes an entry's rank"


class NotificationSettings(models.Model):
    """Which e-mails a user wants about their entries: one switch per kind, all on unless
    turned off (no row: all on)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_settings"
    )
    published = models.BooleanField(default=True)
    failed = models.BooleanField(default=True)
    rank_changed = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "notification settings"

    def __str__(self) -> str:
        on = [k for k in NotificationKind.values if getattr(self, k)]
        return f"{self.user}: {', '.join(on) or 'none'}"


class Notification(models.Model):
    """An e-mail sent (or tried) about an event of an entry: the record that keeps an
    event from being mailed twice (one per entry, run and kind) and the audit of what was
    sent to whom."""

    Kind = NotificationKind

    class Status(models.TextChoices):
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "The mail backend refused it"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    submission = models.ForeignKey(
        Submission, on_delete=models.CASCADE, related_name="notifications"
    )
    evaluation = models.ForeignKey(
        Evaluation, on_delete=models.CASCADE, related_name="notifications"
    )
    kind = models.CharField(max_length=16, choices=NotificationKind.choices)
    email = models.EmailField(max_length=254)
    subject = models.CharField(max_length=300)
    details = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.SENDING)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["submission", "evaluation", "kind"], name="one_notification_per_event"
            ),
            models.CheckConstraint(
                condition=Q(kind__in=NotificationKind.values), name="notification_kind_known"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["sending", "sent", "failed"]),
                name="notification_status_known",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} of {self.submission_id} to {self.email} ({self.status})"


class WorkerHost(models.Model):
    """A worker host as it last announced itself: the queues it serves, its capacity, and
    whether it is drained (it takes no new runs; the mark outlives its restarts)."""

    name = models.CharField(max_length=200, unique=True, help_text="the Celery node name")
    queues = models.JSONField(default=list, blank=True, help_text="kinds of work it serves")
    concurrency = models.PositiveIntegerField(default=1)
    gpus = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    last_seen = models.DateTimeField(null=True, blank=True, db_index=True)
    drained = models.BooleanField(default=False)
    drained_at = models.DateTimeField(null=True, blank=True)
    drain_note = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({', '.join(self.queues) or 'no queues'})"


class RescoreRunStatus(models.TextChoices):
    # A re-score of many entries is recorded by the request that asks for it; a job makes
    # its runs (services.rescoring.rescore_fan_out), and it runs from then on.
    STARTING = "starting", "Starting (its runs are being made)"
    RUNNING = "running", "Running"
    FINISHED = "finished", "Finished"
    FAILED = "failed", "Failed to start"


class RescoreRun(models.Model):
    """One re-score of many entries from their stored predictions (a scorer upgrade, say):
    the runs it queued, what it skipped and why, the ranks before, and once every run has
    finished the entries whose rank changed (per task: entry, old rank, new rank)."""

    Status = RescoreRunStatus

    scope = models.CharField(max_length=200)
    note = models.CharField(max_length=300, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    status = models.CharField(
        max_length=16, choices=RescoreRunStatus.choices, default=RescoreRunStatus.RUNNING
    )
    scorer_version = models.CharField(max_length=40, blank=True)
    evaluations = models.ManyToManyField(Evaluation, related_name="rescore_runs", blank=True)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    # [{"entry": public id, "reason": why}] for the entries left out.
    skipped = models.JSONField(default=list, blank=True)
    # {task pk: {entry public id: rank}} on the boards as they stood before.
    ranks_before = models.JSONField(default=dict, blank=True)
    # While starting: the ids of the entries whose runs the job makes (emptied once made).
    entries = models.JSONField(default=list, blank=True)
    # Why its runs could not be made (a failed start), or why the job is late in making them.
    error = models.TextField(blank=True)
    # [{"task", "entry", "method", "old_rank", "new_rank", "rescored"}] once finished.
    rank_changes = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=RescoreRunStatus.values), name="rescore_run_status_known"
            ),
            models.CheckConstraint(
                condition=Q(done__lte=models.F("total")) & Q(failed__lte=models.F("total")),
                name="rescore_run_counts_within_total",
            ),
        ]

    def __str__(self) -> str:
        return f"re-score {self.pk} ({self.scope}, {self.status})"
