"""``manage.py reap``: put back scoring runs whose worker died and resend lost messages.

The worker's beat runs the same every ``REAPER_INTERVAL`` seconds; this command is for cron
or for a one-off check.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from leaderboard.board.services.evaluations import evaluations_reap


class Command(BaseCommand):
    help = "Re-queue stalled scoring runs and resend queued ones whose message was lost."

    def handle(self, *args, **opts):
        result = evaluations_reap()
        self.stdout.write(
            f"requeued {len(result.requeued)}, gave up {len(result.abandoned)}, "
            f"resent {len(result.resent)}"
        )
