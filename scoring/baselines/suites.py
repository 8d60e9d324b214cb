"""Reference baselines of the suites beyond MedMod whose inputs are among demographics, an
ICU time series, lab tests, chest X-rays and clinical notes (Yu et al. 2025; MEDFuse), for
binary and multi-label tasks (one output per label).

Every model is trained by the platform on the train split, its settings chosen on the
validation split, with no downloaded weights:

- ``ehr`` (or ``labs`` when the suite's structured input is lab tests): logistic regression
  on the structured inputs: demographics, the first hours' time-series summaries (mean,
  minimum, maximum and last value of the 76 discretized features), lab-test summaries
  (mean, minimum, maximum, last value and count of each test; a missing test gets the
  training median and a flag);
- ``cxr``: logistic regression on an image embedding the platform fits (principal
  components of the 16 x 16 downsampled film);
- ``notes_tfidf``: TF-IDF of word uni- and bigrams, then logistic regression;
- ``notes_cnn``: a small text encoder trained from scratch (word embeddings, a convolution,
  max pooling);
- ``modular``: Yu et al.'s modular framework: per-modality embeddings (the EHR features, the
  image components, the TF-IDF weights of the 64 terms most associated with the training
  labels), each with a present flag, concatenated, then logistic regression;
- ``late``: the mean of the single-modality models' probabilities over the modalities a
  unit has;
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import combinations
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
OPTIONAL_READ = ("cxr", "notes")  # optional modalities these models read
STRUCTURED = ("demographics", "ehr", "labs")  # read together as one table
SUPPORTED_MODALITIES = frozenset({*STRUCTURED, *OPTIONAL_READ})
IMAGE_SIDE = 16
CXR_COMPONENTS = 32
NOTE_COMPONENTS = 64
C_GRID = (0.01, 0.1, 1.0)
DEMOGRAPHIC_CATEGORIES = ("gender", "race", "insurance", "admission_type")
FUSION = ("modular", "late", "early", "medfuse_notes")

# Model key -> (method name, modalities it may read, description); a suite's models read
# what it declares of these.
MODELS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "ehr": ("EHR only (logistic regression)", ("demographics", "ehr"),
            "Logistic regression on the demographics and the time series' mean, minimum, "
            "maximum and last value of each discretized feature."),
    "labs": ("Labs only (logistic regression)", ("labs",),
             "Logistic regression on each lab test's mean, minimum, maximum, last value and "
             "count over the first day (a missing test: the training median and a flag)."),
    "cxr": ("CXR only (image embedding + LR)", ("cxr",),
            "Logistic regression on principal components of the downsampled chest X-ray."),
    "notes_tfidf": ("Notes only (TF-IDF + LR)", ("notes",),
                    "TF-IDF of word uni- and bigrams of the notes, then logistic regression."),
    "notes_cnn": ("Notes only (text CNN)", ("notes",),
                  "Word embeddings, a convolution and max pooling, trained from scratch."),
    "modular": ("Modular framework (Yu et al.)", (*STRUCTURED, *OPTIONAL_READ),
                "Per-modality embeddings with present flags, concatenated, then logistic "
                "regression (Yu et al. 2025)."),
    "late": ("Late fusion", (*STRUCTURED, *OPTIONAL_READ),
             "Mean of the single-modality models' probabilities over the modalities a unit has."),
    "early": ("Early fusion (MLP)", (*STRUCTURED, *OPTIONAL_READ),
              "Two-layer network on the concatenated embeddings, trained with modality dropout."),
    "medfuse_notes": ("MedFuse with notes (LSTM over modality tokens)", (*STRUCTURED, *OPTIONAL_READ),
                      "MedMod's MedFuse fusion made notes-aware: one token per modality a unit "
                      "has (structured inputs, then image, then notes), fused by an LSTM; an "
                      "absent modality is left out of the sequence, as MedFuse leaves out a "
                      "missing X-ray."),
}  # fmt: skip


class SuiteBaselineError(ValueError):
    """The benchmark's suite is not one these baselines handle; the message says why."""


