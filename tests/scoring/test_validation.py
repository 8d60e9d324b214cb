"""Prediction-file validation: malformed files are refused whole with a precise message; good
files in every accepted form are read and aligned with the truth's units."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import gzip
import hashlib
import io
import json
import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmark_data.tasks import CXR_MISSING_LEVELS, TASKS
from scoring import errors
from scoring.errors import (
    PREDICTION_FILE_CODES,
    WARN_BOM,
    WARN_NATURAL_AS_PAIRED,
    WARN_STAY_IGNORED,
    WARN_STAY_RENAMED,
    PredictionFileError,
    ScoringInputError,
)
from scoring.truth import Truth
from scoring.upload import BLOCK_SIZE, UploadStream
from scoring.validation import BUCKET_SUM_TOLERANCE, read_predictions
from tests.scoring.malformed_corpus import (
    CASES,
    FIRST_STAY,
    LOS_LABEL_FRACTION,
    Case,
    good_csv,
    good_frame,
    gz,
    make_truth,
    stay_name,
    to_csv,
    value_columns,
)

ALL_FORMS = [
    ("in-hospital-mortality", "probability"),
    ("in-hospital-mortality", "decision"),
    ("phenotyping", "probability"),
    ("decompensation", "probability"),
    ("decompensation", "decision"),
    ("length-of-stay", "hours"),
    ("length-of-stay", "buckets"),
    ("radiology", "probability"),
]
CXR_SCENARIOS = tuple(f"cxr_missing_{p}" for p in CXR_MISSING_LEVELS)


@functools.cache
def truth_for(slug: str, names: bool = True) -> Truth:
    return make_truth(slug, names=names)


def as_2d(values: np.ndarray) -> np.ndarray:
    return values.reshape(len(values), -1)


def expected_values(truth: Truth, df: pd.DataFrame, form: str) -> np.ndarray:
    """The frame's values in truth order (the frame has one row per unit, in any order)."""
    keys = list(truth.task.key_columns)
    aligned = truth.keys.merge(df, on=keys, how="left", validate="one_to_one")
    return aligned[value_columns(truth, form)].to_numpy(dtype=float)


def refusal(case: Case, truth: Truth) -> PredictionFileError:
    with pytest.raises(PredictionFileError) as info:
        read_predictions(case.build(truth), truth=truth, **case.limits)
    return info.value


# --- the malformed corpus -------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_malformed_file_is_refused_with_its_own_message(case: Case) -> None:
    """Each malformed file is refused whole, with its code and a message naming the column,
    the count and the first offending keys; details are JSON-able."""
    err = refusal(case, truth_for(case.task, case.truth_names))
    assert err.code == case.code, err.message
    for fragment in case.fragments:
        assert fragment in err.message, err.message
    assert str(err) == err.message
    assert isinstance(err, ScoringInputError) and isinstance(err, ValueError)
    json.dumps(err.as_dict())


