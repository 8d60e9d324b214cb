"""``manage.py drain_host NAME``: a worker host stops taking new jobs and finishes its own.

The host is told at once (Celery's ``cancel_consumer`` for each of its queues) and marked
drained in the database, which it reads when it starts again: it stays drained across
restarts until ``manage.py drain_host --resume NAME``. ``--list`` shows the hosts.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from leaderboard.board.models import WorkerHost
from leaderboard.board.services.worker_hosts import (
    UnknownHost,
    queue_kinds,
    worker_host_drain,
    worker_host_resume,
)


class Command(BaseCommand):
    help = "Drain a worker host (it finishes its running jobs and takes no new ones), or resume it."

    def add_arguments(self, parser):
        parser.add_argument("name", nargs="?", help="the host's name (celery@NAME or NAME)")
        parser.add_argument("--resume", action="store_true", help="take jobs again")
        parser.add_argument("--note", default="", help="why (kept with the mark)")
        parser.add_argument("--list", action="store_true", help="list the worker hosts")

    def handle(self, *args, **opts):
        if opts["list"] or not opts["name"]:
            if not opts["list"]:
                raise CommandError(
                    "name the host to drain (manage.py drain_host --list shows them)"
                )
            self._list()
            return
        try:
            if opts["resume"]:
                result = worker_host_resume(name=opts["name"])
            else:
                result = worker_host_drain(name=opts["name"], note=opts["note"])
        except UnknownHost as exc:
            raise CommandError(str(exc)) from None
        host, what = result.host, "resumed" if opts["resume"] else "drained"
        kinds = ", ".join(queue_kinds(result.queues)) or "no queues"
        self.stdout.write(f"{host.name}: {what} ({kinds})")
        if result.answered:
            self.stdout.write(f"  the host answered: {len(result.replies)} queue(s) changed")
        else:
            self.stdout.write("  the host did not answer (down?): it reads the mark when it starts")
        if not opts["resume"]:
            self.stdout.write(f"  jobs still running there, left to finish: {len(result.active)}")

    def _list(self) -> None:
        now = timezone.now()
        for host in WorkerHost.objects.all():
            seen = (
                f"{(now - host.last_seen).total_seconds():.0f} s ago" if host.last_seen else "never"
            )
            mark = " DRAINED" if host.drained else ""
            self.stdout.write(
                f"{host.name}: {', '.join(queue_kinds(host.queues))}; concurrency "
                f"{host.concurrency}, {host.gpus} GPU(s); last seen {seen}{mark}"
            )
