"""Training with early stopping on the validation primary metric, and batched prediction.

Adam (encoders that start from trained models at a smaller rate), gradient norm clipped at
5; binary cross-entropy for binary and multi-label tasks and 10-class cross-entropy for
length of stay. An epoch is a seeded pass over the training sequences, or over as many as
fit ``epoch_steps`` EHR rows, with the loss on a sample of the hourly rows of each stay
(``readout_fraction``; the large hourly tasks). After every epoch the validation
split is predicted in full and scored with scikit-learn (AUROC, macro AUROC over the labels
that have both classes, or Cohen's linear-weighted kappa of the most probable bucket) on all
its units (the image-only model: on those with an image). The best epoch's weights are kept;
training stops after ``patience`` epochs without improvement, after ``epochs`` epochs, or at
the time limit (checked after every batch). Early fusion, whose encoders are frozen, trains
its head on their outputs, computed once.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.metrics import cohen_kappa_score, roc_auc_score
from torch import nn

from scoring.baselines.batching import batch_order, iter_batches, make_batch
from scoring.baselines.data import ImageCache, SplitEHR, TaskData
from scoring.baselines.models import Baseline, ConcatFusion, task_loss

GRAD_CLIP = 5.0
CACHED_BATCH = 64
ENCODER_PREFIXES = ("ehr.", "cxr.")


@dataclass(frozen=True)
class FitOptions:
    """Training options of one model on one task."""

    lr: float = 1e-3
    lr_pretrained: float | None = None  # for the encoders (ehr.*, cxr.*), when set
    epochs: int = 20
    patience: int = 4
    batch_size: int = 32
    epoch_steps: int | None = None
    readout_fraction: float = 1.0
    max_seconds: float | None = None
    seed: int = 0


@dataclass
class FitResult:
    best_epoch: int
    best_metric: float
    epochs_run: int
    seconds: float
    stopped: str
    history: list[dict[str, Any]] = field(default_factory=list)


def validation_metric(kind: str, y: np.ndarray, p: np.ndarray) -> float:
    """The task's primary metric with scikit-learn; NaN when undefined (one class only).

    >>> validation_metric("binary", np.array([0, 1, 1]), np.array([[0.2], [0.7], [0.6]]))
    1.0
    """
    if len(y) == 0:
        return math.nan
    if kind == "los":
        return float(cohen_kappa_score(y, p.argmax(axis=1), weights="linear"))
    if kind == "binary":
        return float(roc_auc_score(y, p[:, 0])) if len(np.unique(y)) == 2 else math.nan
    aucs = [
        roc_auc_score(y[:, j], p[:, j]) for j in range(y.shape[1]) if len(np.unique(y[:, j])) == 2
    ]
    return float(np.mean(aucs)) if aucs else math.nan


@torch.no_grad()
def predict_proba(
    model: Baseline,
    data: TaskData,
    ehr: SplitEHR,
    images: ImageCache,
    *,
    batch_size: int,
    n_units: int | None = None,
    seqs: np.ndarray | None = None,
) -> np.ndarray:
    """Probabilities in unit order, ``(n_units, out_dim)``; rows of units outside ``seqs``
    (when given) are NaN."""
    model.eval()
    n = n_units if n_units is not None else data.n_readouts
    out = np.full((n, model.out_dim), np.nan, dtype=np.float64)
    sub = data if seqs is None else _only(data, seqs)
    for batch in iter_batches(sub, ehr, images, batch_size=batch_size):
        p = model.probabilities(batch).double().numpy()
        assert batch.units is not None
        out[batch.units.numpy()] = p
    return out


def _only(data: TaskData, seqs: np.ndarray) -> TaskData:
    """A view of ``data`` whose sequences are ``seqs`` only (read-outs kept as they are)."""
    seqs = np.asarray(seqs, dtype=np.int64)
    ro = data.readouts_of(seqs)
    counts = data.ro_start[seqs + 1] - data.ro_start[seqs]
    remap = np.full(data.n_sequences, -1, dtype=np.int64)
    remap[seqs] = np.arange(len(seqs))
    return TaskData(
        task=data.task,
        carry=data.carry,
        seq_stay=data.seq_stay[seqs],
        seq_offset=data.seq_offset[seqs],
        seq_len=data.seq_len[seqs],
        seq_lead=data.seq_lead[seqs],
        ro_start=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        ro_seq=remap[data.ro_seq[ro]],
        ro_pos=data.ro_pos[ro],
        ro_img=data.ro_img[ro],
        ro_unit=data.ro_unit[ro],
        y=None if data.y is None else data.y[ro],
    )


def split_metrics(
    kind: str, data: TaskData, p: np.ndarray, *, select_paired: bool = False
) -> dict[str, float]:
    """Primary metric on all units of a labelled split (``val_metric_all``) and on those
    with an image (``val_metric_paired``); ``p`` is in unit order. ``val_metric``, the one
    model selection uses, is the first, or with ``select_paired`` the second (for the
    image-only model, whose prediction for every unit without an image is the same); either
    falls back to the other when undefined."""
    if data.y is None:
        raise ValueError("evaluation needs a labelled split")
    y = np.empty_like(data.y)
    y[data.ro_unit] = data.y
    has = np.zeros(data.n_readouts, dtype=bool)
    has[data.ro_unit] = data.ro_img >= 0
    every = validation_metric(kind, y, p)
    paired = validation_metric(kind, y[has], p[has])
    first, second = (paired, every) if select_paired else (every, paired)
    return {
        "val_metric": second if math.isnan(first) else first,
        "val_metric_paired": paired,
        "val_metric_all": every,
    }


def evaluate(
    model: Baseline,
    data: TaskData,
    ehr: SplitEHR,
    images: ImageCache,
    *,
    batch_size: int,
) -> dict[str, float]:
    """:func:`split_metrics` of the model's predictions on a labelled split."""
    p = predict_proba(model, data, ehr, images, batch_size=batch_size)
    return split_metrics(model.kind, data, p, select_paired=not model.uses_ehr)


