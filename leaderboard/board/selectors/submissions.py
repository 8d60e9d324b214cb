"""Reading submissions and their runs, with the visibility rules applied."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.http import Http404

from leaderboard.board.models import DEFAULT_SUITE, Benchmark, Evaluation, Submission, Task
from scoring.version import SCORER_VERSION

S = Submission.Status
E = Evaluation.Status


def current_scorer_version() -> str:
    return SCORER_VERSION


def benchmark_current(*, suite: str = DEFAULT_SUITE) -> Benchmark | None:
    """The current benchmark of a suite (MedMod unless named)."""
    return Benchmark.objects.filter(is_current=True, suite__slug=suite).first()


def suite_benchmarks() -> list[Benchmark]:
    """The current benchmark of every suite, the default suite (MedMod) first."""
    current = Benchmark.objects.filter(is_current=True).select_related("suite")
    return sorted(current, key=lambda b: (b.suite.slug != DEFAULT_SUITE, b.suite.created_at, b.pk))


def task_get(*, slug: str, benchmark: Benchmark | None = None, suite: str = DEFAULT_SUITE) -> Task:
    """A task of the suite's current benchmark (or of ``benchmark``); 404 when there is
    none."""
    if "\x00" in slug:
        # PostgreSQL refuses NUL in text: no task can have such a slug.
        raise Http404("no task with a NUL character in its slug")
    qs = Task.objects.select_related("benchmark").filter(slug=slug)
    if benchmark:
        qs = qs.filter(benchmark=benchmark)
    else:
        qs = qs.filter(benchmark__is_current=True, benchmark__suite__slug=suite)
    task = qs.first()
    if task is None:
        raise Http404(f"no task {slug!r} in the current benchmark")
    return task


def task_list(*, suite: str = DEFAULT_SUITE) -> QuerySet[Task]:
    """The tasks of the suite's current benchmark (those of one benchmark, each holding it:
    :func:`benchmark_tasks`)."""
    return Task.objects.select_related("benchmark").filter(
        benchmark__is_current=True, benchmark__suite__slug=suite
    )


def benchmark_tasks(*, benchmark: Benchmark, **annotations: Any) -> list[Task]:
    """The tasks of one benchmark (with ``annotations``), each holding that same benchmark
    instance: one parsed suite declaration serves them all, and no row of the benchmark is
    read again per task."""
    tasks = list(Task.objects.filter(benchmark=benchmark).annotate(**annotations))
    for task in tasks:
        task.benchmark = benchmark
    return tasks


def can_view_submission(*, submission: Submission, viewer: Any) -> bool:
    """Published entries are public; anything else only for its owner and staff."""
    if submission.status == S.PUBLISHED:
        return True
    if viewer is None or not getattr(viewer, "is_authenticated", False):
        return False
    return viewer.is_staff or viewer.pk == submission.owner_id


def can_see_run_logs(*, submission: Submission, viewer: Any) -> bool:
    """A container run's record and log tails: the entry's owner and staff only."""
    if viewer is None or not getattr(viewer, "is_authenticated", False):
        return False
    return viewer.is_staff or viewer.pk == submission.owner_id


# What a submission is annotated with from its latest successful run and its run in flight.
LATEST_FIELDS = {
    "latest_evaluation_id": "id",
    "latest_value": "primary_value",
    "latest_ci_low": "primary_ci_low",
    "latest_ci_high": "primary_ci_high",
    "latest_metric": "primary_metric",
    "latest_scorer_version": "scorer_version",
}
PENDING_FIELDS = {"pending_evaluation_id": "id", "pending_evaluation_status": "status"}


def _latest_ok(submission: Any) -> QuerySet[Evaluation]:
    return Evaluation.objects.filter(submission=submission, status=E.SUCCEEDED).order_by(
        "-created_at", "-id"
    )


def _in_flight(submission: Any) -> QuerySet[Evaluation]:
    return Evaluation.objects.filter(
        submission=submission, status__in=[E.QUEUED, E.RUNNING]
    ).order_by("-created_at")


def _with_latest(qs: QuerySet[Submission]) -> QuerySet[Submission]:
    """Annotate each submission with its latest successful run and its run in flight."""
    latest_ok, in_flight = _latest_ok(OuterRef("pk")), _in_flight(OuterRef("pk"))
    return qs.annotate(
        **{name: Subquery(latest_ok.values(f)[:1]) for name, f in LATEST_FIELDS.items()},
        **{name: Subquery(in_flight.values(f)[:1]) for name, f in PENDING_FIELDS.items()},
    )


def _attach_latest(sub: Submission) -> None:
    """:func:`_with_latest` for one submission: two small queries instead of eight
    subqueries."""
    for fields, qs in ((LATEST_FIELDS, _latest_ok(sub)), (PENDING_FIELDS, _in_flight(sub))):
        row = qs.values(*fields.values()).first() or {}
        for name, f in fields.items():
            setattr(sub, name, row.get(f))


NO_SUCH_ENTRY = "no such entry"


def submission_get_for_viewer(
    *, public_id: str, viewer: Any, with_latest: bool = True
) -> Submission:
    """One submission, by its public id, if the viewer may see it; 404 otherwise, the same
    for an entry that does not exist (its existence is not told).
    ``with_latest``: with its latest successful run and run in flight (as in lists)."""
    sub = (
        Submission.objects.select_related("owner", "team", "task__benchmark", "track")
        .filter(public_id=public_id)
        .first()
    )
    if sub is None or not can_view_submission(submission=sub, viewer=viewer):
        raise Http404(NO_SUCH_ENTRY)
    if with_latest:
        _attach_latest(sub)
    return sub


def submission_list_for_owner(
    *, owner: Any, active_only: bool = False, task: Task | None = None
) -> QuerySet[Submission]:
    qs = Submission.objects.filter(owner=owner).select_related(
        "owner", "team", "task__benchmark", "track"
    )
    if active_only:
        qs = qs.filter(
            Q(status__in=Submission.ACTIVE_STATUSES)
            | Q(evaluations__status__in=[E.QUEUED, E.RUNNING])
        ).distinct()
    if task is not None:
        qs = qs.filter(task=task)
    return _with_latest(qs).order_by("-created_at", "-id")


def evaluation_queue_positions(*, evaluation_ids: Iterable[int | None]) -> dict[int, int]:
    """1-based place of each queued run in its task's queue (``selectors.queues``)."""
    from leaderboard.board.selectors.queues import evaluation_queue_positions as positions

    return positions(evaluation_ids=evaluation_ids)


