"""Reference baselines: entries made from a baselines run's prediction files.

A run directory (written by ``python -m scoring.baselines train``) holds ``run.json`` and
``predictions/{task}/{model}.csv`` in the public prediction-file format, made from the files.
``python -m leaderboard.containers stream-baselines`` adds ``stream/{task}/{model}.csv``: the
same models asked by the streaming gateway, one prediction time at a time. Where a model has
a streamed file, that one is entered, as an entry the platform ran causally (``streamed``).
Only those files and the manifests' JSON are read here: the web process and the worker never
load torch.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction

from benchmark_data.tasks import TASKS
from leaderboard.board.errors import BenchmarkInvalid, DuplicateSubmission
from leaderboard.board.models import (
    DEFAULT_SUITE,
    AuditLog,
    Benchmark,
    Evaluation,
    Submission,
    Task,
    Track,
)
from leaderboard.board.selectors.submissions import benchmark_current
from leaderboard.board.selectors.training_missingness import variant_method_name
from leaderboard.board.services.audit import audit_record
from leaderboard.board.services.identity import account_ensure_confirmed
from leaderboard.board.services.submissions import (
    SubmissionMeta,
    submission_create,
    submission_unpublish,
)
from leaderboard.containers.baselines import STREAM_DIR, read_stream_manifest

log = logging.getLogger(__name__)

REFERENCE_USERNAME = "reference"
REFERENCE_TEAM = "Platform reference"
REFERENCE_EMAIL = "reference-baselines@platform.invalid"
RUN_MANIFEST = "run.json"
NOTE_STREAMED = (
    "Reference baseline run through the streaming gateway; replaces its predictions made "
    "from the files."
)

# Model key -> (method name, uses EHR, uses CXR, description).
MODELS: dict[str, tuple[str, bool, bool, str]] = {
    "ehr": ("EHR only (LSTM)", True, False, "LSTM over the discretized ICU time series."),
    "cxr": ("CXR only (CNN)", False, True, "Convolutional network on the chest X-ray."),
    "late": ("Late fusion", True, True, "Average of the unimodal models' predictions."),
    "early": ("Early fusion", True, True, "Classifier on the frozen unimodal embeddings."),
    "joint": ("Joint fusion", True, True, "Unimodal encoders fine-tuned together."),
    "medfuse": ("MedFuse", True, True, "LSTM fusion of the EHR and CXR embeddings (MedFuse)."),
    "daft": ("DAFT", True, True, "Dynamic affine feature-map transform (DAFT)."),
    "mmtm": ("MMTM", True, True, "Multimodal transfer module (MMTM)."),
    # CareBench's strategies built for missing modalities.
    "drfuse": ("DrFuse", True, True, "Shared and modality-specific parts, disentangled (DrFuse)."),
    "shaspec": (
        "ShaSpec",
        True,
        True,
        "Shared and specific features; missing ones from shared (ShaSpec).",
    ),
    "m3care": ("M3Care", True, True, "Missing image imputed from similar patients (M3Care)."),
    "smil": ("SMIL", True, True, "Missing image reconstructed from learned priors (SMIL)."),
    "umse": (
        "UMSE",
        True,
        True,
        "Unified embeddings with modality tokens and skip-bottleneck (UMSE).",
    ),
    "healnet": (
        "HEALNet",
        True,
        True,
        "Hybrid early fusion through a shared latent array (HEALNet).",
    ),
    "flexmoe": (
        "Flex-MoE",
        True,
        True,
        "A missing-modality bank and experts routed by the modalities present (Flex-MoE).",
    ),
    # CareBench's strategies for complete modalities.
    "utde": (
        "UTDE",
        True,
        True,
        "Gated time embeddings of the EHR, interleaved attention with the image (UTDE).",
    ),
    "aug": (
        "AUG",
        True,
        True,
        "Boosted unimodal classifiers; new learners go to the weaker modality (AUG).",
    ),
    "inforeg": ("InfoReg", True, True, "The faster modality's learning slowed early on (InfoReg)."),
}

# What the demo trains unless told otherwise: MedMod's eight models and three of CareBench's
# strategies (the full set: ``--baseline-models all``).
DEFAULT_MODELS: tuple[str, ...] = (
    "ehr", "cxr", "late", "early", "joint", "medfuse", "daft", "mmtm",
    "drfuse", "healnet", "utde",
)  # fmt: skip


@dataclass(frozen=True)
class BaselineFile:
    task: str
    model: str
    path: Path
    streamed: bool = False


def reference_user() -> Any:
    user, created = get_user_model().objects.get_or_create(
        username=REFERENCE_USERNAME, defaults={"is_active": False}
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    # The platform's own account: a confirmed address of its own, so that it never shares
    # an identity (or a quota) with a participant.
    account_ensure_confirmed(user=user, email=REFERENCE_EMAIL)
    return user


def _files(root: Path, task: str, *, streamed: bool) -> dict[str, BaselineFile]:
    folder = root / task
    out: dict[str, BaselineFile] = {}
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            for suffix in (".csv.gz", ".csv"):
                if path.name.endswith(suffix) and path.is_file():
                    model = path.name[: -len(suffix)]
                    out[model] = BaselineFile(task, model, path, streamed=streamed)
                    break
    return out


def baseline_files(run_dir: Path) -> list[BaselineFile]:
    """The prediction files of a run, in task and model order: a model's streamed file
    when the run has one for its task (recorded in ``stream.json``), else its batch file.
    The tasks are those the run names (MedMod's when it names none)."""
    out: list[BaselineFile] = []
    streamed_runs = read_stream_manifest(run_dir).get("runs") or {}
    manifest = read_run_manifest(run_dir)
    named = list(manifest.get("tasks") or TASKS)
    medmod = list(TASKS)
    tasks = sorted(named, key=lambda t: (medmod.index(t) if t in medmod else len(medmod), named.index(t)))  # fmt: skip
    models = list(manifest.get("model_info") or MODELS)
    for task in tasks:
        files = _files(run_dir / "predictions", task, streamed=False)
        streamed = _files(run_dir / STREAM_DIR, task, streamed=True)
        for model, f in streamed.items():
            if model in (streamed_runs.get(task) or {}):
                files[model] = f
        out.extend(files.values())
    order = {m: i for i, m in enumerate(models)}
    return sorted(out, key=lambda f: (tasks.index(f.task), order.get(f.model, 99), f.model))


def read_run_manifest(run_dir: Path) -> dict[str, Any]:
    path = run_dir / RUN_MANIFEST
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise BenchmarkInvalid(f"{path} is not valid JSON ({exc})") from None


STREAMED_TEXT = (
    " Run by the platform through the streaming gateway: each unit's inputs revealed up to "
    "its prediction time only, in every missing-modality scenario."
)


def _meta(
    model: str, task: str, manifest: dict[str, Any], *, streamed: bool = False
) -> SubmissionMeta:
    info = (manifest.get("model_info") or {}).get(model)
    if info:  # a suite's run says what each model is and reads
        name, description = info["method_name"], info["description"]
        modalities = tuple(info["modalities"])
    else:
        name, ehr, cxr, description = MODELS.get(model, (model, True, True, "Reference model."))
        modalities = tuple(m for m, used in (("ehr", ehr), ("cxr", cxr)) if used)
    entry = (manifest.get("tasks") or {}).get(task, {}).get(model, {})
    details = []
    if manifest.get("code_version"):
        details.append(f"code {manifest['code_version']}")
    if manifest.get("seed") is not None:
        details.append(f"seed {manifest['seed']}")
    if entry.get("best_epoch"):
        details.append(f"selected epoch {entry['best_epoch']}")
    if isinstance(entry.get("val_metric"), (int, float)):
        metric = entry.get("val_metric_name") or (
            TASKS[task].primary_metric if task in TASKS else "metric"
        )
        details.append(f"validation {metric} {entry['val_metric']:.4f}")
    text = description + (f" Run: {', '.join(details)}." if details else "")
    text += STREAMED_TEXT if streamed else ""
    return SubmissionMeta(
        method_name=name,
        team_name=REFERENCE_TEAM,
        description=text,
        uses_ehr="ehr" in modalities,
        uses_cxr="cxr" in modalities,
        modalities=modalities,
        training_data=(
            "The benchmark's train split (model fitting) and validation split (model "
            "selection) only; trained by the platform."
        ),
    )


def train_missing_rate(manifest: dict[str, Any]) -> float | None:
    """The share of training stays whose images a run withheld (a sweep's run), or None."""
    rate = (manifest.get("config") or {}).get("train_cxr_missing")
    if rate in (None, 0, 0.0):
        return None
    if not isinstance(rate, (int, float)) or not 0 < rate < 1:
        raise BenchmarkInvalid(f"the run's train_cxr_missing {rate!r} is not in (0, 1)")
    return float(rate)


def _variant(meta: SubmissionMeta, rate: float | None) -> SubmissionMeta:
    if rate is None:
        return meta
    text = (
        f" Trained with the chest X-rays of {rate:.0%} of the training and validation stays "
        "withheld (training-time missingness, CareBench's protocol); not ranked, shown on the "
        "task's training-missingness curve."
    )
    return replace(meta, method_name=variant_method_name(meta.method_name, rate),
                   description=meta.description + text)  # fmt: skip


def baselines_load(
    *, run_dir: str | Path, actor: Any = None, only: set[tuple[str, str]] | None = None
) -> list[Submission]:
    """Enter every prediction file of a run (or those of ``only``'s tasks and models) as a
    reference entry of the current benchmark (queued for scoring). A file already entered is
    skipped; an earlier reference entry of the same model and task is withdrawn from the
    board in favour of the new one. A run trained with training-time missingness
    (``config.train_cxr_missing``, a sweep's) enters variants: named with their rate,
    ``train_missing_rate`` set, never ranked."""
    run = Path(run_dir)
    if not run.is_dir():
        raise BenchmarkInvalid(f"{run} is not a directory")
    manifest = read_run_manifest(run)
    rate = train_missing_rate(manifest)
    files = [f for f in baseline_files(run) if only is None or (f.task, f.model) in only]
    if not files:
        raise BenchmarkInvalid(f"{run} holds no prediction files (predictions/TASK/MODEL.csv)")
    # The run names the benchmark it was made on: the current one of that benchmark's suite
    # (MedMod's when the run names none).
    bench_hash = (manifest.get("benchmark") or {}).get("hash")
    made_on = Benchmark.objects.filter(manifest_hash=bench_hash).first() if bench_hash else None
    current = benchmark_current(suite=made_on.suite.slug if made_on else DEFAULT_SUITE)
    if current is None:
        raise BenchmarkInvalid("no current benchmark: run load_benchmark first")
    if bench_hash and bench_hash != current.manifest_hash:
        raise BenchmarkInvalid(
            f"the run was made on benchmark {bench_hash[:12]}, not on the current benchmark "
            f"{current.manifest_hash[:12]} ({current})"
        )
    tasks = {t.slug: t for t in Task.objects.select_related("benchmark").filter(benchmark=current)}
    owner = reference_user()
    track = Track.objects.get(slug=Track.PREDICTION_FILE)
    created: list[Submission] = []
    for f in files:
        task = tasks.get(f.task)
        if task is None:
            log.warning("skipping %s: task %s is not in the current benchmark", f.path, f.task)
            continue
        meta = _variant(_meta(f.model, f.task, manifest, streamed=f.streamed), rate)
        upload = SimpleUploadedFile(f.path.name, f.path.read_bytes(), content_type="text/csv")
        try:
            with transaction.atomic():
                sub = submission_create(
                    owner=owner,
                    task=task,
                    track=track,
                    upload=upload,
                    meta=meta,
                    is_reference=True,
                    streamed=f.streamed,
                    enforce_quota=False,
                    trigger=Evaluation.Trigger.BASELINE,
                    note=NOTE_STREAMED if f.streamed else "",
                )
                if rate is not None:
                    Submission.objects.filter(pk=sub.pk).update(train_missing_rate=rate)
                    sub.train_missing_rate = rate
                older = Submission.objects.filter(
                    task=task, is_reference=True, method_name=meta.method_name,
                    train_missing_rate=rate,
                ).exclude(pk=sub.pk)  # fmt: skip
                for old in older:
                    submission_unpublish(actor=owner, submission=old)
                audit_record(
                    actor=actor,
                    action=AuditLog.Action.BASELINE_LOAD,
                    submission=sub,
                    run=str(run),
                    model=f.model,
                )
        except DuplicateSubmission:
            log.info("%s/%s is already entered", f.task, f.model)
            continue
        created.append(sub)
    return created


def baselines_load_sweep(*, sweep_dir: str | Path, actor: Any = None) -> list[Submission]:
    """Enter the models a training-missingness sweep asked for (``sweep.json``; not the
    unimodal models they build on, unless asked) from each of its runs, as variants."""
    root = Path(sweep_dir)
    index = read_run_manifest_named(root, "sweep.json")
    settings = index.get("settings") or {}
    wanted = {(t, m) for t in settings.get("tasks") or [] for m in settings.get("models") or []}
    created: list[Submission] = []
    for run in index.get("runs") or []:
        created += baselines_load(run_dir=root / run["dir"], actor=actor, only=wanted)
    return created


def read_run_manifest_named(root: Path, name: str) -> dict[str, Any]:
    path = root / name
    if not path.is_file():
        raise BenchmarkInvalid(f"{root} is not a sweep directory: {name} is missing")
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise BenchmarkInvalid(f"{path} is not valid JSON ({exc})") from None
    return data if isinstance(data, dict) else {}
