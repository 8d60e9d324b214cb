"""Reference baselines of the suites beyond MedMod whose inputs are demographics, an ICU
time series, chest X-rays and clinical notes (Yu et al. 2025), for binary tasks.

Every model is trained by the platform on the train split, its settings chosen on the
validation split, with no downloaded weights:

- ``ehr``: logistic regression on the demographics and the first hours' time-series
  summaries (mean, minimum, maximum and last value of the 76 discretized features);
- ``cxr``: logistic regression on an image embedding the platform fits (principal
  components of the 16 x 16 downsampled film);
- ``notes_tfidf``: TF-IDF of word uni- and bigrams, then logistic regression;
- ``notes_cnn``: a small text encoder trained from scratch (word embeddings, a convolution,
  max pooling);
- ``modular``: Yu et al.'s modular framework: per-modality embeddings (the EHR features, the
  image components, the TF-IDF weights of the 64 terms most associated with the training
  labels), each with a present flag, concatenated, then logistic regression;
- ``late``: the mean of the unimodal models' probabilities over the modalities a unit has;
- ``early``: a two-layer network on the concatenated embeddings, trained with modality
  dropout.

A model that lacks its modality for a unit (not recorded, or withheld by a scenario)
predicts from what is left: the fusion models read the present flags, the single-modality
models of an optional modality fall back to the training prevalence. Prediction files hold
``paired`` (each unit as it comes) and every scenario of the suite: each optional modality
withheld per the public scenario file, and each ablation (a modality subset).

``python -m scoring.baselines train --benchmark DIR --out DIR`` runs them for such a
benchmark; the run directory has the layout of the MedMod baselines' (``run.json``,
``predictions/{task}/{model}.csv``), so the platform enters both the same way.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.feature_selection import chi2
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from benchmark_data import layout
from benchmark_data.benchmark import Benchmark
from benchmark_data.suite import Suite
from scoring.baselines.artifacts import emit, run_header
from scoring.baselines.data import decode_image

RUN_KIND = "suite-baselines"
OPTIONAL = ("cxr", "notes")
SUPPORTED_MODALITIES = frozenset({"demographics", "ehr", "cxr", "notes"})
IMAGE_SIDE = 16
CXR_COMPONENTS = 32
NOTE_COMPONENTS = 64
C_GRID = (0.01, 0.1, 1.0)
DEMOGRAPHIC_CATEGORIES = ("gender", "race", "insurance", "admission_type")

# Model key -> (method name, modalities used, description).
MODELS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "ehr": ("EHR only (logistic regression)", ("demographics", "ehr"),
            "Logistic regression on the demographics and the time series' mean, minimum, "
            "maximum and last value of each discretized feature."),
    "cxr": ("CXR only (image embedding + LR)", ("cxr",),
            "Logistic regression on principal components of the downsampled chest X-ray."),
    "notes_tfidf": ("Notes only (TF-IDF + LR)", ("notes",),
                    "TF-IDF of word uni- and bigrams of the reports, then logistic regression."),
    "notes_cnn": ("Notes only (text CNN)", ("notes",),
                  "Word embeddings, a convolution and max pooling, trained from scratch."),
    "modular": ("Modular framework (Yu et al.)", ("demographics", "ehr", "cxr", "notes"),
                "Per-modality embeddings with present flags, concatenated, then logistic "
                "regression (Yu et al. 2025)."),
    "late": ("Late fusion", ("demographics", "ehr", "cxr", "notes"),
             "Mean of the unimodal models' probabilities over the modalities a unit has."),
    "early": ("Early fusion (MLP)", ("demographics", "ehr", "cxr", "notes"),
              "Two-layer network on the concatenated embeddings, trained with modality dropout."),
}  # fmt: skip
MODEL_KEYS = tuple(MODELS)


class SuiteBaselineError(ValueError):
    """The benchmark's suite is not one these baselines handle; the message says why."""


def check_suite(suite: Suite) -> None:
    unknown = [m.slug for m in suite.modalities if m.slug not in SUPPORTED_MODALITIES]
    if unknown:
        raise SuiteBaselineError(
            f"suite {suite.slug}: modalities {', '.join(unknown)} have no reference baseline "
            f"here (these baselines read {', '.join(sorted(SUPPORTED_MODALITIES))})"
        )
    kinds = sorted({t.kind for t in suite.tasks if t.kind != "binary"})
    if kinds:
        raise SuiteBaselineError(
            f"suite {suite.slug}: task kinds {', '.join(kinds)} have no reference baseline here "
            "(binary tasks only)"
        )


