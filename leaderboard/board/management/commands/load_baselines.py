"""``manage.py load_baselines RUN_DIR``: reference entries from a baselines run's prediction
files (``RUN_DIR/predictions/{task}/{model}.csv``), queued for scoring."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from leaderboard.board.errors import ServiceError
from leaderboard.board.services.baselines import baselines_load
from leaderboard.board.services.evaluations import evaluation_run


class Command(BaseCommand):
    help = "Enter a baselines run's prediction files as reference entries."

    def add_arguments(self, parser):
        parser.add_argument("run_dir")
        parser.add_argument("--now", action="store_true", help="score here, without a worker")

    def handle(self, *args, **opts):
        try:
            subs = baselines_load(run_dir=opts["run_dir"])
        except ServiceError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"{len(subs)} reference entr{'y' if len(subs) == 1 else 'ies'} entered")
        for sub in subs:
            line = f"  #{sub.pk} {sub.task.slug}: {sub.method_name}"
            if opts["now"]:
                pending = sub.evaluations.filter(status="queued").first()
                ev = (
                    evaluation_run(evaluation_id=pending.pk, worker="load_baselines")
                    if pending
                    else None
                )
                if ev is not None:
                    value = f"{ev.primary_value:.4f}" if ev.primary_value is not None else "n/a"
                    line += f" -> {ev.status} ({ev.primary_metric or 'error'} {value if ev.status == 'succeeded' else ev.error_message})"
            self.stdout.write(line)