def check_suite(suite: Suite) -> None:
    unknown = [m.slug for m in suite.modalities if m.slug not in SUPPORTED_MODALITIES]
    if unknown:
        raise SuiteBaselineError(
            f"suite {suite.slug}: modalities {', '.join(unknown)} have no reference baseline "
            f"here (these baselines read {', '.join(sorted(SUPPORTED_MODALITIES))})"
        )
    kinds = sorted({t.kind for t in suite.tasks if t.kind not in ("binary", "multilabel")})
    if kinds:
        raise SuiteBaselineError(
            f"suite {suite.slug}: task kinds {', '.join(kinds)} have no reference baseline here "
            "(binary and multi-label tasks only)"
        )
    if not any(m.slug in STRUCTURED for m in suite.modalities):
        raise SuiteBaselineError(
            f"suite {suite.slug}: these baselines need a structured input ({', '.join(STRUCTURED)})"
        )


def suite_models(suite: Suite) -> tuple[str, ...]:
    """The models that make sense for a suite: the structured model (``labs`` when the suite
    reads lab tests, else ``ehr``), one per optional modality it declares, and the fusion
    models when it declares one at least."""
    declared = {m.slug for m in suite.modalities}
    out = ["labs" if "labs" in declared else "ehr"]
    if "cxr" in declared:
        out.append("cxr")
    if "notes" in declared:
        out += ["notes_tfidf", "notes_cnn"]
    if declared & set(OPTIONAL_READ):
        out += list(FUSION)
    return tuple(out)


def model_modalities(model: str, suite: Suite) -> list[str]:
    """What a model reads of a suite's modalities, in the suite's order."""
    reads = set(MODELS[model][1])
    return [m.slug for m in suite.modalities if m.slug in reads]


# Inputs ---------------------------------------------------------------------------------


@dataclass
class Split:
    """One split's units and their raw inputs, in unit order."""

    units: pd.DataFrame  # stay_id, subject_id, has_<optional modality>, paired
    labels: dict[str, np.ndarray]  # per task, (n, labels) 0/1 (train and val only)
    tabular: np.ndarray  # the structured inputs (not yet standardized)
    pixels: np.ndarray  # (n, IMAGE_SIDE**2) float, zeros without a film
    texts: list[str]  # the unit's usable notes, joined; "" without notes
    optional: tuple[str, ...]  # the optional modalities read (of OPTIONAL_READ)

    @property
    def has(self) -> dict[str, np.ndarray]:
        return {m: self.units[f"has_{m}"].to_numpy().astype(bool) for m in self.optional}


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


def _lab_summary(bench: Benchmark, split: str, stay_ids: np.ndarray, medians: pd.Series | None) -> tuple[np.ndarray, pd.Series]:  # fmt: skip
    """Per lab test: mean, min, max, last value and count; a test a stay lacks gets the
    training median (``medians``, computed here for the train split) and a missing flag."""
    labs = bench.read_csv(layout.labs(split)).sort_values(["stay_id", "hours"], kind="stable")
    g = labs.groupby(["stay_id", "label"])["value"]
    stats = pd.concat({"mean": g.mean(), "min": g.min(), "max": g.max(), "last": g.last(),
                       "count": g.size()}, axis=1).unstack("label")  # fmt: skip
    if medians is None:
        medians = stats.median()
    stats = stats.reindex(columns=medians.index).reindex(stay_ids)
    missing = stats.xs("count", axis=1, level=0).isna().to_numpy(dtype=float)
    filled = stats.fillna(medians).fillna(0.0)
    filled.loc[:, "count"] = stats["count"].fillna(0.0).to_numpy()
    values = filled.to_numpy(dtype=float)
    return np.hstack([np.sign(values) * np.log1p(np.abs(values)), missing]), medians


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
    declared = {m.slug for m in suite.modalities}
    optional = tuple(m for m in OPTIONAL_READ if m in declared)
    first = suite.tasks[0].slug
    train_ids = bench.units(first, "train")["stay_id"]
    categories: dict[str, list[str]] = {}
    if "demographics" in declared:
        demo_all = bench.read_csv(layout.PUBLIC_DEMOGRAPHICS)
        train_demo = demo_all[demo_all["stay_id"].isin(train_ids)]
        categories = {c: sorted(train_demo[c].astype(str).unique()) for c in DEMOGRAPHIC_CATEGORIES}  # fmt: skip
    medians: pd.Series | None = None
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
                labels[t.slug] = u[list(t.label_columns)].to_numpy(dtype=np.int64)
        if "cxr" in optional and "has_cxr" not in units:
            units["has_cxr"] = units["cxr_dicom_id"].notna().astype(int)
        tables = []
        if "demographics" in declared:
            tables.append(_demographics(bench, stays, categories))
        if "ehr" in declared:
            tables.append(_ehr_summary(bench, split, stays))
        if "labs" in declared:
            lab_table, medians = _lab_summary(bench, split, stays, medians)
            tables.append(lab_table)
        out[split] = Split(
            units=units,
            labels=labels,
            tabular=np.hstack(tables),
            pixels=(_pixels(bench, units["cxr_dicom_id"].where(units["has_cxr"] == 1))
                    if "cxr" in optional else np.zeros((len(units), 0))),
            texts=_texts(bench, split, stays) if "notes" in optional else [""] * len(units),
            optional=optional,
        )  # fmt: skip
    return out


