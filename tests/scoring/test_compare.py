"""Paired comparisons of entries against a reference, and the per-group replicates a report
keeps for them."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from scoring.bootstrap import percentile_ci
from scoring.compare import CompareInput, as_replicates, compare_to_reference
from scoring.disclosure import participant_report
from scoring.ranking import paired_difference
from scoring.report import report_json, score_predictions
from tests.scoring.test_report import _file, _scores, _truth


def _reps(seed: int, centre: float, common: np.ndarray) -> np.ndarray:
    return centre + common + np.random.default_rng(seed).normal(0, 0.01, common.size)


def test_each_difference_is_the_ranking_modules_paired_difference():
    """Per series, the CI, p-value and replicates used are exactly
    ``scoring.ranking.paired_difference`` of the two replicate vectors, and ``diff`` is the
    difference of the point values."""
    common = np.random.default_rng(0).normal(0, 0.03, 1000)
    entries = [
        CompareInput(
            f"e{i}",
            values={"paired": v, "natural": v - 0.01},
            replicates={"paired": _reps(i, v, common), "natural": _reps(10 + i, v - 0.01, common)},
        )
        for i, v in enumerate([0.80, 0.78, 0.70])
    ]
    out = compare_to_reference(entries, reference="e0")
    assert set(out) == {"e1", "e2"}
    ref = entries[0]
    for e in entries[1:]:
        for series in ("paired", "natural"):
            got = out[e.entry_id][series]
            want = paired_difference(e.replicates[series], ref.replicates[series])
            assert got["diff_ci"] == want["diff_ci"]
            assert got["p"] == want["p"]
            assert got["replicates_used"] == want["replicates_used"]
            assert got["diff"] == pytest.approx(e.values[series] - ref.values[series])
            assert got["significant"] == (want["p"] < 0.05)
    assert out["e2"]["paired"]["significant"] is True


def test_degenerate_replicates_stored_as_none_are_left_out_and_counted():
    a = CompareInput("a", values={"s": 0.6}, replicates={"s": [0.5, None, 0.7, 0.6]})
    b = CompareInput("b", values={"s": 0.5}, replicates={"s": [0.4, 0.4, None, 0.5]})
    got = compare_to_reference([a, b], reference="a")["b"]["s"]
    want = paired_difference(as_replicates(b.replicates["s"]), as_replicates(a.replicates["s"]))
    assert got["replicates_used"] == 2 and got["diff_ci"] == want["diff_ci"]


def test_a_series_only_one_side_holds_is_not_compared():
    a = CompareInput(
        "a", values={"s": 0.6, "g": 0.5}, replicates={"s": [0.6, 0.6], "g": [0.5, 0.4]}
    )
    b = CompareInput("b", values={"s": 0.5}, replicates={"s": [0.5, 0.4]})
    assert set(compare_to_reference([a, b], reference="a")["b"]) == {"s"}
    assert set(compare_to_reference([a, b], reference="b")["a"]) == {"s"}


def test_an_unknown_reference_or_other_replicates_are_refused():
    a = CompareInput("a", values={"s": 0.6}, replicates={"s": [0.6, 0.5, 0.4]})
    b = CompareInput("b", values={"s": 0.5}, replicates={"s": [0.5, 0.4]})
    with pytest.raises(ValueError, match="not one of the entries"):
        compare_to_reference([a, b], reference="c")
    with pytest.raises(ValueError, match="same replicates"):
        compare_to_reference([a, b], reference="a")


def test_report_keeps_each_shown_groups_replicates_and_never_discloses_them():
    """Every shown group carries the per-replicate values of the primary metric (its CI is
    their percentile interval); the participant's view of the report has none."""
    truth = _truth()
    rep = score_predictions(_file(truth), truth=truth, replicates=200)
    n_groups = 0
    for entry in rep["fairness"]["attributes"].values():
        for g in entry["groups"].values():
            reps = as_replicates(g["replicates"])
            assert reps.size == 200
            lo, hi = percentile_ci(reps)
            assert g["ci"] == pytest.approx([lo, hi], abs=1e-6)
            n_groups += 1
    assert n_groups >= 5
    view = participant_report(rep)
    for entry in view["fairness"]["attributes"].values():
        for g in entry["groups"].values():
            assert "replicates" not in g
    assert '"replicates":[' not in report_json(view)


def test_two_entries_scored_on_one_truth_compare_per_group_on_shared_replicates():
    """Group replicates of two entries come from the same replicate weights: an entry whose
    scores are a monotone transform of another's has the same AUROC in every replicate of
    every group, so its paired difference is exactly 0 (CI [0, 0], p = 1) although each
    group's own CI is wide; a weaker entry's difference is the ranking's."""
    truth = _truth()

    def file(scores: np.ndarray) -> bytes:
        buf = io.StringIO()
        pd.DataFrame({"stay_id": truth.keys["stay_id"], "prediction": scores}).to_csv(
            buf, index=False
        )
        return buf.getvalue().encode()

    base = _scores(truth, strength=0.3, seed=1)
    a = score_predictions(file(base), truth=truth, replicates=200)
    same = score_predictions(file(np.round(base**2, 8)), truth=truth, replicates=200)
    weak = score_predictions(
        file(_scores(truth, strength=0.2, seed=5)), truth=truth, replicates=200
    )
    ga = a["fairness"]["attributes"]["gender"]["groups"]
    for other, exact in ((same, True), (weak, False)):
        gb = other["fairness"]["attributes"]["gender"]["groups"]
        assert set(ga) == set(gb)
        for g in ga:
            ra, rb = as_replicates(ga[g]["replicates"]), as_replicates(gb[g]["replicates"])
            got = compare_to_reference(
                [
                    CompareInput("a", values={g: ga[g]["value"]}, replicates={g: ra}),
                    CompareInput("b", values={g: gb[g]["value"]}, replicates={g: rb}),
                ],
                reference="a",
            )["b"][g]
            assert got["diff_ci"] == paired_difference(rb, ra)["diff_ci"]
            if exact:
                assert got["diff_ci"] == [0.0, 0.0] and got["p"] == 1.0
                assert ga[g]["ci"][1] - ga[g]["ci"][0] > 0.05
