"""The permutation test and DeLong's test of a comparison's entries against its reference.

The paired bootstrap needs only each entry's stored replicates; these two tests need both
entries' predictions, unit by unit, and the labels. A report cannot hold what they need
without holding per-unit figures, and the reference of a comparison is any entry, so they
are computed when a comparison first asks for them: from the stored prediction files
(``Submission.file``, read and aligned by ``scoring.validation`` as the scorer reads them)
and the task's truth (``selectors.benchmarks.task_truth``, as the scoring run gets it). The
full-precision results are cached per (entry file, reference file, scorer version,
benchmark, metric, permutations), so a reload, or the same pair in another comparison, is
instant. Nothing here leaves the platform as is: ``selectors.compare`` rounds and gates
every figure.

Container entries keep no prediction file (the platform runs the model and scores what it
returns), so they get no such tests; a comparison says so.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any, BinaryIO, cast

from django.conf import settings
from django.core.cache import cache
from django.core.files.storage import default_storage

from leaderboard.board.errors import ServiceError
from leaderboard.board.models import Submission, Task
from leaderboard.board.selectors.benchmarks import task_truth
from leaderboard.board.selectors.submissions import current_scorer_version
from scoring.errors import ScoringInputError
from scoring.significance import compare_predictions, permutation_seed
from scoring.validation import Predictions, read_predictions

log = logging.getLogger(__name__)

N_PERMUTATIONS = 1000
# Tasks with more units than this (the hourly tasks) are tested in the main scenario only.
PER_SCENARIO_MAX_UNITS = 20_000
CACHE_SECONDS = 7 * 24 * 3600
CACHE_VERSION = 1

NOTE_CONTAINER = (
    "No permutation or DeLong test for {entries}: a container entry keeps no prediction "
    "file to swap unit by unit (the paired bootstrap, from the stored replicates, is shown)."
)
NOTE_UNAVAILABLE = (
    "No permutation or DeLong test for {entries}: the stored prediction file could not be "
    "read against the current test data."
)
NOTE_MAIN_ONLY = (
    "Permutation and DeLong tests in the {main} scenario only: this task has {units:,} test units."
)


def _key(*, task: Task, metric: str, entry: Submission, reference: Submission) -> str:
    parts = [
        str(CACHE_VERSION),
        current_scorer_version(),
        task.benchmark.manifest_hash,
        task.suite_slug,
        task.slug,
        metric,
        entry.sha256,
        reference.sha256,
        str(N_PERMUTATIONS),
        str(PER_SCENARIO_MAX_UNITS),
    ]
    return "significance:" + hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def _read(sub: Submission, truth: Any) -> Predictions:
    if not sub.file.name:
        raise ValueError(f"entry {sub.pk} has no stored predictions file")
    with default_storage.open(sub.file.name, "rb") as fh:
        # A stored file opened "rb" reads bytes like any binary file.
        return read_predictions(
            cast(BinaryIO, fh), truth=truth, max_bytes=settings.MAX_UPLOAD_BYTES
        )


def comparison_tests(
    *, task: Task, subs: list[Submission], reference: str, metric: str, main: str
) -> tuple[dict[str, dict[str, dict[str, Any]]], list[str]]:
    """Per entry other than the reference, per scenario, the full-precision permutation
    and DeLong results (``scoring.significance.compare_predictions``), and notes on the
    entries left out. Read-through cache; files and truth are read only on a miss."""
    by_id = {s.public_id: s for s in subs}
    ref = by_id[reference]
    others = [s for s in subs if s.public_id != reference]
    containers = [s.public_id for s in subs if s.is_container]
    if ref.is_container:
        return {}, [NOTE_CONTAINER.format(entries=", ".join(containers))]
    notes: list[str] = []
    if containers:
        notes.append(NOTE_CONTAINER.format(entries=", ".join(containers)))
    keys = {
        s.public_id: _key(task=task, metric=metric, entry=s, reference=ref)
        for s in others
        if not s.is_container
    }
    found = cache.get_many(list(keys.values()))
    out: dict[str, dict[str, dict[str, Any]]] = {}
    missing = []
    for public_id, key in keys.items():
        if key in found:
            out[public_id] = found[key]["scenarios"]
            if found[key].get("main_only"):
                notes.append(found[key]["main_only"])
        else:
            missing.append(public_id)
    if missing:
        unreadable = _compute(
            task=task, ref=ref, subs=[by_id[p] for p in missing], keys=keys, metric=metric,
            main=main, out=out, notes=notes,
        )  # fmt: skip
        if unreadable:
            notes.append(NOTE_UNAVAILABLE.format(entries=", ".join(unreadable)))
    return out, list(dict.fromkeys(notes))


def _compute(
    *,
    task: Task,
    ref: Submission,
    subs: list[Submission],
    keys: dict[str, str],
    metric: str,
    main: str,
    out: dict[str, dict[str, dict[str, Any]]],
    notes: list[str],
) -> list[str]:
    """Test each of ``subs`` against ``ref`` into ``out`` and the cache; the entries whose
    files could not be read."""
    try:
        truth = task_truth(task=task)
        ref_preds = _read(ref, truth)
    except (OSError, ScoringInputError, ServiceError, ValueError):
        log.warning("compare: no prediction file for reference %s", ref.public_id, exc_info=True)
        return [ref.public_id]
    scenarios = truth.scenarios
    main_only = ""
    if truth.n > PER_SCENARIO_MAX_UNITS:
        scenarios = [main]
        main_only = NOTE_MAIN_ONLY.format(main=main, units=truth.n)
        notes.append(main_only)
    seed = permutation_seed(benchmark_hash=task.benchmark.manifest_hash, task=task.slug)
    unreadable = []
    for sub in subs:
        try:
            preds = _read(sub, truth)
            result = compare_predictions(
                truth, preds, ref_preds, metric=metric, scenarios=scenarios,
                n_permutations=N_PERMUTATIONS, seed=seed,
            )  # fmt: skip
        except (OSError, ScoringInputError, ValueError):
            log.warning("compare: no tests for %s", sub.public_id, exc_info=True)
            unreadable.append(sub.public_id)
            continue
        out[sub.public_id] = result
        cache.set(keys[sub.public_id], {"scenarios": result, "main_only": main_only}, CACHE_SECONDS)
    return unreadable