@dataclass
class Encoders:
    """Per-modality embeddings fitted on the train split."""

    scaler: StandardScaler
    pca: PCA | None
    tfidf: TfidfVectorizer | None
    terms: np.ndarray  # the TF-IDF columns of the notes embedding

    @classmethod
    def fit(cls, train: Split, seed: int) -> Encoders:
        """The notes embedding keeps the TF-IDF terms most associated with the training
        labels (chi-squared), an equal share per label of every task."""
        has = train.has
        scaler = StandardScaler().fit(train.tabular)
        pca = tfidf = None
        if "cxr" in train.optional:
            pca = PCA(n_components=CXR_COMPONENTS, whiten=True, random_state=seed)
            pca.fit(train.pixels[has["cxr"]])
        chosen: list[int] = []
        if "notes" in train.optional:
            tfidf = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, lowercase=True)  # fmt: skip
            docs = tfidf.fit_transform([t for t, h in zip(train.texts, has["notes"], strict=True) if h])  # fmt: skip
            columns = [y[has["notes"], j] for y in train.labels.values() for j in range(y.shape[1])]
            per_label = max(1, NOTE_COMPONENTS // max(1, len(columns)))
            for yj in columns:
                score = np.nan_to_num(chi2(docs, yj)[0])
                order = [int(i) for i in np.argsort(-score, kind="stable") if int(i) not in chosen]
                chosen += order[:per_label]
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
        return View(self.tabular[rows], self.cxr[rows],
                    self.notes_sparse[rows] if self.notes_sparse is not None else None,
                    self.notes[rows], [self.texts[i] for i in np.flatnonzero(rows)],
                    {m: v[rows] for m, v in self.present.items()})  # fmt: skip

    def fused(self) -> np.ndarray:
        """The modular framework's input: every embedding, zeroed where absent, with flags."""
        parts = [self.tabular]
        for m, emb in (("cxr", self.cxr), ("notes", self.notes)):
            if m in self.present:
                flag = self.present[m][:, None]
                parts += [emb * flag, flag]
        return np.hstack(parts)

    def blocks(self) -> list[np.ndarray]:
        """The fused columns of each optional modality (embedding and flag)."""
        out, at = [], self.tabular.shape[1]
        for m, emb in (("cxr", self.cxr), ("notes", self.notes)):
            if m in self.present:
                out.append(np.arange(at, at + emb.shape[1] + 1))
                at += emb.shape[1] + 1
        return out


def make_view(split: Split, enc: Encoders, withheld: dict[str, np.ndarray] | None = None) -> View:
    present = split.has
    for m, hidden in (withheld or {}).items():
        present[m] = present[m] & ~hidden
    n = len(split.units)
    sparse = enc.tfidf.transform(split.texts) if enc.tfidf is not None else None
    return View(
        tabular=enc.scaler.transform(split.tabular),
        cxr=enc.pca.transform(split.pixels) if enc.pca is not None else np.zeros((n, 0)),
        notes_sparse=sparse,
        notes=np.asarray(sparse[:, enc.terms].todense()) if sparse is not None else np.zeros((n, 0)),
        texts=split.texts,
        present=present,
    )  # fmt: skip


# Models -----------------------------------------------------------------------------------


def _auroc(y: np.ndarray, p: np.ndarray) -> float:
    """AUROC, or its mean over the labels of a multi-label target (macro); labels with one
    class only are left out."""
    y2, p2 = y.reshape(len(y), -1), p.reshape(len(p), -1)
    values = [roc_auc_score(y2[:, j], p2[:, j]) for j in range(y2.shape[1]) if 0 < y2[:, j].sum() < len(y2)]  # fmt: skip
    return float(np.mean(values)) if values else float("nan")


def _constant(rate: float) -> Callable[[Any], np.ndarray]:
    return lambda x: np.full(x.shape[0], rate)


def _positive_probability(model: LogisticRegression) -> Callable[[Any], np.ndarray]:
    return lambda x: model.predict_proba(x)[:, 1]


def _lr_per_label(x_tr: Any, y_tr: np.ndarray, x_va: Any, y_va: np.ndarray, seed: int) -> tuple[Callable[[Any], np.ndarray], list[float]]:  # fmt: skip
    """A logistic regression per label, each with the C of its best validation AUROC (a
    label with one class in training predicts its training rate)."""
    predictors: list[Callable[[Any], np.ndarray]] = []
    cs: list[float] = []
    for j in range(y_tr.shape[1]):
        yj, vj = y_tr[:, j], y_va[:, j]
        if not 0 < yj.sum() < len(yj):
            rate = float(yj.mean())
            predictors.append(_constant(rate))
            cs.append(float("nan"))
            continue
        best: tuple[LogisticRegression, float] | None = None
        for c in C_GRID:
            m = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(x_tr, yj)
            score = _auroc(vj, m.predict_proba(x_va)[:, 1])
            if best is None or score > best[1] or (np.isnan(best[1]) and not np.isnan(score)):
                best = (m, score)
        assert best is not None
        model = best[0]
        predictors.append(_positive_probability(model))
        cs.append(float(model.C))

    def predict(x: Any) -> np.ndarray:
        return np.stack([f(x) for f in predictors], axis=1)

    return predict, cs


@dataclass
class Fitted:
    """A trained model: ``predict(view) -> (n, labels) probabilities``, with its validation
    AUROC (macro over labels)."""

    predict: Callable[[View], np.ndarray]
    val_metric: float
    settings: dict[str, Any] = field(default_factory=dict)


def _with_prior(p: np.ndarray, present: np.ndarray, prior: np.ndarray) -> np.ndarray:
    return np.where(present[:, None], p, prior[None, :])


def _settings(cs: list[float]) -> dict[str, Any]:
    return {"C": cs[0]} if len(cs) == 1 else {"C": cs}


def fit_single(kind: str, tr: View, y: np.ndarray, va: View, yv: np.ndarray, seed: int) -> Fitted:
    """``ehr``/``labs`` (the structured table), ``cxr`` or ``notes_tfidf``: logistic
    regression on one modality's input."""
    prior = y.mean(axis=0).astype(float)
    get = {"cxr": lambda v: v.cxr, "notes_tfidf": lambda v: v.notes_sparse}.get(kind, lambda v: v.tabular)  # fmt: skip
    need = {"cxr": "cxr", "notes_tfidf": "notes"}.get(kind)
    rows_tr = tr.present[need] if need else np.ones(len(y), dtype=bool)
    rows_va = va.present[need] if need else np.ones(len(yv), dtype=bool)
    model, cs = _lr_per_label(get(tr)[rows_tr], y[rows_tr], get(va)[rows_va], yv[rows_va], seed)

    def predict(v: View) -> np.ndarray:
        p = model(get(v))
        return _with_prior(p, v.present[need], prior) if need else p

    return Fitted(predict, _auroc(yv, predict(va)), _settings(cs))


def _dropped_copies(view: View, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fused inputs, plus copies of the units with every optional modality in which
    some or all of them are absent (so the model learns to predict without them)."""
    mods = list(view.present)
    full = (
        np.logical_and.reduce([view.present[m] for m in mods]) if mods else np.zeros(len(y), bool)
    )
    xs, ys = [view.fused()], [y]
    drops = [c for r in range(1, len(mods) + 1) for c in combinations(mods, r)]
    for drop in drops:
        v = view.subset(full)
        for m in drop:
            v.present[m] = np.zeros(int(full.sum()), dtype=bool)
        xs.append(v.fused())
        ys.append(y[full])
    return np.vstack(xs), np.concatenate(ys)


def fit_modular(tr: View, y: np.ndarray, va: View, yv: np.ndarray, seed: int) -> Fitted:
    x, yy = _dropped_copies(tr, y)
    scale = StandardScaler().fit(x)
    model, cs = _lr_per_label(scale.transform(x), yy, scale.transform(va.fused()), yv, seed)

    def predict(v: View) -> np.ndarray:
        return model(scale.transform(v.fused()))

    return Fitted(predict, _auroc(yv, predict(va)), _settings(cs))


def fit_late(parts: dict[str, Fitted], structured: str, va: View, yv: np.ndarray) -> Fitted:
    def predict(v: View) -> np.ndarray:
        total = parts[structured].predict(v).copy()
        count = np.ones(len(total))
        for m, key in (("cxr", "cxr"), ("notes", "notes_tfidf")):
            if m in v.present:
                total += np.where(v.present[m][:, None], parts[key].predict(v), 0.0)
                count += v.present[m]
        return total / count[:, None]

    return Fitted(predict, _auroc(yv, predict(va)))


def fit_early(tr: View, y: np.ndarray, va: View, yv: np.ndarray, seed: int, *, epochs: int = 60) -> Fitted:  # fmt: skip
    """Two-layer network on the fused embeddings; each optional modality is dropped for a
    quarter of the units of every batch. The epoch with the best validation AUROC is kept."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    scale = StandardScaler().fit(tr.fused())
    x = scale.transform(tr.fused())
    n, d = x.shape
    net = torch.nn.Sequential(torch.nn.Linear(d, 64), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(64, y.shape[1]))  # fmt: skip
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-2)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    blocks = tr.blocks()
    absent = scale.transform(np.zeros((1, d)))[0]  # what a zeroed (absent) input becomes

    def run(v: View) -> np.ndarray:
        net.eval()
        with torch.no_grad():
            xv = torch.as_tensor(scale.transform(v.fused()), dtype=torch.float32)
            return torch.sigmoid(net(xv)).numpy()

    def loss(idx: np.ndarray) -> Any:
        xb = x[idx].copy()
        for cols in blocks:
            drop = rng.random(len(idx)) < 0.25
            xb[np.ix_(drop, cols)] = absent[cols]
        out = net(torch.as_tensor(xb, dtype=torch.float32))
        return loss_fn(out, torch.as_tensor(y[idx], dtype=torch.float32))

    best_epoch = _train(net, opt, loss, n=n, batch=64, epochs=epochs, rng=rng, score=lambda: _auroc(yv, run(va)))  # fmt: skip
    return Fitted(run, _auroc(yv, run(va)), {"best_epoch": best_epoch})


def fit_medfuse_notes(tr: View, y: np.ndarray, va: View, yv: np.ndarray, seed: int, *, epochs: int = 60) -> Fitted:  # fmt: skip
    """MedFuse's fusion (an LSTM over the modality embeddings, a missing modality left out
    of the sequence) with the notes as a third token. Each modality's input is projected to
    a 64-d token; the LSTM's last state feeds a linear output per label. Optional
    modalities are dropped for a quarter of the units of every batch."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    mods = list(tr.present)
    scalers = {"tabular": StandardScaler().fit(tr.tabular)}
    scalers |= {m: StandardScaler().fit(getattr(tr, m)[tr.present[m]]) for m in mods}
    dim = 64

    class TokenLSTM(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            widths = {"tabular": tr.tabular.shape[1]} | {m: getattr(tr, m).shape[1] for m in mods}
            self.proj = torch.nn.ModuleDict({k: torch.nn.Sequential(torch.nn.Linear(w, dim), torch.nn.ReLU(), torch.nn.Dropout(0.2)) for k, w in widths.items()})  # fmt: skip
            self.lstm = torch.nn.LSTM(dim, dim, batch_first=True)
            self.out = torch.nn.Linear(dim, y.shape[1])

        def forward(self, inputs: dict[str, Any], present: Any) -> Any:
            # present: (n, len(mods)) 0/1; tokens of present modalities are moved to the front
            tokens = [self.proj["tabular"](inputs["tabular"])]
            tokens += [self.proj[m](inputs[m]) for m in mods]
            seq = torch.stack(tokens, dim=1)  # (n, 1 + len(mods), dim)
            keep = torch.cat([torch.ones(len(present), 1), present], dim=1)
            order = torch.argsort(-keep + torch.arange(keep.shape[1]) * 1e-3, dim=1)
            seq = torch.gather(seq, 1, order[:, :, None].expand(-1, -1, dim))
            lengths = keep.sum(dim=1).long()
            packed = torch.nn.utils.rnn.pack_padded_sequence(seq, lengths, batch_first=True, enforce_sorted=False)  # fmt: skip
            _, (h, _) = self.lstm(packed)
            return self.out(h[-1])

    net = TokenLSTM()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-2)
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def tensors(v: View, rows: np.ndarray | None = None) -> tuple[dict[str, Any], Any]:
        sel = slice(None) if rows is None else rows
        inputs = {"tabular": torch.as_tensor(scalers["tabular"].transform(v.tabular[sel]), dtype=torch.float32)}  # fmt: skip
        for m in mods:
            inputs[m] = torch.as_tensor(
                scalers[m].transform(getattr(v, m)[sel]), dtype=torch.float32
            )
        present = np.stack([v.present[m][sel] for m in mods], axis=1) if mods else np.zeros((len(inputs["tabular"]), 0))  # fmt: skip
        return inputs, present

    def run(v: View) -> np.ndarray:
        net.eval()
        inputs, present = tensors(v)
        with torch.no_grad():
            return torch.sigmoid(net(inputs, torch.as_tensor(present, dtype=torch.float32))).numpy()

    def loss(idx: np.ndarray) -> Any:
        inputs, present = tensors(tr, idx)
        present = present * (rng.random(present.shape) >= 0.25)
        out = net(inputs, torch.as_tensor(present, dtype=torch.float32))
        return loss_fn(out, torch.as_tensor(y[idx], dtype=torch.float32))

    best_epoch = _train(net, opt, loss, n=len(y), batch=64, epochs=epochs, rng=rng, score=lambda: _auroc(yv, run(va)))  # fmt: skip
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

    import torch

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
            self.out = torch.nn.Linear(64, y.shape[1])
            self.drop = torch.nn.Dropout(0.3)

        def forward(self, ids: Any) -> Any:
            h = torch.relu(self.conv(self.emb(ids).transpose(1, 2)))
            h = h.masked_fill((ids == 0)[:, None, :], -1e4).max(dim=2).values
            return self.out(self.drop(h))

    net = TextCNN()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    rows = np.flatnonzero(tr.present["notes"])
    ids_tr = encode([tr.texts[i] for i in rows])
    y_tr = torch.as_tensor(y[rows], dtype=torch.float32)
    prior = y.mean(axis=0).astype(float)

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
        out[a.slug] = {m: paired.copy() for m in test.optional if m not in a.modalities}
    return out


def _prediction_frame(test: Split, p: np.ndarray, scenario: str, rows: np.ndarray, columns: list[str]) -> pd.DataFrame:  # fmt: skip
    frame = pd.DataFrame({"stay_id": test.units["stay_id"].to_numpy()[rows], "scenario": scenario})
    for j, c in enumerate(columns):
        frame[c] = np.round(p[rows, j], 6)
    return frame


def train_suite_baselines(
    benchmark: str,
    out: str | Path,
    *,
    models: list[str] | None = None,
    tasks: list[str] | None = None,
    seed: int = 42,
) -> dict[str, Any]:
    """Train the suite's models (:func:`suite_models`, or those named) on every task of the
    benchmark's suite and write the run directory; returns the run manifest."""
    t0 = time.perf_counter()
    bench = Benchmark.open(benchmark)
    suite = bench.suite
    check_suite(suite)
    available = suite_models(suite)
    models = list(models or available)
    unknown = [m for m in models if m not in available]
    if unknown:
        raise SuiteBaselineError(
            f"model(s) {', '.join(unknown)} do not fit suite {suite.slug}; its models are: "
            + ", ".join(available)
        )
    tasks = list(tasks or suite.task_slugs)
    for slug in tasks:
        suite.task(slug)
    structured = available[0]
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
                "modalities": model_modalities(m, suite),
                "description": MODELS[m][2],
            }
            for m in models
        },  # fmt: skip
        "timings": {"load_seconds": load_seconds},
        "tasks": {},
    }
    fitters = {
        "notes_cnn": fit_text_cnn, "modular": fit_modular, "early": fit_early,
        "medfuse_notes": fit_medfuse_notes,
    }  # fmt: skip
    for task in tasks:
        t = suite.task(task)
        columns = ["prediction"] if t.kind == "binary" else list(t.label_slugs)
        y, yv = splits["train"].labels[task], splits["val"].labels[task]
        scenarios = scenario_withheld(bench, task, test)
        views = {"paired": make_view(test, enc)} | {
            s: make_view(test, enc, withheld) for s, withheld in scenarios.items()
        }
        paired_rows = test.units["paired"].to_numpy().astype(bool)
        everyone = np.ones(len(test.units), dtype=bool)
        fitted: dict[str, Fitted] = {}
        for m in models:
            ts = time.perf_counter()
            singles = [structured, *(k for k in ("cxr", "notes_tfidf") if k in available)]
            for key in singles if m == "late" else [m]:
                if key in fitted:
                    continue
                if key in fitters:
                    fitted[key] = fitters[key](tr, y, va, yv, seed)
                else:
                    fitted[key] = fit_single(key, tr, y, va, yv, seed)
            if m == "late":
                fitted[m] = fit_late(fitted, structured, va, yv)
            train_seconds = time.perf_counter() - ts
            ts = time.perf_counter()
            frames = [
                _prediction_frame(
                    test,
                    fitted[m].predict(view),
                    s,
                    everyone if s == "paired" else paired_rows,
                    columns,
                )  # fmt: skip
                for s, view in views.items()
            ]
            path = run_dir / "predictions" / task / f"{m}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            pd.concat(frames, ignore_index=True).to_csv(path, index=False)
            val_paired = np.logical_and.reduce([va.present[o] for o in va.present]) if va.present else np.ones(len(yv), bool)  # fmt: skip
            entry = {
                "val_metric": round(fitted[m].val_metric, 6),
                "val_metric_name": "auroc" if t.kind == "binary" else "macro_auroc",
                "val_metric_all": round(fitted[m].val_metric, 6),
                "val_metric_paired": round(_auroc(yv[val_paired], fitted[m].predict(va)[val_paired]), 6),
                "train_seconds": round(train_seconds, 2),
                "predict_seconds": round(time.perf_counter() - ts, 2),
                **fitted[m].settings,
            }  # fmt: skip
            manifest["tasks"].setdefault(task, {})[m] = entry
            emit(f"{task} {m}: validation {entry['val_metric_name']} {entry['val_metric']:.4f}")
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


