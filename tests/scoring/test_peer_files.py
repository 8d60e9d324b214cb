"""Prediction and truth files as peers write them: mimic3-benchmarks' ``save_results`` and
MedMod's listfile-shaped files. Each is accepted after the documented mapping, or refused with
a message that says what to change; after that change it is accepted.

The files are written here, line by line, in the shapes those projects write (header, column
order, ``%.6f`` numbers, episode names in ``stay``), from a small truth whose stays have
episode names (``tests.scoring.malformed_corpus.make_truth``).
"""

from __future__ import annotations

import csv
import functools
import io

import numpy as np
import pytest

from benchmark_data.suite import builtin_suite
from scoring.cli import main as cli_main
from scoring.errors import (
    HINT_SIGMOID,
    HINT_SOFTMAX,
    WARN_STAY_IGNORED,
    WARN_STAY_RENAMED,
    PredictionFileError,
)
from scoring.report import score_predictions
from scoring.truth import Truth, TruthError, truth_from_csv
from scoring.validation import read_predictions
from tests.scoring.malformed_corpus import FIRST_STAY, FIRST_SUBJECT, make_truth, stay_name

MEDMOD = builtin_suite("medmod")
# Names exactly as MedMod's listfiles and code write them (Appendix B, CheXpert).
MEDMOD_WRITTEN_NAMES = (
    "Congestive heart failure; nonhypertensive",
    "Pleurisy; pneumothorax; pulmonary collapse",
    "Pneumonia (except that caused by tuberculosis or sexually transmitted disease)",
    "Respiratory failure; insufficiency; arrest (adult)",
    "Enlarged Cardiomediastinum",
    "Support Devices",
)


@functools.cache
def truth_for(slug: str) -> Truth:
    return make_truth(slug)


def episode(stay_id: int) -> str:
    """The mimic3-benchmarks episode name of a test stay."""
    return stay_name(FIRST_SUBJECT + int(stay_id) - FIRST_STAY)


