"""``manage.py rescore --task SLUG | --submission ID | --all | --carry-containers``: queue
new scoring runs.

Each re-score adds a run; earlier runs stay. A re-score scores the stored predictions (a
container entry's kept output, never a new run of its image), one Celery job per entry, and
is followed as a re-score record (its progress and, once done, the entries whose rank
changed). ``--note`` says why (shown in each entry's
history). ``--carry-containers`` moves the container entries of earlier benchmarks to the
current one and re-runs them through the streaming gateway. With ``--now`` the runs are
scored in this process instead of by a worker.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from leaderboard.board.models import Benchmark, Submission
from leaderboard.board.selectors.submissions import task_get
from leaderboard.board.services.carry import containers_carry_over
from leaderboard.board.services.evaluations import evaluation_run
from leaderboard.board.services.rescoring import (
    RescoreResult,
    all_rescore,
    rescore_entry,
    rescore_runs_settle,
    submission_rescore,
    task_rescore,
)
from leaderboard.board.services.stored_predictions import rescore_from_stored


class Command(BaseCommand):
    help = "Re-score one submission, every entry of a task, or every entry."

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--task", help="task slug (current benchmark)")
        which.add_argument("--submission", type=int, help="submission id")
        which.add_argument("--all", action="store_true", help="every scored entry")
        which.add_argument(
            "--carry-containers",
            action="store_true",
            help="move container entries of earlier benchmarks to the current one and re-run "
            "them through the streaming gateway",
        )
        parser.add_argument("--note", default="", help="why: shown in each entry's history")
        parser.add_argument("--user", help="staff user recorded in the audit log")
        parser.add_argument("--now", action="store_true", help="score here, without a worker")

    def handle(self, *args, **opts):
        actor = None
        if opts["user"]:
            actor = get_user_model().objects.filter(username=opts["user"]).first()
            if actor is None:
                raise CommandError(f"no user {opts['user']!r}")
        if opts["submission"]:
            sub = (
                Submission.objects.select_related("task__benchmark")
                .filter(pk=opts["submission"])
                .first()
            )
            if sub is None:
                raise CommandError(f"no submission {opts['submission']}")
            result = submission_rescore(actor=actor, submission=sub, note=opts["note"])
        elif opts["task"]:
            try:
                task = task_get(slug=opts["task"])
            except Exception:
                raise CommandError(f"no task {opts['task']!r} in the current benchmark") from None
            result = task_rescore(actor=actor, task=task, note=opts["note"])
        elif opts["carry_containers"]:
            current = list(Benchmark.objects.filter(is_current=True).order_by("suite_id"))
            if not current:
                raise CommandError("no current benchmark: load one with manage.py load_benchmark")
            queued: list[int] = []
            skipped: list[int] = []
            for bench in current:  # each suite's current benchmark takes its own entries
                part = containers_carry_over(actor=actor, benchmark=bench)
                queued += part.queued
                skipped += part.skipped
            result = RescoreResult(queued=queued, skipped=skipped)
        else:
            result = all_rescore(actor=actor, note=opts["note"])
        self.stdout.write(f"{len(result.queued)} run(s) queued, {len(result.skipped)} skipped")
        if result.rescore_run is not None:
            self.stdout.write(
                f"re-score {result.rescore_run}: progress and rank changes in the admin "
                f"(Re-scores) and at /api/rescores/{result.rescore_run}/"
            )
        if opts["now"]:
            for evaluation_id in result.queued:
                if rescore_from_stored(evaluation_id=evaluation_id):
                    ev = rescore_entry(evaluation_id=evaluation_id, worker="manage.py rescore")
                else:
                    ev = evaluation_run(evaluation_id=evaluation_id, worker="manage.py rescore")
                if ev is not None:
                    self.stdout.write(f"  run {evaluation_id}: {ev.status}")
            rescore_runs_settle()
