"""``manage.py load_benchmark PATH_OR_S3``: register a benchmark after checking every file."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from leaderboard.board.errors import ServiceError
from leaderboard.board.services.benchmarks import benchmark_register
from leaderboard.board.services.downloads import benchmark_publish_downloads


class Command(BaseCommand):
    help = "Register a benchmark (directory or s3://bucket/prefix) after verifying its files."

    def add_arguments(self, parser):
        parser.add_argument("uri", help="benchmark directory or s3://bucket/prefix")
        parser.add_argument(
            "--credentialed", default="", help="separate location of the credentialed part"
        )
        parser.add_argument(
            "--not-current", action="store_true", help="register without making it current"
        )
        parser.add_argument(
            "--no-verify", action="store_true", help="skip the file-by-file hash check"
        )
        parser.add_argument(
            "--no-downloads",
            action="store_true",
            help="do not publish its public data files yet (manage.py publish_downloads does)",
        )

    def handle(self, *args, **opts):
        try:
            benchmark = benchmark_register(
                uri=opts["uri"],
                credentialed_uri=opts["credentialed"],
                make_current=not opts["not_current"],
                verify=not opts["no_verify"],
            )
        except ServiceError as exc:
            raise CommandError(exc.message) from None
        if not opts["no_downloads"]:
            try:
                index = benchmark_publish_downloads(benchmark=benchmark)
            except ServiceError as exc:
                raise CommandError(exc.message) from None
            self.stdout.write(f"published its public data files ({len(index['files'])} files)")
        tasks = ", ".join(f"{t.slug} ({t.n_test_units} test units)" for t in benchmark.tasks.all())
        self.stdout.write(
            f"registered {benchmark.name} {benchmark.version} "
            f"(manifest {benchmark.manifest_hash[:12]}, {benchmark.n_files} files"
            f"{', current' if benchmark.is_current else ''}): {tasks}"
        )