def test_every_message_constant_has_a_unique_code_and_a_corpus_case() -> None:
    templates = {v for k, v in vars(errors).items() if k.startswith("ERR_")}
    assert templates == set(PREDICTION_FILE_CODES)
    codes = list(PREDICTION_FILE_CODES.values())
    assert len(codes) == len(set(codes))
    assert set(codes) == {c.code for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_messages_never_depend_on_the_truth_labels(case: Case) -> None:
    """The same file against the same units with other labels gets the very same error, so
    no message or detail can carry a label; length-of-stay labels never appear as text."""
    truth = truth_for(case.task, case.truth_names)
    flipped = np.where(truth.y == 0, 1, 0) if truth.task.kind != "los" else truth.y + 37.0
    other = dataclasses.replace(truth, y=flipped.astype(truth.y.dtype))
    err, err_other = refusal(case, truth), refusal(case, other)
    assert err.as_dict() == err_other.as_dict()
    text = json.dumps(err.as_dict())
    assert "y_true=" not in text
    if truth.task.kind == "los":
        for y in (*truth.y, *other.y):
            assert f"{y:.2f}" not in text and f"{y:g}" not in text
        assert f"{LOS_LABEL_FRACTION}"[1:] not in text


def test_first_five_offending_keys_are_listed_with_the_total_count() -> None:
    """A file with duplicate stays is refused with the count and the first five ids."""
    truth = truth_for("in-hospital-mortality")
    df = good_frame(truth)
    data = to_csv(pd.concat([df, df.iloc[2:9]], ignore_index=True))
    with pytest.raises(PredictionFileError) as info:
        read_predictions(data, truth=truth)
    err = info.value
    assert err.code == "duplicate_units"
    assert err.details["count"] == 7 and len(err.details["keys"]) == 5
    assert err.details["keys"] == [str(FIRST_STAY + i) for i in range(2, 7)]
    assert err.details["column"] == "stay_id"
    assert "7 unit(s)" in err.message and str(FIRST_STAY + 7) not in err.message


def test_values_problem_counts_rows_across_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Counts cover the whole file, not the first chunk."""
    monkeypatch.setattr("scoring.validation.CHUNK_ROWS", 7)
    truth = truth_for("decompensation")
    df = good_frame(truth)
    df.loc[[1, 20, 40, 60], "prediction"] = 2.0
    with pytest.raises(PredictionFileError, match=r"has 4 value\(s\) outside") as info:
        read_predictions(to_csv(df), truth=truth)
    assert info.value.details["count"] == 4 and info.value.details["column"] == "prediction"


# --- good files -----------------------------------------------------------------------------
@pytest.mark.parametrize(("slug", "form"), ALL_FORMS)
def test_good_file_in_every_form_is_accepted_and_aligned(slug: str, form: str) -> None:
    """Rows and columns shuffled: values come back in the truth's unit order."""
    truth = truth_for(slug)
    df = good_frame(truth, form)
    shuffled = df.sample(frac=1, random_state=3)[df.columns[::-1]]
    data = to_csv(shuffled)
    preds = read_predictions(data, truth=truth)
    assert preds.form == form and preds.task is truth.task
    assert list(preds.values) == ["paired"]
    got = preds.values["paired"]
    expect = expected_values(truth, df, form)
    assert got.shape == ((truth.n,) if expect.shape[1] == 1 and form != "buckets" else expect.shape)
    np.testing.assert_allclose(as_2d(got), expect, rtol=0, atol=1e-12, equal_nan=True)
    assert preds.n_rows == truth.n and preds.size == len(data)
    assert preds.sha256 == hashlib.sha256(data).hexdigest()
    assert preds.columns == list(shuffled.columns)
    assert preds.warnings == []


def _crlf(b: bytes) -> bytes:
    return b.replace(b"\n", b"\r\n")


def _spaces(b: bytes) -> bytes:
    lines = b.decode().split("\n")
    return "\n".join(" " + ",  ".join(f" {v} " for v in ln.split(",")) if ln else ln
                     for ln in lines).encode()  # fmt: skip


def _quoted(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False, quoting=csv.QUOTE_ALL, lineterminator="\n").encode()


TOLERATED = {
    "gzip": lambda df: gz(to_csv(df)),
    "byte order mark": lambda df: b"\xef\xbb\xbf" + to_csv(df),
    "gzip with byte order mark": lambda df: gz(b"\xef\xbb\xbf" + to_csv(df)),
    "CRLF": lambda df: _crlf(to_csv(df)),
    "CR line ends": lambda df: to_csv(df).replace(b"\n", b"\r"),
    "spaces around names and values": lambda df: _spaces(to_csv(df)),
    "quoted values": _quoted,
    "trailing empty lines": lambda df: to_csv(df) + b"\n\n",
    "leading blank lines": lambda df: b"\n\r\n" + to_csv(df),
    "no final newline": lambda df: to_csv(df).rstrip(b"\n"),
    "float keys": lambda df: to_csv(df.astype({"stay_id": float}), float_format="%.6f"),
    "multi-member gzip": lambda df: gz(to_csv(df)[:40]) + gz(to_csv(df)[40:]),
}


@pytest.mark.parametrize("variant", list(TOLERATED))
@pytest.mark.parametrize("slug", ["in-hospital-mortality", "decompensation"])
def test_harmless_variations_are_tolerated(slug: str, variant: str) -> None:
    truth = truth_for(slug)
    df = good_frame(truth).sample(frac=1, random_state=1)
    data = TOLERATED[variant](df)
    preds = read_predictions(data, truth=truth)
    np.testing.assert_allclose(
        as_2d(preds.values["paired"]), expected_values(truth, df, "probability"), atol=1e-6
    )
    assert preds.sha256 == hashlib.sha256(data).hexdigest() and preds.size == len(data)
    assert (WARN_BOM in preds.warnings) == ("byte order mark" in variant)


def test_mimic3_names_stay_and_six_decimal_period_length() -> None:
    """``stay,period_length,prediction`` with period_length written as %.6f."""
    truth = truth_for("decompensation")
    df = good_frame(truth).rename(columns={"stay_id": "stay"}).astype({"period_length": float})
    data = df.to_csv(index=False, float_format="%.6f").encode()
    assert b",5.000000," in data
    preds = read_predictions(data, truth=truth)
    np.testing.assert_allclose(preds.values["paired"], good_frame(truth)["prediction"], atol=1e-6)
    assert WARN_STAY_RENAMED in preds.warnings


def test_stay_as_episode_names_maps_through_the_stay_list() -> None:
    truth = truth_for("in-hospital-mortality")
    df = good_frame(truth)
    subjects = df["stay_id"] - FIRST_STAY + 10_001
    df = df.assign(stay_id=[stay_name(int(s)) for s in subjects]).rename(
        columns={"stay_id": "stay"}
    )
    preds = read_predictions(to_csv(df.iloc[::-1]), truth=truth)
    np.testing.assert_allclose(preds.values["paired"], df["prediction"])


def test_medmod_listfile_columns_are_ignored() -> None:
    """MedMod listfile style: ``stay`` (ignored beside stay_id), ``period_length`` (ignored in
    a stay-level task), and the unit list's subject_id and cxr_dicom_id."""
    truth = truth_for("in-hospital-mortality")
    df = good_frame(truth)
    df.insert(0, "stay", "garbage")
    df.insert(1, "period_length", 0)
    df["subject_id"] = 1
    df["cxr_dicom_id"] = ""
    preds = read_predictions(to_csv(df), truth=truth)
    np.testing.assert_allclose(preds.values["paired"], df["prediction"])
    assert WARN_STAY_IGNORED in preds.warnings
    assert any("period_length, subject_id, cxr_dicom_id were ignored" in w for w in preds.warnings)


def test_mimic3_phenotyping_positions_map_to_label_slugs() -> None:
    truth = truth_for("phenotyping")
    df = good_frame(truth)
    slugs = list(truth.task.label_slugs)
    positional = df.rename(columns={s: f"pred_{i}" for i, s in enumerate(slugs, start=1)})
    positional.insert(1, "period_length", 100.0)
    preds = read_predictions(to_csv(positional), truth=truth)
    np.testing.assert_allclose(preds.values["paired"], df[slugs].to_numpy())
    assert any("read by position" in w for w in preds.warnings)


@pytest.mark.parametrize(("slug", "form"), ALL_FORMS)
def test_scenarios_paired_and_cxr_missing(slug: str, form: str) -> None:
    """cxr_missing_* rows cover the paired units; the other units are NaN there."""
    truth = truth_for(slug)
    df = good_frame(truth, form, scenarios=("paired", *CXR_SCENARIOS))
    preds = read_predictions(to_csv(df.sample(frac=1, random_state=5)), truth=truth)
    assert preds.scenarios == ["paired", *CXR_SCENARIOS]
    assert preds.n_rows == truth.n + 4 * int(truth.paired.sum())
    for scenario in ("paired", *CXR_SCENARIOS):
        got = as_2d(preds.values[scenario])
        part = df[df["scenario"] == scenario]
        rows = np.ones(truth.n, bool) if scenario == "paired" else truth.paired
        np.testing.assert_allclose(got[rows], expected_values(truth, part, form)[rows])
        assert np.isnan(got[~rows]).all()


def test_natural_is_read_as_paired() -> None:
    truth = truth_for("decompensation")
    df = good_frame(truth, scenarios=("natural", "cxr_missing_100"))
    preds = read_predictions(to_csv(df), truth=truth)
    assert preds.scenarios == ["paired", "cxr_missing_100"]
    assert WARN_NATURAL_AS_PAIRED in preds.warnings


def test_decisions_accept_one_zero_and_empty() -> None:
    truth = truth_for("in-hospital-mortality")
    text = "stay_id,decision\n" + "".join(
        f"{FIRST_STAY + i},{v}\n" for i, v in enumerate(["1", "0", "", "1.0", " 0 ", "", *"10" * 3])
    )
    preds = read_predictions(text.encode(), truth=truth)
    expect = [1, 0, np.nan, 1, 0, np.nan, 1, 0, 1, 0, 1, 0]
    np.testing.assert_array_equal(preds.values["paired"], expect)


def test_bucket_rows_within_the_tolerance_are_accepted() -> None:
    truth = truth_for("length-of-stay")
    df = good_frame(truth, "buckets")
    df["bucket_0"] += BUCKET_SUM_TOLERANCE * 0.9
    preds = read_predictions(to_csv(df), truth=truth)
    assert preds.form == "buckets" and preds.values["paired"].shape == (truth.n, 10)


@pytest.mark.parametrize("kind", ["path", "file object", "bytearray"])
def test_sources_path_file_object_and_bytes(kind: str, tmp_path) -> None:
    truth = truth_for("radiology")
    data = gz(good_csv(truth))
    path = tmp_path / "predictions.txt"  # the name says nothing: gzip is found by its bytes
    path.write_bytes(data)
    source = {"path": str(path), "file object": io.BytesIO(data), "bytearray": bytearray(data)}
    preds = read_predictions(source[kind], truth=truth)
    assert preds.sha256 == hashlib.sha256(data).hexdigest() and preds.size == len(data)


def test_a_path_over_the_limit_is_refused_before_reading(tmp_path) -> None:
    path = tmp_path / "big.csv"
    path.write_bytes(b"x" * 5000)
    with pytest.raises(PredictionFileError) as info:
        read_predictions(path, truth=truth_for("in-hospital-mortality"), max_bytes=4096)
    assert info.value.code == "file_too_large" and info.value.details["limit"] == 4096


def test_a_gzip_bomb_is_never_decompressed_in_full() -> None:
    """512 MiB of content in 512 gzip members of 1 MiB: decompression stops at the limit,
    having read a small part of the upload."""
    member = gzip.compress(b"\n" * (1 << 20), mtime=0)
    bomb = gzip.compress(b"stay_id,prediction\n", mtime=0) + member * 512

    class Counting(io.BytesIO):
        read_total = 0

        def read(self, size: int | None = -1) -> bytes:
            out = super().read(size)
            Counting.read_total += len(out)
            return out

    t0 = time.perf_counter()
    with pytest.raises(PredictionFileError) as info:
        read_predictions(
            Counting(bomb), truth=truth_for("in-hospital-mortality"),
            max_uncompressed_bytes=4 << 20,
        )  # fmt: skip
    assert info.value.code == "uncompressed_too_large"
    assert Counting.read_total < len(bomb) / 2
    assert time.perf_counter() - t0 < 5


def test_bad_utf8_is_located_even_when_a_character_straddles_two_blocks() -> None:
    """The first byte of a two-byte character ends one block, a bad second byte starts the
    next: the message gives the offset of the first byte and its line."""
    body = (b"a,b\n" + b"1,2\n" * (BLOCK_SIZE // 4))[: BLOCK_SIZE - 1]
    data = body + b"\xc3(,2\n"
    with pytest.raises(PredictionFileError) as info:  # noqa: SIM117 (the error may come from either)
        with UploadStream(data, max_bytes=4 << 20, max_uncompressed_bytes=4 << 20) as up:
            up.header_line()
            while up.read(1 << 16):
                pass
    assert info.value.code == "encoding"
    assert info.value.details == {"offset": BLOCK_SIZE - 1, "line": body.count(b"\n") + 1}
    assert "0xc3" in info.value.message


# --- properties -----------------------------------------------------------------------------
PROPERTY_SETTINGS = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _check_accepted(preds, truth: Truth) -> None:
    for scenario, values in preds.values.items():
        rows = np.ones(truth.n, bool) if scenario == "paired" else truth.paired
        v = as_2d(values)[rows]
        if preds.form == "decision":
            assert np.isin(v[~np.isnan(v)], [0.0, 1.0]).all()
        else:
            assert np.isfinite(v).all() and (v >= 0).all()
            if preds.form != "hours":
                assert (v <= 1).all()


@PROPERTY_SETTINGS
@given(data=st.binary(max_size=400), compress=st.booleans())
def test_random_bytes_raise_nothing_but_prediction_file_error(data: bytes, compress: bool) -> None:
    truth = truth_for("in-hospital-mortality")
    with contextlib.suppress(PredictionFileError):
        read_predictions(gz(data) if compress else data, truth=truth)


_MUTATION = st.tuples(
    st.sampled_from(["insert", "delete", "replace", "copy line", "drop line", "truncate"]),
    st.integers(min_value=0, max_value=10**6),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=4)
    | st.sampled_from([",", "\n", '"', "\r", "nan", "-", "1e9", ";", "\x00"]),
)


def _mutate(data: bytes, mutations: list[tuple[str, int, str]]) -> bytes:
    for op, where, text in mutations:
        payload = text.encode("utf-8", "surrogatepass") if text else b""
        lines = data.split(b"\n")
        i = where % (len(data) + 1)
        if op == "insert":
            data = data[:i] + payload + data[i:]
        elif op == "delete":
            data = data[:i] + data[i + 1 + len(payload) :]
        elif op == "replace":
            data = data[:i] + payload + data[i + len(payload) :]
        elif op == "copy line":
            lines.insert(where % (len(lines) + 1), lines[where % len(lines)])
            data = b"\n".join(lines)
        elif op == "drop line":
            del lines[where % len(lines)]
            data = b"\n".join(lines)
        else:
            data = data[:i]
    return data


@PROPERTY_SETTINGS
@given(
    slug_form=st.sampled_from(ALL_FORMS),
    scenarios=st.booleans(),
    mutations=st.lists(_MUTATION, max_size=4),
    compress=st.booleans(),
)
def test_mutated_files_are_accepted_valid_or_refused_with_prediction_file_error(
    slug_form: tuple[str, str], scenarios: bool, mutations, compress: bool
) -> None:
    slug, form = slug_form
    truth = truth_for(slug)
    data = good_csv(truth, form, scenarios=("paired", "cxr_missing_50") if scenarios else ())
    data = _mutate(data, mutations)
    try:
        preds = read_predictions(gz(data) if compress else data, truth=truth)
    except PredictionFileError as exc:
        assert exc.code in PREDICTION_FILE_CODES.values() and exc.message
        return
    _check_accepted(preds, truth)


# --- speed ----------------------------------------------------------------------------------
def hourly_truth(n_rows: int) -> Truth:
    """A decompensation truth of ``n_rows`` hourly rows (stays of 5 to 90 rows)."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 90, n_rows // 40)
    lengths = lengths[np.cumsum(lengths) <= n_rows]
    lengths = np.append(lengths, n_rows - lengths.sum())
    stay_idx = np.repeat(np.arange(len(lengths)), lengths)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    keys = pd.DataFrame(
        {"stay_id": 30_000_000 + stay_idx, "period_length": 5 + np.arange(n_rows) - starts}
    )
    return Truth(
        task=TASKS["decompensation"], keys=keys, y=(rng.random(n_rows) < 0.02).astype(np.int8),
        clusters=stay_idx, paired=rng.random(n_rows) < 0.3,
    )  # fmt: skip


def test_a_full_size_decompensation_file_validates_in_about_a_second() -> None:
    """216,663 hourly rows (the MedMod decompensation test set), shuffled: about 0.8 s on one
    core; the bound leaves room for a busy machine."""
    truth = hourly_truth(216_663)
    df = truth.keys.assign(prediction=np.random.default_rng(1).random(truth.n))
    data = to_csv(df.sample(frac=1, random_state=0))
    t0 = time.perf_counter()
    preds = read_predictions(data, truth=truth)
    elapsed = time.perf_counter() - t0
    np.testing.assert_allclose(preds.values["paired"], df["prediction"].to_numpy(), atol=1e-12)
    assert elapsed < 3.0, f"validation took {elapsed:.2f} s"