def _better(a: float, b: float) -> bool:
    return not math.isnan(a) and (math.isnan(b) or a > b)


Reporter = Callable[[dict[str, Any]], None]
# One training pass: (epoch, deadline) -> (summed loss, read-outs seen, cut short).
EpochFn = Callable[[int, float | None], tuple[float, int, bool]]


def _loop(
    model: Baseline,
    run_epoch: EpochFn,
    validate: Callable[[], dict[str, float]],
    options: FitOptions,
    report: Reporter | None,
) -> FitResult:
    """Epochs with early stopping on the validation metric; keeps the best weights."""
    t0 = time.perf_counter()
    deadline = None if options.max_seconds is None else t0 + options.max_seconds
    best_metric, best_epoch, best_state = math.nan, 0, copy.deepcopy(model.state_dict())
    history: list[dict[str, Any]] = []
    stopped = "epochs"
    epoch = 0
    for epoch in range(1, options.epochs + 1):
        t_epoch = time.perf_counter()
        model.train()
        total, n_seen, out_of_time = run_epoch(epoch, deadline)
        metrics = validate()
        # An undefined metric (one class in validation) keeps the latest weights.
        undefined = math.isnan(metrics["val_metric"]) and math.isnan(best_metric)
        if undefined or _better(metrics["val_metric"], best_metric):
            best_metric, best_epoch = metrics["val_metric"], epoch
            best_state = copy.deepcopy(model.state_dict())
        record = {
            "epoch": epoch,
            "train_loss": total / max(n_seen, 1),
            **metrics,
            "best_epoch": best_epoch,
            "seconds": time.perf_counter() - t_epoch,
            "partial_epoch": out_of_time,
        }
        history.append(record)
        if report is not None:
            report(record)
        if out_of_time:
            stopped = "time limit"
            break
        if epoch - best_epoch >= options.patience:
            stopped = "early stopping"
            break
    model.load_state_dict(best_state)
    return FitResult(
        best_epoch=best_epoch,
        best_metric=best_metric,
        epochs_run=epoch,
        seconds=time.perf_counter() - t0,
        stopped=stopped,
        history=history,
    )


def _step(
    model: Baseline,
    optimizer: torch.optim.Optimizer,
    params: list[nn.Parameter],
    loss: torch.Tensor,
    epoch: int,
) -> float:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    model.adjust_gradients(epoch)
    nn.utils.clip_grad_norm_(params, GRAD_CLIP)
    optimizer.step()
    return float(loss.item())