def predictions(truth: Truth, columns: int = 1, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.random((truth.n, columns))


def drop_columns(data: bytes, *names: str) -> bytes:
    """The same file without some columns, every other field left as written."""
    rows = list(csv.reader(io.StringIO(data.decode())))
    keep = [i for i, name in enumerate(rows[0]) if name not in names]
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([[r[i] for i in keep] for r in rows])
    return out.getvalue().encode()


def refused(data: bytes, truth: Truth) -> PredictionFileError:
    with pytest.raises(PredictionFileError) as info:
        read_predictions(data, truth=truth)
    return info.value


# --- mimic3-benchmarks save_results ---------------------------------------------------------
def mimic3_ihm(truth: Truth, p: np.ndarray) -> bytes:
    """in_hospital_mortality: ``stay,prediction,y_true``, the probability as %.6f."""
    lines = ["stay,prediction,y_true"]
    for s, x, y in zip(truth.keys["stay_id"], p[:, 0], truth.y, strict=True):
        lines.append(f"{episode(s)},{x:.6f},{y}")
    return ("\n".join(lines) + "\n").encode()


def mimic3_decomp(truth: Truth, p: np.ndarray) -> bytes:
    """decompensation: ``stay,period_length,prediction,y_true``."""
    lines = ["stay,period_length,prediction,y_true"]
    keys = truth.keys
    for s, t, x, y in zip(keys["stay_id"], keys["period_length"], p[:, 0], truth.y, strict=True):
        lines.append(f"{episode(s)},{t:.6f},{x:.6f},{y}")
    return ("\n".join(lines) + "\n").encode()


def mimic3_los(truth: Truth, hours: np.ndarray) -> bytes:
    """length_of_stay: ``stay,period_length,prediction,y_true``, all numbers as %.6f; the
    prediction is remaining hours (a regression output, or a bucket's mean hours)."""
    lines = ["stay,period_length,prediction,y_true"]
    keys = truth.keys
    for s, t, x, y in zip(keys["stay_id"], keys["period_length"], hours, truth.y, strict=True):
        lines.append(f"{episode(s)},{t:.6f},{x:.6f},{y:.6f}")
    return ("\n".join(lines) + "\n").encode()


def mimic3_pheno(truth: Truth, p: np.ndarray, *, first: int = 1) -> bytes:
    """phenotyping: ``stay,period_length,pred_1..pred_25,label_1..label_25``."""
    n = truth.task.n_labels
    header = ["stay", "period_length"]
    header += [f"pred_{i}" for i in range(first, first + n)]
    header += [f"label_{i}" for i in range(first, first + n)]
    lines = [",".join(header)]
    for s, x, y in zip(truth.keys["stay_id"], p, truth.y, strict=True):
        fields = [episode(s), f"{100.0:.6f}", *(f"{a:.6f}" for a in x), *(str(a) for a in y)]
        lines.append(",".join(fields))
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize(
    ("slug", "labels"),
    [
        ("in-hospital-mortality", ("y_true",)),
        ("decompensation", ("y_true",)),
        ("length-of-stay", ("y_true",)),
        ("phenotyping", tuple(f"label_{i}" for i in range(1, 26))),
    ],
)
def test_mimic3_save_results_is_refused_saying_which_columns_to_remove(slug, labels) -> None:
    """The file save_results writes carries the labels: the message names them and says to
    remove them; without them the same file is accepted, episode names mapped to stays."""
    truth = truth_for(slug)
    p = predictions(truth, truth.task.n_labels if slug == "phenotyping" else 1)
    if slug == "length-of-stay":
        p = p * 300.0
    writer = {
        "in-hospital-mortality": mimic3_ihm,
        "decompensation": mimic3_decomp,
        "length-of-stay": lambda t, v: mimic3_los(t, v[:, 0]),
        "phenotyping": mimic3_pheno,
    }[slug]
    data = writer(truth, p)
    err = refused(data, truth)
    assert err.code == "label_columns"
    shown = "label_1..label_25" if slug == "phenotyping" else "y_true"
    assert f"remove column(s) {shown} and keep the key and prediction columns" in err.message
    assert len(err.message) < 200

    preds = read_predictions(drop_columns(data, *labels), truth=truth)
    got = preds.values["paired"].reshape(truth.n, -1)
    np.testing.assert_allclose(got, p, atol=5e-7)
    assert WARN_STAY_RENAMED in preds.warnings
    assert preds.form == ("hours" if slug == "length-of-stay" else "probability")
    if slug == "phenotyping":
        assert any("pred_1..pred_25 were read by position" in w for w in preds.warnings)
        assert any("period_length were ignored" in w for w in preds.warnings)


def test_phenotyping_positions_numbered_from_zero_are_read_in_label_order() -> None:
    truth = truth_for("phenotyping")
    p = predictions(truth, 25)
    data = drop_columns(mimic3_pheno(truth, p, first=0), *(f"label_{i}" for i in range(25)))
    assert data.startswith(b"stay,period_length,pred_0,pred_1,")
    preds = read_predictions(data, truth=truth)
    np.testing.assert_allclose(preds.values["paired"], p, atol=5e-7)
    assert any("pred_0..pred_24 were read by position" in w for w in preds.warnings)


def test_unclipped_regression_hours_are_refused_saying_to_clip_them() -> None:
    """A regression head predicts negative remaining hours near the end of a stay; mimic3's
    evaluation clips them, the platform asks the submitter to."""
    truth = truth_for("length-of-stay")
    hours = predictions(truth)[:, 0] * 200.0
    hours[[2, 7, 9]] = [-3.25, -0.5, -3.25]
    data = drop_columns(mimic3_los(truth, hours), "y_true")
    err = refused(data, truth)
    assert err.code == "negative_hours"
    keys = [
        f"({episode(truth.keys['stay_id'][i])}, {truth.keys['period_length'][i]:.6f})"
        for i in (2, 7, 9)
    ]
    assert err.message == (
        "column prediction has 3 negative value(s) (-3.250000, -0.500000), first rows: "
        f"{', '.join(keys)}: remaining hours must be >= 0; clip negative hours at 0"
    )
    assert err.details["column"] == "prediction" and err.details["keys"] == keys
    assert err.details["values"] == ["-3.250000", "-0.500000"]

    clipped = drop_columns(mimic3_los(truth, np.clip(hours, 0, None)), "y_true")
    preds = read_predictions(clipped, truth=truth)
    np.testing.assert_allclose(preds.values["paired"], np.clip(hours, 0, None), atol=5e-7)


def test_binary_logits_are_refused_saying_to_apply_the_sigmoid() -> None:
    truth = truth_for("in-hospital-mortality")
    logits = np.linspace(-3, 3, truth.n)[:, None]
    err = refused(drop_columns(mimic3_ihm(truth, logits), "y_true"), truth)
    assert err.code == "probability_range"
    n = int(((logits < 0) | (logits > 1)).sum())
    assert err.message.startswith(f"column prediction has {n} value(s) outside [0, 1] (-3.000000,")
    assert err.message.endswith(HINT_SIGMOID)
    probs = 1 / (1 + np.exp(-logits))
    preds = read_predictions(drop_columns(mimic3_ihm(truth, probs), "y_true"), truth=truth)
    np.testing.assert_allclose(preds.values["paired"], probs[:, 0], atol=5e-7)


# --- MedMod: listfile-shaped files ----------------------------------------------------------
def medmod_listfile(truth: Truth, names: list[str], values: np.ndarray, *, fmt: str) -> bytes:
    """MedMod's listfile layout, ``stay,period_length,stay_id,<columns>``, one row per unit,
    written as its create_* scripts write: ``{stay},{period_length:.6f},{stay_id},...``."""
    lines = [",".join(["stay", "period_length", "stay_id", *names])]
    keys = truth.keys
    periods = keys["period_length"] if "period_length" in keys else np.full(truth.n, 0)
    for s, t, row in zip(keys["stay_id"], periods, values, strict=True):
        lines.append(",".join([episode(s), f"{t:.6f}", str(s), *(fmt.format(v) for v in row)]))
    return ("\n".join(lines) + "\n").encode()


def test_the_suite_declares_the_names_medmod_writes() -> None:
    declared = {
        *MEDMOD.task("phenotyping").label_names,
        *MEDMOD.task("radiology").label_names,
    }
    assert set(MEDMOD_WRITTEN_NAMES) <= declared


@pytest.mark.parametrize("slug", ["in-hospital-mortality", "decompensation"])
def test_medmod_binary_listfile_with_a_prediction_column_is_accepted(slug) -> None:
    truth = truth_for(slug)
    p = predictions(truth)
    data = medmod_listfile(truth, ["prediction"], p, fmt="{:.6f}")
    preds = read_predictions(data, truth=truth)
    np.testing.assert_allclose(preds.values["paired"], p[:, 0], atol=5e-7)
    assert WARN_STAY_IGNORED in preds.warnings


def test_medmod_phenotype_names_are_read_as_the_label_slugs() -> None:
    """``Congestive heart failure; nonhypertensive`` and the other 24 names, as MedMod's
    listfile header writes them, in its order or any other."""
    truth = truth_for("phenotyping")
    task = truth.task
    p = predictions(truth, task.n_labels)
    order = np.random.default_rng(0).permutation(task.n_labels)
    names = [task.label_names[i] for i in order]
    assert "Congestive heart failure; nonhypertensive" in names
    data = medmod_listfile(truth, names, p[:, order], fmt="{:.6f}")
    preds = read_predictions(data, truth=truth)
    np.testing.assert_allclose(preds.values["paired"], p, atol=5e-7)
    assert any("25 column(s) named by label were read as the label slugs" in w for w in preds.warnings)  # fmt: skip


def test_radiology_findings_by_chexpert_name_are_accepted() -> None:
    truth = truth_for("radiology")
    task = truth.task
    p = predictions(truth, task.n_labels)
    lines = [",".join(["dicom_id", *task.label_names])]
    for d, row in zip(truth.keys["dicom_id"], p, strict=True):
        lines.append(",".join([d, *(f"{v:.4f}" for v in row)]))
    preds = read_predictions(("\n".join(lines) + "\n").encode(), truth=truth)
    np.testing.assert_allclose(preds.values["paired"], p, atol=5e-5)


def test_a_label_by_name_and_by_slug_and_a_near_miss_are_refused_briefly() -> None:
    truth = truth_for("phenotyping")
    task = truth.task
    p = predictions(truth, task.n_labels + 1)
    both = medmod_listfile(truth, [*task.label_names, "shock"], p, fmt="{:.6f}")
    err = refused(both, truth)
    assert err.code == "duplicate_columns"
    assert "Shock and shock (label shock)" in err.message

    names = [n.replace("; nonhypertensive", " nonhypertensive") for n in task.label_names]
    err = refused(medmod_listfile(truth, names, p[:, :-1], fmt="{:.6f}"), truth)
    assert err.code == "unknown_columns"
    assert err.message.startswith(
        "unknown column(s) Congestive heart failure nonhypertensive (did you mean "
        "Congestive heart failure; nonhypertensive instead of"
    )
    assert "and 22 more" in err.message and len(err.message) < 700


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_medmod_length_of_stay_logits_are_refused_saying_to_apply_softmax() -> None:
    """MedMod's length-of-stay head is a 10-class cross-entropy layer: raw logits written to
    bucket_0..bucket_9 are refused (never transformed); their softmax is accepted."""
    truth = truth_for("length-of-stay")
    logits = np.random.default_rng(4).normal(0, 2, (truth.n, 10))
    columns = list(truth.task.bucket_columns)
    err = refused(medmod_listfile(truth, columns, logits, fmt="{:.6f}"), truth)
    assert err.code == "probability_range"
    first = next(j for j in range(10) if ((logits[:, j] < 0) | (logits[:, j] > 1)).any())
    assert err.message.startswith(f"column bucket_{first} has ")
    assert err.message.endswith(HINT_SOFTMAX) and "apply softmax to the logits" in err.message
    assert err.details["column"] == f"bucket_{first}" and len(err.details["keys"]) == 5
    assert err.details["values"][0] == next(f"{v:.6f}" for v in logits[:, first] if v < 0 or v > 1)

    probs = softmax(logits)
    preds = read_predictions(medmod_listfile(truth, columns, probs, fmt="{:.6f}"), truth=truth)
    np.testing.assert_allclose(preds.values["paired"], probs, atol=5e-7)
    assert preds.form == "buckets"


def test_bucket_rows_in_range_that_do_not_sum_to_one_show_their_sums() -> None:
    """Logits that all happen to lie in [0, 1] (or a sigmoid per bucket) are caught by the sum."""
    truth = truth_for("length-of-stay")
    values = np.full((truth.n, 10), 0.05)
    values[3] = 0.5
    err = refused(medmod_listfile(truth, list(truth.task.bucket_columns), values, fmt="{:.6f}"), truth)  # fmt: skip
    assert err.code == "bucket_sum"
    assert "(sums: 0.5, 5)" in err.message
    assert err.message.endswith(HINT_SOFTMAX)


# --- truth files: mimic3 and MedMod listfiles --------------------------------------------------
def listfile(truth: Truth, *, stay_id: bool, label_names: bool = False) -> bytes:
    """A labels listfile: mimic3-benchmarks' (``stay,period_length,<labels>``) or MedMod's
    (``stay,period_length,stay_id,<labels>``) with the truth's labels."""
    task = truth.task
    names = list(task.label_names if label_names else task.label_columns)
    header = ["stay", "period_length", *(["stay_id"] if stay_id else []), *names]
    keys = truth.keys
    periods = keys["period_length"] if "period_length" in keys else np.full(truth.n, 0)
    y = truth.y.reshape(truth.n, -1)
    lines = [",".join(header)]
    for s, t, row in zip(keys["stay_id"], periods, y, strict=True):
        fields = [episode(s), f"{t:.6f}", *([str(s)] if stay_id else [])]
        fields += [f"{v:.6f}" if task.kind == "los" else str(v) for v in row]
        lines.append(",".join(fields))
    return ("\n".join(lines) + "\n").encode()


def test_a_mimic3_listfile_as_truth_is_refused_naming_file_column_and_values(tmp_path, capsys) -> None:  # fmt: skip
    truth = truth_for("decompensation")
    path = tmp_path / "listfile.csv"
    path.write_bytes(listfile(truth, stay_id=False))
    preds = tmp_path / "predictions.csv"
    preds.write_bytes(drop_columns(mimic3_decomp(truth, predictions(truth)), "y_true"))
    rc = cli_main(["score", "--task", "decompensation", "--truth", str(path), "--predictions", str(preds), "--quiet"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "invalid literal" not in err and "Traceback" not in err
    assert f"truth file {path}: column stay holds {truth.n} episode name(s)" in err
    assert f"(first: {episode(FIRST_STAY)}, {episode(FIRST_STAY + 1)}," in err
    assert "add a stay_id column beside stay" in err


def test_a_medmod_listfile_as_truth_maps_episode_names_through_stay_id(tmp_path) -> None:
    """``stay,period_length,stay_id,y_true``: keyed by stay_id; a mimic3 prediction file keyed
    by episode names is then matched and scores like one keyed by stay ids."""
    truth = truth_for("decompensation")
    path = tmp_path / "listfile.csv"
    path.write_bytes(listfile(truth, stay_id=True))
    held = truth_from_csv(path, "decompensation")
    assert held.keys.equals(truth.keys)
    np.testing.assert_array_equal(held.y, truth.y)
    assert held.stay_names[episode(FIRST_STAY)] == FIRST_STAY
    p = predictions(truth)
    by_name = drop_columns(mimic3_decomp(truth, p), "y_true")
    by_id = medmod_listfile(truth, ["prediction"], p, fmt="{:.6f}")
    a = score_predictions(by_name, truth=held, replicates=20)
    b = score_predictions(by_id, truth=held, replicates=20)
    assert a["scenarios"]["paired"]["metrics"] == b["scenarios"]["paired"]["metrics"]


def test_a_medmod_phenotyping_listfile_as_truth_reads_the_label_names(tmp_path) -> None:
    truth = truth_for("phenotyping")
    path = tmp_path / "listfile.csv"
    path.write_bytes(listfile(truth, stay_id=True, label_names=True))
    assert b",Congestive heart failure; nonhypertensive," in path.read_bytes()
    held = truth_from_csv(path, "phenotyping")
    np.testing.assert_array_equal(held.y, truth.y)
    assert held.keys["stay_id"].tolist() == truth.keys["stay_id"].tolist()


def _set_labels(text: str, rows: dict[int, str]) -> str:
    """A listfile with the last field of some data rows (1-based) replaced."""
    lines = text.split("\n")
    for row, value in rows.items():
        lines[row] = lines[row].rsplit(",", 1)[0] + "," + value
    return "\n".join(lines)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda t: t.replace(",30000003,", ",abc,", 1),
         "column stay_id has 1 malformed value(s) (expected integer ids), first: abc"),
        (lambda t: t.replace(",30000003,", ",30000003.5,", 1),
         "column stay_id has 1 malformed value(s) (expected integer ids), first: 30000003.5"),
        (lambda t: t.replace(",5.000000,", ",five,", 1),
         "column period_length has 1 malformed value(s) (expected numbers of hours), first: five"),
        (lambda t: t.replace(",6.000000,30000001,", ",5.000000,30000001,", 1),
         "1 unit(s) appear more than once (column(s) stay_id, period_length), first: (30000001, 5)"),
        (lambda t: _set_labels(t, {2: "2", 3: "yes", 5: "2"}),
         "column y_true has 3 invalid value(s) (expected 0 or 1), first: 2, yes"),
        (lambda t: t.replace("y_true", "label"),
         "missing column(s) y_true for task decompensation: decompensation truth files have "
         "the key column(s) stay_id, period_length and the label column(s) y_true"),
        (lambda t: t.replace(",stay_id,", ",icustay_id,"),
         "episode name(s), not stay ids (first: 10001_episode1_timeseries.csv, "),
    ],
)  # fmt: skip
def test_truth_file_problems_name_the_file_the_column_and_the_first_values(tmp_path, edit, expected) -> None:  # fmt: skip
    truth = truth_for("decompensation")
    path = tmp_path / "labels.csv"
    path.write_text(edit(listfile(truth, stay_id=True).decode()))
    with pytest.raises(TruthError) as info:
        truth_from_csv(path, "decompensation")
    message = str(info.value)
    assert message.startswith(f"truth file {path}: ")
    assert expected in message, message


