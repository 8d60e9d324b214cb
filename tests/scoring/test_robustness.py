"""Robustness section: drops as paired differences, degradation curve, AUDC."""

import numpy as np
import pytest

from scoring.robustness import robustness_report


def _reps(levels, seed=0):
    rng = np.random.default_rng(seed)
    common = rng.normal(0, 0.02, 1000)
    return {k: v + common + rng.normal(0, 0.005, 1000) for k, v in levels.items()}


def test_drops_audc_and_curve_from_all_scenarios():
    points = {"paired": 0.85, "cxr_missing_25": 0.83, "cxr_missing_50": 0.81,
              "cxr_missing_75": 0.79, "cxr_missing_100": 0.77, "natural": 0.8}  # fmt: skip
    rob = robustness_report("auroc", points, _reps(points))
    assert rob["drops"]["cxr_missing_100"]["value"] == pytest.approx(-0.08)
    lo, hi = rob["drops"]["cxr_missing_100"]["ci"]
    assert lo < -0.08 < hi and hi < 0  # the shared noise cancels in the paired difference
    xs = [0, 0.25, 0.5, 0.75, 1.0]
    ys = [0.85, 0.83, 0.81, 0.79, 0.77]
    assert rob["audc"]["value"] == pytest.approx(np.trapezoid(ys, xs))
    assert [c["fraction_withheld"] for c in rob["curve"]] == xs
    assert rob["scenarios_missing"] == []


def test_missing_scenarios_are_named_and_audc_is_not_invented():
    points = {"paired": 0.85, "cxr_missing_100": 0.7}
    rob = robustness_report("auroc", points, _reps(points))
    assert rob["audc"] is None and "audc_note" in rob
    assert rob["scenarios_missing"] == ["cxr_missing_25", "cxr_missing_50", "cxr_missing_75"]
    assert set(rob["drops"]) == {"cxr_missing_100"}


def test_without_paired_units_there_is_no_curve():
    points = {"natural": 0.8}
    rob = robustness_report("auroc", points, _reps(points))
    assert rob["curve"] == [] and "note" in rob