# Inputs ---------------------------------------------------------------------------------


@dataclass
class Split:
    """One split's units and their raw inputs, in unit order."""

    units: pd.DataFrame  # stay_id, subject_id, cxr_dicom_id, has_cxr, has_notes, paired
    labels: dict[str, np.ndarray]  # per task (train and val only)
    tabular: np.ndarray  # demographics and time-series summaries (not yet standardized)
    pixels: np.ndarray  # (n, IMAGE_SIDE**2) float, zeros without a film
    texts: list[str]  # the unit's usable notes, joined; "" without notes

    @property
    def has(self) -> dict[str, np.ndarray]:
        return {m: self.units[f"has_{m}"].to_numpy().astype(bool) for m in OPTIONAL}


def _ehr_summary(bench: Benchmark, split: str, stay_ids: np.ndarray) -> np.ndarray:
    x, index = bench.discretized(split)
    width = x.shape[1]
    by_stay = {int(s): (int(o), int(k)) for s, o, k in index[["stay_id", "offset", "n_hours"]].itertuples(index=False)}  # fmt: skip
    out = np.zeros((len(stay_ids), 4 * width + 1), dtype=np.float64)
    for i, s in enumerate(stay_ids.tolist()):
        o, k = by_stay.get(int(s), (0, 0))
        if k == 0:
            continue
        rows = x[o : o + k].astype(np.float64)
        out[i] = np.r_[rows.mean(0), rows.min(0), rows.max(0), rows[-1], k]
    return out


def _demographics(bench: Benchmark, stay_ids: np.ndarray, categories: dict[str, list[str]]) -> np.ndarray:  # fmt: skip
    demo = bench.read_csv(layout.PUBLIC_DEMOGRAPHICS).set_index("stay_id").reindex(stay_ids)
    cols = [pd.to_numeric(demo["age"], errors="coerce").fillna(65).to_numpy(dtype=float)[:, None] / 100]  # fmt: skip
    for c in DEMOGRAPHIC_CATEGORIES:
        values = demo[c].astype(str).to_numpy()
        cols.append(np.stack([values == v for v in categories[c]], axis=1).astype(float))
    return np.hstack(cols)


def _texts(bench: Benchmark, split: str, stay_ids: np.ndarray) -> list[str]:
    notes = bench.read_csv(layout.notes(split))
    notes = notes.sort_values(["stay_id", "store_minute", "note_id"], kind="stable")
    joined = notes.groupby("stay_id")["text"].agg(lambda t: "\n\n".join(t.astype(str)))
    return [str(joined.get(int(s), "")) for s in stay_ids.tolist()]


def _pixels(bench: Benchmark, dicom_ids: pd.Series) -> np.ndarray:
    out = np.zeros((len(dicom_ids), IMAGE_SIDE * IMAGE_SIDE), dtype=np.float64)
    for i, d in enumerate(dicom_ids.tolist()):
        if isinstance(d, str) and d:
            img = decode_image(bench.image_bytes(d), size=IMAGE_SIDE)
            out[i] = img.reshape(-1) / 255.0
    return out


def load_splits(bench: Benchmark) -> dict[str, Split]:
    """Every split's units (the suite's tasks share them) with labels and raw inputs."""
    suite = bench.suite
    check_suite(suite)
    first = suite.tasks[0].slug
    demo_all = bench.read_csv(layout.PUBLIC_DEMOGRAPHICS)
    train_ids = bench.units(first, "train")["stay_id"]
    train_demo = demo_all[demo_all["stay_id"].isin(train_ids)]
    categories = {c: sorted(train_demo[c].astype(str).unique()) for c in DEMOGRAPHIC_CATEGORIES}
    out: dict[str, Split] = {}
    for split in ("train", "val", "test"):
        units = bench.units(first, split).reset_index(drop=True)
        stays = units["stay_id"].to_numpy()
        labels: dict[str, np.ndarray] = {}
        if split != "test":
            for t in suite.tasks:
                u = bench.units(t.slug, split)
                if not u["stay_id"].equals(units["stay_id"]):
                    raise SuiteBaselineError(f"{t.slug} {split}: its units differ from {first}'s")
                labels[t.slug] = u[t.label_columns[0]].to_numpy(dtype=np.int64)
        has_cxr = (
            units["has_cxr"] if "has_cxr" in units else units["cxr_dicom_id"].notna().astype(int)
        )
        units = units.assign(has_cxr=has_cxr.astype(int))
        out[split] = Split(
            units=units,
            labels=labels,
            tabular=np.hstack([_demographics(bench, stays, categories), _ehr_summary(bench, split, stays)]),
            pixels=_pixels(bench, units["cxr_dicom_id"].where(units["has_cxr"] == 1)),
            texts=_texts(bench, split, stays),
        )  # fmt: skip
    return out