def test_threshold_ties_count_as_positive_and_auprc_is_average_precision() -> None:
    """What docs/scoring.md says beside mimic3-benchmarks' definitions: ``p >= threshold`` is a
    positive prediction (mimic3's argmax of [1 - p, p] counts 0.5 as negative), and AUPRC is
    scikit-learn's average precision, not mimic3's trapezoidal ``auc(recall, precision)``."""
    from sklearn.metrics import auc, average_precision_score, precision_recall_curve

    truth = truth_for("in-hospital-mortality")
    y = truth.y.astype(int)
    p = np.where(np.arange(truth.n) % 2 == 0, 0.5, np.linspace(0.05, 0.95, truth.n))
    data = drop_columns(mimic3_ihm(truth, p[:, None]), "y_true")
    metrics = score_predictions(data, truth=truth, replicates=20)["scenarios"]["paired"]["metrics"]

    scored = truth.scenario_units("paired")  # the units with a chest X-ray
    y, p = y[scored], p[scored]
    positive = p >= 0.5
    assert metrics["recall"]["value"] == pytest.approx((positive & (y == 1)).sum() / y.sum())
    mimic3_positive = np.stack([1 - p, p], axis=1).argmax(axis=1) == 1
    assert (positive & ~mimic3_positive & (y == 1)).any()  # a tie: recall differs from mimic3's

    ap = average_precision_score(y, p)
    precision, recall, _ = precision_recall_curve(y, p)
    trapezoid = auc(recall, precision)
    assert metrics["auprc"]["value"] == pytest.approx(ap, abs=1e-12)
    assert abs(ap - trapezoid) > 1e-3
