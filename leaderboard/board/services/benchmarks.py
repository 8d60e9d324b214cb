"""Registering benchmarks and opening them for scoring."""

from __future__ import annotations

from typing import Any

from django.core.cache import cache
from django.db import transaction

from benchmark_data import Benchmark as BenchmarkData
from benchmark_data import BenchmarkError
from benchmark_data.store import StoreError
from leaderboard.board.context import NAV_TASKS_KEY
from leaderboard.board.errors import BenchmarkInvalid
from leaderboard.board.models import AuditLog, Benchmark, Suite, Task
from leaderboard.board.services.audit import audit_record

ERR_SAME_VERSION = (
    "{uri} is benchmark {name} {version}, but another benchmark of that name and version is "
    "registered with other data (hash {theirs}, this one {mine}): give this one a version of "
    "its own in its manifest (a benchmark's name and version name its data)"
)


def _manifest_summary(manifest: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in manifest.items() if k != "files"}


def benchmark_register(
    *,
    uri: str,
    credentialed_uri: str = "",
    make_current: bool = True,
    verify: bool = True,
    actor: Any = None,
) -> Benchmark:
    """Register a benchmark directory or S3 prefix (idempotent on its manifest hash).

    The benchmark must hold its credentialed part (the test labels): the platform scores
    against it. With ``verify`` every file is checked against the manifest first.
    """
    try:
        data = BenchmarkData.open(uri, credentialed_uri=credentialed_uri or None)
        if not data.has_credentialed():
            raise BenchmarkInvalid(
                f"{uri} holds no credentialed part (test labels): it is a public export; "
                "register the full benchmark, or give the credentialed part's location"
            )
        if verify:
            data.verify()
        declared = data.suite
    except (BenchmarkError, StoreError) as exc:
        raise BenchmarkInvalid(str(exc)) from None
    tasks = data.tasks
    if not tasks:
        raise BenchmarkInvalid(
            f"{uri}: the manifest lists none of the tasks of suite {declared.slug} "
            f"({', '.join(declared.task_slugs)})"
        )
    counts = data.manifest.get("counts", {})
    with transaction.atomic():
        suite, _ = Suite.objects.get_or_create(
            slug=declared.slug,
            defaults={"title": declared.title, "description": declared.description},
        )
        existing = Benchmark.objects.filter(manifest_hash=data.manifest_hash).first()
        created = existing is None
        other = Benchmark.objects.filter(name=data.name, version=data.version).first()
        if created and other is not None:
            raise BenchmarkInvalid(
                ERR_SAME_VERSION.format(
                    uri=uri, name=data.name, version=data.version,
                    mine=data.manifest_hash[:12], theirs=other.manifest_hash[:12],
                )
            )  # fmt: skip
        if existing is None:
            benchmark = Benchmark.objects.create(
                suite=suite,
                suite_spec=dict(declared.spec),
                name=data.name,
                version=data.version,
                manifest_hash=data.manifest_hash,
                uri=str(uri),
                credentialed_uri=str(credentialed_uri or ""),
                manifest=_manifest_summary(data.manifest),
                n_files=len(data.manifest["files"]),
            )
        else:
            benchmark = existing
            # Same data at a new location (e.g. copied to S3): follow it.
            benchmark.uri = str(uri)
            benchmark.credentialed_uri = str(credentialed_uri or "")
            benchmark.save(update_fields=["uri", "credentialed_uri"])
        for slug in tasks:
            gateway_only = data.scored_on(slug) == "all"
            key = "test_clean" if gateway_only else "test"
            n_test = int(counts.get(slug, {}).get(key, 0) or 0)
            Task.objects.update_or_create(
                benchmark=benchmark,
                slug=slug,
                defaults={"n_test_units": n_test, "gateway_only": gateway_only},
            )
        audit_record(
            actor=actor,
            action=AuditLog.Action.BENCHMARK_LOAD,
            benchmark=benchmark,
            uri=str(uri),
            created=created,
            verified=verify,
        )
        if make_current and not benchmark.is_current:
            benchmark_make_current(benchmark=benchmark, actor=actor)
    return benchmark


def benchmark_make_current(*, benchmark: Benchmark, actor: Any = None) -> Benchmark:
    """Make a benchmark the one of its suite that new submissions go to and the boards
    show (each suite has its own current benchmark)."""
    with transaction.atomic():
        Benchmark.objects.select_for_update().filter(
            suite_id=benchmark.suite_id, is_current=True
        ).exclude(pk=benchmark.pk).update(is_current=False)
        benchmark.is_current = True
        benchmark.save(update_fields=["is_current"])
        audit_record(actor=actor, action=AuditLog.Action.BENCHMARK_CURRENT, benchmark=benchmark)
        transaction.on_commit(lambda: cache.delete(NAV_TASKS_KEY))  # the menu's tasks
    return benchmark