def _param_groups(model: Baseline, options: FitOptions) -> list[dict[str, Any]]:
    """One learning rate, or ``lr_pretrained`` for the encoders and ``lr`` for the rest."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if options.lr_pretrained is None:
        return [{"params": [p for _, p in named], "lr": options.lr}]
    enc = [p for n, p in named if n.startswith(ENCODER_PREFIXES)]
    rest = [p for n, p in named if not n.startswith(ENCODER_PREFIXES)]
    groups = [{"params": enc, "lr": options.lr_pretrained}, {"params": rest, "lr": options.lr}]
    return [g for g in groups if g["params"]]


def fit(
    model: Baseline,
    train: TaskData,
    val: TaskData,
    *,
    ehr_train: SplitEHR,
    ehr_val: SplitEHR,
    images: ImageCache,
    options: FitOptions,
    report: Reporter | None = None,
    progress: bool = False,
    label: str = "",
) -> FitResult:
    """Train ``model`` in place; on return it holds the weights of the best epoch.

    A model with frozen encoders (early fusion) is trained on their outputs, computed once.
    """
    torch.manual_seed(options.seed)
    rng = np.random.default_rng(options.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(_param_groups(model, options))
    if isinstance(model, ConcatFusion) and model.frozen:
        return _fit_cached(
            model, train, val, ehr_train, ehr_val, images, options, optimizer, params, rng, report
        )
    augment = torch.Generator().manual_seed(options.seed)
    keep = (options.readout_fraction, rng) if options.readout_fraction < 1.0 else None

    def run_epoch(epoch: int, deadline: float | None) -> tuple[float, int, bool]:
        # The row budget bounds the EHR work of an epoch; an image-only model sees every unit.
        budget = options.epoch_steps if model.uses_ehr else None
        order = batch_order(train, batch_size=options.batch_size, rng=rng, max_steps=budget)
        if progress:
            from tqdm import tqdm

            order = tqdm(order, desc=f"{label} epoch {epoch}", leave=False, file=sys.stderr)
        total, seen = 0.0, 0
        for seqs in order:
            batch = make_batch(train, seqs, ehr_train, images, augment=augment, keep=keep)
            assert batch.y is not None
            loss = model.training_loss(batch)
            total += _step(model, optimizer, params, loss, epoch) * batch.n_readouts
            seen += batch.n_readouts
            if deadline is not None and time.perf_counter() > deadline:
                return total, seen, True
        return total, seen, False

    def validate() -> dict[str, float]:
        return evaluate(model, val, ehr_val, images, batch_size=options.batch_size)

    return _loop(model, run_epoch, validate, options, report)


@torch.no_grad()
def _encode(
    model: ConcatFusion, data: TaskData, ehr: SplitEHR, images: ImageCache, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]:
    """Frozen encoder outputs of every read-out, in unit order: EHR, image, has-image."""
    model.eval()
    n = data.n_readouts
    e = torch.zeros(n, model.ehr.hidden)
    p = torch.zeros(n, model.cxr.out_channels)
    has = torch.zeros(n, dtype=torch.bool)
    for batch in iter_batches(data, ehr, images, batch_size=batch_size):
        assert batch.units is not None
        e[batch.units], p[batch.units] = model.encode(batch)
        has[batch.units] = batch.has_image
    y = np.empty_like(data.y) if data.y is not None else np.zeros(0)
    if data.y is not None:
        y[data.ro_unit] = data.y
    return e, p, has, y


def _fit_cached(
    model: ConcatFusion,
    train: TaskData,
    val: TaskData,
    ehr_train: SplitEHR,
    ehr_val: SplitEHR,
    images: ImageCache,
    options: FitOptions,
    optimizer: torch.optim.Optimizer,
    params: list[nn.Parameter],
    rng: np.random.Generator,
    report: Reporter | None,
) -> FitResult:
    """Early fusion: the encoders are frozen, so their outputs are computed once and an
    epoch is a pass over every training read-out in batches of ``CACHED_BATCH``."""
    e_tr, p_tr, h_tr, y_np = _encode(model, train, ehr_train, images, options.batch_size)
    y_tr = torch.from_numpy(y_np)
    e_va, p_va, h_va, _ = _encode(model, val, ehr_val, images, options.batch_size)

    def run_epoch(epoch: int, deadline: float | None) -> tuple[float, int, bool]:
        total, seen = 0.0, 0
        perm = torch.from_numpy(rng.permutation(len(y_tr)))
        for idx in perm.split(CACHED_BATCH):
            logits = model.fuse(e_tr[idx], p_tr[idx], h_tr[idx])
            loss = task_loss(model.kind, logits, y_tr[idx])
            total += _step(model, optimizer, params, loss, epoch) * len(idx)
            seen += len(idx)
            if deadline is not None and time.perf_counter() > deadline:
                return total, seen, True
        return total, seen, False

    @torch.no_grad()
    def validate() -> dict[str, float]:
        model.eval()
        logits = model.fuse(e_va, p_va, h_va)
        prob = torch.softmax(logits, 1) if model.kind == "los" else torch.sigmoid(logits)
        return split_metrics(model.kind, val, prob.double().numpy())

    return _loop(model, run_epoch, validate, options, report)
