"""``manage.py reap``: put back scoring runs whose worker died and resend lost messages.

The worker's beat runs the same every ``REAPER_INTERVAL`` seconds; this command is for cron
or for a one-off check. On a worker host it also removes what dead workers' container runs
left on the Docker engine, and any run's container past its deadline (``--no-containers``
skips that, e.g. on a web host).
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from leaderboard.board.services.containers import container_runs_reap
from leaderboard.board.services.evaluations import evaluations_reap


class Command(BaseCommand):
    help = "Re-queue stalled scoring runs and resend queued ones whose message was lost."

    def add_arguments(self, parser):
        parser.add_argument(
            "--no-containers",
            action="store_true",
            help="do not clean the Docker engine of dead workers' container runs",
        )

    def handle(self, *args, **opts):
        result = evaluations_reap()
        self.stdout.write(
            f"requeued {len(result.requeued)}, gave up {len(result.abandoned)}, "
            f"resent {len(result.resent)}"
        )
        if not opts["no_containers"]:
            removed = container_runs_reap(run_ids=result.container_run_ids)
            self.stdout.write(
                f"container runs: removed {removed['containers']} containers "
                f"({removed['overdue']} past their deadline), {removed['images']} images"
            )
