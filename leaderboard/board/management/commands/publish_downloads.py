"""``manage.py publish_downloads``: build and store the public data files participants
download from the task pages (every current benchmark, or those named)."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from leaderboard.board.errors import ServiceError
from leaderboard.board.models import Benchmark
from leaderboard.board.services.downloads import benchmark_publish_downloads


class Command(BaseCommand):
    help = "Publish the public data files of benchmarks (default: every current one)."

    def add_arguments(self, parser):
        parser.add_argument(
            "manifest_hash", nargs="*", help="benchmarks by manifest hash (or its first characters)"
        )
        parser.add_argument("--force", action="store_true", help="build again even if published")

    def handle(self, *args, **opts):
        if opts["manifest_hash"]:
            benchmarks = []
            for prefix in opts["manifest_hash"]:
                found = list(Benchmark.objects.filter(manifest_hash__startswith=prefix)[:2])
                if len(found) != 1:
                    raise CommandError(
                        f"{prefix!r} names {'no' if not found else 'more than one'} registered "
                        "benchmark: give more characters of its manifest hash"
                    )
                benchmarks += found
        else:
            benchmarks = list(Benchmark.objects.filter(is_current=True).order_by("created_at"))
        for benchmark in benchmarks:
            t0 = time.perf_counter()
            try:
                index = benchmark_publish_downloads(benchmark=benchmark, force=opts["force"])
            except ServiceError as exc:
                raise CommandError(exc.message) from None
            size = sum(f["size"] for f in index["files"])
            self.stdout.write(
                f"published {benchmark.name} {benchmark.version}: {len(index['files'])} files, "
                f"{size / 1e6:.1f} MB{' (identifiers only)' if index.get('ids_only') else ''} "
                f"in {time.perf_counter() - t0:.1f} s"
            )