@dataclass
class Encoders:
    """Per-modality embeddings fitted on the train split."""

    scaler: StandardScaler
    pca: PCA
    tfidf: TfidfVectorizer
    terms: np.ndarray  # the TF-IDF columns of the notes embedding

    @classmethod
    def fit(cls, train: Split, seed: int) -> Encoders:
        """The notes embedding keeps the TF-IDF terms most associated with any task's
        training labels (chi-squared), an equal share per task."""
        has = train.has
        scaler = StandardScaler().fit(train.tabular)
        pca = PCA(n_components=CXR_COMPONENTS, whiten=True, random_state=seed)
        pca.fit(train.pixels[has["cxr"]])
        tfidf = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, lowercase=True)
        docs = tfidf.fit_transform([t for t, h in zip(train.texts, has["notes"], strict=True) if h])
        per_task = max(1, NOTE_COMPONENTS // max(1, len(train.labels)))
        chosen: list[int] = []
        for y in train.labels.values():
            score = np.nan_to_num(chi2(docs, y[has["notes"]])[0])
            chosen += [int(i) for i in np.argsort(-score, kind="stable") if int(i) not in chosen][
                :per_task
            ]
        return cls(scaler, pca, tfidf, np.array(sorted(chosen), dtype=np.int64))


@dataclass
class View:
    """A split's embeddings under a scenario: what is withheld is absent."""

    tabular: np.ndarray
    cxr: np.ndarray
    notes_sparse: Any
    notes: np.ndarray
    texts: list[str]
    present: dict[str, np.ndarray]

    def subset(self, rows: np.ndarray) -> View:
        return View(self.tabular[rows], self.cxr[rows], self.notes_sparse[rows],
                    self.notes[rows], [self.texts[i] for i in np.flatnonzero(rows)],
                    {m: v[rows] for m, v in self.present.items()})  # fmt: skip

    def fused(self) -> np.ndarray:
        """The modular framework's input: every embedding, zeroed where absent, with flags."""
        c, n = self.present["cxr"], self.present["notes"]
        return np.hstack([self.tabular, self.cxr * c[:, None], c[:, None],
                          self.notes * n[:, None], n[:, None]])  # fmt: skip


def make_view(split: Split, enc: Encoders, withheld: dict[str, np.ndarray] | None = None) -> View:
    present = split.has
    for m, hidden in (withheld or {}).items():
        present[m] = present[m] & ~hidden
    sparse = enc.tfidf.transform(split.texts)
    return View(
        tabular=enc.scaler.transform(split.tabular),
        cxr=enc.pca.transform(split.pixels),
        notes_sparse=sparse,
        notes=np.asarray(sparse[:, enc.terms].todense()),
        texts=split.texts,
        present=present,
    )


# Models -----------------------------------------------------------------------------------


def _auroc(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def _best_lr(x_tr: Any, y_tr: np.ndarray, x_va: Any, y_va: np.ndarray, seed: int) -> tuple[LogisticRegression, float]:  # fmt: skip
    best: tuple[LogisticRegression, float] | None = None
    for c in C_GRID:
        m = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(x_tr, y_tr)
        score = _auroc(y_va, m.predict_proba(x_va)[:, 1])
        if best is None or score > best[1]:
            best = (m, score)
    assert best is not None
    return best


@dataclass
class Fitted:
    """A trained model: ``predict(view) -> probabilities``, with its validation AUROC."""

    predict: Callable[[View], np.ndarray]
    val_metric: float
    settings: dict[str, Any] = field(default_factory=dict)


def _with_prior(p: np.ndarray, present: np.ndarray, prior: float) -> np.ndarray:
    return np.where(present, p, prior)


def fit_single(kind: str, tr: View, y: np.ndarray, va: View, yv: np.ndarray, seed: int) -> Fitted:
    """``ehr``, ``cxr`` or ``notes_tfidf``: logistic regression on one modality's input."""
    prior = float(y.mean())
    get = {"ehr": lambda v: v.tabular, "cxr": lambda v: v.cxr, "notes_tfidf": lambda v: v.notes_sparse}[kind]  # fmt: skip
    need = {"ehr": None, "cxr": "cxr", "notes_tfidf": "notes"}[kind]
    rows_tr = tr.present[need] if need else np.ones(len(y), dtype=bool)
    rows_va = va.present[need] if need else np.ones(len(yv), dtype=bool)
    model, _ = _best_lr(get(tr)[rows_tr], y[rows_tr], get(va)[rows_va], yv[rows_va], seed)

    def predict(v: View) -> np.ndarray:
        p = model.predict_proba(get(v))[:, 1]
        return _with_prior(p, v.present[need], prior) if need else p

    return Fitted(predict, _auroc(yv, predict(va)), {"C": model.C})


def _dropped_copies(view: View, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fused inputs, plus copies of the units with both optional modalities in which
    one or both are absent (so the model learns to predict without them)."""
    both = view.present["cxr"] & view.present["notes"]
    xs, ys = [view.fused()], [y]
    for drop in (("cxr",), ("notes",), ("cxr", "notes")):
        v = view.subset(both)
        for m in drop:
            v.present[m] = np.zeros(int(both.sum()), dtype=bool)
        xs.append(v.fused())
        ys.append(y[both])
    return np.vstack(xs), np.concatenate(ys)


def fit_modular(tr: View, y: np.ndarray, va: View, yv: np.ndarray, seed: int) -> Fitted:
    x, yy = _dropped_copies(tr, y)
    scale = StandardScaler().fit(x)
    model, _ = _best_lr(scale.transform(x), yy, scale.transform(va.fused()), yv, seed)

    def predict(v: View) -> np.ndarray:
        return model.predict_proba(scale.transform(v.fused()))[:, 1]

    return Fitted(predict, _auroc(yv, predict(va)), {"C": model.C})


def fit_late(parts: dict[str, Fitted], va: View, yv: np.ndarray) -> Fitted:
    def predict(v: View) -> np.ndarray:
        total = parts["ehr"].predict(v).copy()
        count = np.ones(len(total))
        for m, key in (("cxr", "cxr"), ("notes", "notes_tfidf")):
            total += np.where(v.present[m], parts[key].predict(v), 0.0)
            count += v.present[m]
        return total / count

    return Fitted(predict, _auroc(yv, predict(va)))


def _torch():
    import torch

    return torch


def fit_early(tr: View, y: np.ndarray, va: View, yv: np.ndarray, seed: int, *, epochs: int = 60) -> Fitted:  # fmt: skip
    """Two-layer network on the fused embeddings; each optional modality is dropped for a
    quarter of the units of every batch. The epoch with the best validation AUROC is kept."""
    torch = _torch()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    scale = StandardScaler().fit(tr.fused())
    x = scale.transform(tr.fused())
    n, d = x.shape
    net = torch.nn.Sequential(torch.nn.Linear(d, 64), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(64, 1))  # fmt: skip
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-2)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    width = tr.tabular.shape[1]
    cxr_cols = np.arange(width, width + CXR_COMPONENTS + 1)
    notes_cols = np.arange(cxr_cols[-1] + 1, d)
    absent = scale.transform(np.zeros((1, d)))[0]  # what a zeroed (absent) input becomes

    def run(v: View) -> np.ndarray:
        net.eval()
        with torch.no_grad():
            xv = torch.as_tensor(scale.transform(v.fused()), dtype=torch.float32)
            return torch.sigmoid(net(xv)).numpy()[:, 0]

    def loss(idx: np.ndarray) -> Any:
        xb = x[idx].copy()
        for cols in (cxr_cols, notes_cols):
            drop = rng.random(len(idx)) < 0.25
            xb[np.ix_(drop, cols)] = absent[cols]
        out = net(torch.as_tensor(xb, dtype=torch.float32))[:, 0]
        return loss_fn(out, torch.as_tensor(y[idx], dtype=torch.float32))

    best_epoch = _train(net, opt, loss, n=n, batch=64, epochs=epochs, rng=rng, score=lambda: _auroc(yv, run(va)))  # fmt: skip
    return Fitted(run, _auroc(yv, run(va)), {"best_epoch": best_epoch})


def _train(net: Any, opt: Any, loss: Callable[[np.ndarray], Any], *, n: int, batch: int,
           epochs: int, rng: np.random.Generator, score: Callable[[], float]) -> int:  # fmt: skip
    """Mini-batch epochs over ``n`` rows; keeps the weights of the epoch with the best
    validation ``score`` and returns that epoch (1-based)."""
    best: tuple[float, Any, int] = (float("-inf"), None, 0)
    for epoch in range(epochs):
        net.train()
        for idx in np.array_split(rng.permutation(n), max(1, n // batch)):
            opt.zero_grad()
            loss(idx).backward()
            opt.step()
        value = score()
        if value > best[0]:
            best = (value, {k: t.clone() for k, t in net.state_dict().items()}, epoch + 1)
    net.load_state_dict(best[1])
    return best[2]


_TOKEN = r"[a-z][a-z0-9/]+"


def fit_text_cnn(tr: View, y: np.ndarray, va: View, yv: np.ndarray, seed: int, *, epochs: int = 25) -> Fitted:  # fmt: skip
    """A text encoder from scratch: word embeddings (words seen twice in training), a
    width-3 convolution, max pooling over the report, a linear output."""
    import re

    torch = _torch()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    max_len = 320

    def tokens(t: str) -> list[str]:
        return re.findall(_TOKEN, t.lower())

    counts: dict[str, int] = {}
    for t, h in zip(tr.texts, tr.present["notes"], strict=True):
        if h:
            for w in tokens(t):
                counts[w] = counts.get(w, 0) + 1
    vocab = {w: i + 2 for i, w in enumerate(sorted(w for w, c in counts.items() if c >= 2))}

    def encode(texts: list[str]) -> Any:
        ids = np.zeros((len(texts), max_len), dtype=np.int64)
        for i, t in enumerate(texts):
            seq = [vocab.get(w, 1) for w in tokens(t)][:max_len]
            ids[i, : len(seq)] = seq
        return torch.as_tensor(ids)

    class TextCNN(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = torch.nn.Embedding(len(vocab) + 2, 48, padding_idx=0)
            self.conv = torch.nn.Conv1d(48, 64, kernel_size=3, padding=1)
            self.out = torch.nn.Linear(64, 1)
            self.drop = torch.nn.Dropout(0.3)

        def forward(self, ids: Any) -> Any:
            h = torch.relu(self.conv(self.emb(ids).transpose(1, 2)))
            h = h.masked_fill((ids == 0)[:, None, :], -1e4).max(dim=2).values
            return self.out(self.drop(h))[:, 0]

    net = TextCNN()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    rows = np.flatnonzero(tr.present["notes"])
    ids_tr = encode([tr.texts[i] for i in rows])
    y_tr = torch.as_tensor(y[rows], dtype=torch.float32)
    prior = float(y.mean())

    def run(v: View) -> np.ndarray:
        net.eval()
        with torch.no_grad():
            p = torch.sigmoid(net(encode(v.texts))).numpy()
        return _with_prior(p, v.present["notes"], prior)

    best_epoch = _train(
        net, opt, lambda idx: loss_fn(net(ids_tr[idx]), y_tr[idx]), n=len(rows), batch=32,
        epochs=epochs, rng=rng, score=lambda: _auroc(yv, run(va)),
    )  # fmt: skip
    return Fitted(run, _auroc(yv, run(va)), {"best_epoch": best_epoch, "vocabulary": len(vocab)})


# Scenarios and the run ------------------------------------------------------------------


def scenario_withheld(bench: Benchmark, task: str, test: Split) -> dict[str, dict[str, np.ndarray]]:
    """For each scenario of the suite other than ``paired`` and ``natural``, which test units'
    optional modalities it withholds."""
    suite = bench.suite
    stays = test.units["stay_id"].to_numpy()
    table = bench.scenarios(task)
    out: dict[str, dict[str, np.ndarray]] = {}
    for m in suite.modalities:
        for name in m.scenarios:
            if name in table.withheld:
                out[name] = {m.slug: np.isin(stays, table.withheld[name])}
    paired = test.units["paired"].to_numpy().astype(bool)
    for a in suite.ablations:
        out[a.slug] = {m: paired.copy() for m in OPTIONAL if m not in a.modalities}
    return out


def _prediction_frame(test: Split, p: np.ndarray, scenario: str, rows: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"stay_id": test.units["stay_id"].to_numpy()[rows],
                         "scenario": scenario, "prediction": np.round(p[rows], 6)})  # fmt: skip


def train_suite_baselines(
    benchmark: str,
    out: str | Path,
    *,
    models: list[str] | None = None,
    tasks: list[str] | None = None,
    seed: int = 42,
) -> dict[str, Any]:
    """Train the models on every task of the benchmark's suite and write the run directory;
    returns the run manifest."""
    t0 = time.perf_counter()
    bench = Benchmark.open(benchmark)
    suite = bench.suite
    check_suite(suite)
    models = list(models or MODEL_KEYS)
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise SuiteBaselineError(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODEL_KEYS)}")  # fmt: skip
    tasks = list(tasks or suite.task_slugs)
    for t in tasks:
        suite.task(t)
    run_dir = Path(out)
    run_dir.mkdir(parents=True, exist_ok=True)
    emit(f"loading {bench.name} {bench.version} ({suite.slug})")
    splits = load_splits(bench)
    enc = Encoders.fit(splits["train"], seed)
    tr, va = make_view(splits["train"], enc), make_view(splits["val"], enc)
    test = splits["test"]
    load_seconds = round(time.perf_counter() - t0, 2)
    emit(f"loaded {sum(len(s.units) for s in splits.values()):,} units in {load_seconds:.1f} s")
    manifest: dict[str, Any] = {
        **run_header(RUN_KIND, str(benchmark), bench),
        "seed": seed,
        "models": models,
        "model_info": {
            m: {
                "method_name": MODELS[m][0],
                "modalities": list(MODELS[m][1]),
                "description": MODELS[m][2],
            }
            for m in models
        },  # fmt: skip
        "timings": {"load_seconds": load_seconds},
        "tasks": {},
    }
    for task in tasks:
        y, yv = splits["train"].labels[task], splits["val"].labels[task]
        scenarios = scenario_withheld(bench, task, test)
        views = {"paired": make_view(test, enc)} | {
            s: make_view(test, enc, withheld) for s, withheld in scenarios.items()
        }
        paired_rows = test.units["paired"].to_numpy().astype(bool)
        fitted: dict[str, Fitted] = {}
        for m in models:
            ts = time.perf_counter()
            needs = ["ehr", "cxr", "notes_tfidf"] if m == "late" else [m]
            for key in needs:
                if key in fitted:
                    continue
                if key in ("ehr", "cxr", "notes_tfidf"):
                    fitted[key] = fit_single(key, tr, y, va, yv, seed)
                elif key == "notes_cnn":
                    fitted[key] = fit_text_cnn(tr, y, va, yv, seed)
                elif key == "modular":
                    fitted[key] = fit_modular(tr, y, va, yv, seed)
                elif key == "early":
                    fitted[key] = fit_early(tr, y, va, yv, seed)
            if m == "late":
                fitted[m] = fit_late(fitted, va, yv)
            train_seconds = time.perf_counter() - ts
            ts = time.perf_counter()
            frames = [_prediction_frame(test, fitted[m].predict(views["paired"]), "paired", np.ones(len(test.units), dtype=bool))]  # fmt: skip
            for s, view in views.items():
                if s != "paired":
                    frames.append(_prediction_frame(test, fitted[m].predict(view), s, paired_rows))
            path = run_dir / "predictions" / task / f"{m}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            pd.concat(frames, ignore_index=True).to_csv(path, index=False)
            val_paired = va.present["cxr"] & va.present["notes"]
            entry = {
                "val_metric": round(fitted[m].val_metric, 6),
                "val_metric_name": "auroc",
                "val_metric_all": round(fitted[m].val_metric, 6),
                "val_metric_paired": round(_auroc(yv[val_paired], fitted[m].predict(va)[val_paired]), 6),
                "train_seconds": round(train_seconds, 2),
                "predict_seconds": round(time.perf_counter() - ts, 2),
                **fitted[m].settings,
            }  # fmt: skip
            manifest["tasks"].setdefault(task, {})[m] = entry
            emit(f"{task} {m}: validation AUROC {entry['val_metric']:.4f}")
    manifest["timings"]["total_seconds"] = round(time.perf_counter() - t0, 2)
    (run_dir / "run.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """A run directory's ``run.json`` (empty when it has none or it is not JSON)."""
    try:
        data = json.loads((Path(run_dir) / "run.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def is_suite_run(manifest: dict[str, Any]) -> bool:
    return manifest.get("kind") == RUN_KIND


FUSION = ("modular", "late", "early")


def _ci(entry: dict[str, Any] | None, sign: float = 1.0) -> str:
    if not entry or entry.get("value") is None:
        return "n/a"
    lo, hi = (sign * v if v is not None else None for v in entry["ci"])
    if sign < 0:
        lo, hi = hi, lo
    if lo is None or hi is None:
        return "n/a"
    # + 0.0: no "-0.000" for a model that does not read the modality
    return f"{sign * entry['value'] + 0.0:.3f} [{lo + 0.0:.3f}, {hi + 0.0:.3f}]"


def score_run(
    run_dir: str | Path, bench: Benchmark | None = None, *, replicates: int = 1000
) -> tuple[str, dict[str, dict[str, Any]]]:
    """Score every prediction file of a suite run with the scoring engine; returns the
    markdown tables (per task: the primary metric with all modalities, on each ablation's
    subset, and what the notes add, the paired difference with its CI) and the reports.
    Test labels are read by the scoring engine only."""
    import scoring
    from scoring.truth import truth_from_benchmark

    run = Path(run_dir)
    manifest = read_run(run)
    bench = bench or Benchmark.open(manifest["benchmark"]["uri"])
    if bench.manifest_hash != manifest["benchmark"]["hash"]:
        raise SuiteBaselineError(f"{run} was made on another benchmark than {bench.uri}")
    suite = bench.suite
    reports: dict[str, dict[str, Any]] = {}
    parts = []
    for task, entries in manifest["tasks"].items():
        t = suite.task(task)
        truth = truth_from_benchmark(bench, task)
        head = ["model", f"all modalities ({t.primary_metric})"]
        head += [a.title for a in suite.ablations] + ["notes add (all minus EHR and CXR)"]
        lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
        for m in entries:
            rep = scoring.score_predictions(run / "predictions" / task / f"{m}.csv", truth=truth, replicates=replicates)  # fmt: skip
            reports.setdefault(task, {})[m] = rep
            rows = {r["scenario"]: r for r in rep["robustness"].get("ablations", [])}
            cells = [m, _ci(rows.get("paired"))]
            cells += [_ci(rows.get(a.slug)) for a in suite.ablations]
            cells.append(_ci((rows.get("ablation_ehr_cxr") or {}).get("difference"), -1.0))
            lines.append("| " + " | ".join(cells) + " |")
        parts.append(
            f"{task}: {t.primary_metric} on the {truth.paired.sum():,} paired test units, "
            f"95% CI ({replicates} patient-level bootstrap replicates)\n\n" + "\n".join(lines)
        )
    return "\n\n".join(parts), reports


def notes_add(reports: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """Per task, the fusion models whose paired difference (all modalities minus EHR and
    CXR) has a 95% CI above 0."""
    out: dict[str, list[str]] = {}
    for task, by_model in reports.items():
        out[task] = []
        for m in FUSION:
            rows = {r["scenario"]: r for r in by_model.get(m, {}).get("robustness", {}).get("ablations", [])}  # fmt: skip
            d = (rows.get("ablation_ehr_cxr") or {}).get("difference")
            if d and d["ci"][1] is not None and d["ci"][1] < 0:
                out[task].append(m)
    return out


__all__ = [
    "MODELS",
    "MODEL_KEYS",
    "RUN_KIND",
    "SuiteBaselineError",
    "check_suite",
    "is_suite_run",
    "load_splits",
    "notes_add",
    "read_run",
    "score_run",
    "train_suite_baselines",
]