def notes_ablation(suite: Suite) -> str | None:
    """The ablation that leaves out the notes and keeps every other modality (Yu et al.:
    ``ablation_ehr_cxr``; MEDFuse: ``ablation_labs``), if the suite declares one."""
    others = {m.slug for m in suite.modalities} - {"notes"}
    return next((a.slug for a in suite.ablations if set(a.modalities) == others), None)


def _ci(entry: Mapping[str, Any] | None, sign: float = 1.0) -> str:
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
        without_notes = notes_ablation(suite)
        head = ["model", f"all modalities ({t.primary_metric})"]
        head += [a.title for a in suite.ablations]
        if without_notes:
            head.append(f"notes add (all minus {suite.ablation(without_notes).title})")
        lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
        for m in entries:
            rep = scoring.score_predictions(run / "predictions" / task / f"{m}.csv", truth=truth, replicates=replicates)  # fmt: skip
            reports.setdefault(task, {})[m] = rep
            rows = {r["scenario"]: r for r in rep["robustness"].get("ablations", [])}
            cells = [m, _ci(rows.get("paired"))]
            cells += [_ci(rows.get(a.slug)) for a in suite.ablations]
            if without_notes:
                dropped = rows.get(without_notes)
                cells.append(_ci(dropped.get("difference") if dropped else None, -1.0))
            lines.append("| " + " | ".join(cells) + " |")
        parts.append(
            f"{task}: {t.primary_metric} on the {truth.paired.sum():,} paired test units, "
            f"95% CI ({replicates} patient-level bootstrap replicates)\n\n" + "\n".join(lines)
        )
    return "\n\n".join(parts), reports


def notes_add(reports: dict[str, dict[str, Any]], suite: Suite) -> dict[str, list[str]]:
    """Per task, the fusion models whose paired difference between all modalities and all
    but the notes (:func:`notes_ablation`) has a 95% CI above 0."""
    without_notes = notes_ablation(suite)
    out: dict[str, list[str]] = {}
    for task, by_model in reports.items():
        out[task] = []
        for m in FUSION:
            rows = {r["scenario"]: r for r in by_model.get(m, {}).get("robustness", {}).get("ablations", [])}  # fmt: skip
            d = (rows.get(without_notes or "") or {}).get("difference")
            if d and d["ci"][1] is not None and d["ci"][1] < 0:
                out[task].append(m)
    return out


__all__ = [
    "MODELS",
    "RUN_KIND",
    "SuiteBaselineError",
    "check_suite",
    "is_suite_run",
    "load_splits",
    "model_modalities",
    "notes_ablation",
    "suite_models",
    "notes_add",
    "read_run",
    "score_run",
    "train_suite_baselines",
]