def queue_summary() -> dict[str, int]:
    """How many runs wait and how many are being scored, in one query."""
    counts: dict[str, int] = Evaluation.objects.filter(status__in=(E.QUEUED, E.RUNNING)).aggregate(
        queued=Count("pk", filter=Q(status=E.QUEUED)),
        running=Count("pk", filter=Q(status=E.RUNNING)),
    )
    return counts


def evaluation_list_for_submission(*, submission: Submission) -> QuerySet[Evaluation]:
    """Every run of a submission, newest first, without the reports."""
    return (
        Evaluation.objects.filter(submission=submission)
        .select_related("triggered_by")
        .defer("report", "replicate_values", "container_logs")
        .order_by("-created_at", "-id")
    )


def evaluation_latest_container_run(*, submission: Submission) -> Evaluation | None:
    """The latest run of an image that has a record (owner and staff only: it holds the
    log tails)."""
    return (
        Evaluation.objects.filter(submission=submission, container_run__isnull=False)
        .only("pk", "status", "container_run_id", "container_run", "container_logs")
        .order_by("-created_at", "-id")
        .first()
    )


def evaluation_current_for_submission(*, submission: Submission) -> Evaluation | None:
    """The run the leaderboard shows: the latest successful one under the current scorer
    version on the task's benchmark; else the latest successful one of any version. The
    report, replicate values and log tails are read only when used."""
    qs = (
        Evaluation.objects.filter(submission=submission, status=E.SUCCEEDED)
        .defer("report", "replicate_values", "container_logs")
        .order_by("-created_at", "-id")
    )
    current = qs.filter(
        scorer_version=current_scorer_version(),
        benchmark_hash=submission.task.benchmark.manifest_hash,
    ).first()
    return current or qs.first()


def submission_public_id_for_staff(*, pk: int, viewer: Any) -> str:
    """The public id of the entry an old integer address names, for staff only. Anyone else
    gets the 404 of a missing entry without the entry being looked up, so that neither the
    answer nor its time tells whether that integer is an entry."""
    if not (getattr(viewer, "is_authenticated", False) and viewer.is_staff):
        raise Http404(NO_SUCH_ENTRY)
    public_id = Submission.objects.filter(pk=pk).values_list("public_id", flat=True).first()
    if public_id is None:
        raise Http404(NO_SUCH_ENTRY)
    return public_id


def evaluation_get_for_viewer(*, submission: Submission, pk: int) -> Evaluation:
    """A run of an entry the viewer may see (``submission`` comes from
    :func:`submission_get_for_viewer`): a run id is found only under its own entry."""
    evaluation = (
        Evaluation.objects.filter(submission=submission, pk=pk)
        .select_related("triggered_by")
        .first()
    )
    if evaluation is None:
        raise Http404("no such evaluation")
    return evaluation


def is_current_evaluation(*, evaluation: Evaluation, task: Task) -> bool:
    return (
        evaluation.status == E.SUCCEEDED
        and evaluation.scorer_version == current_scorer_version()
        and evaluation.benchmark_hash == task.benchmark.manifest_hash
    )
