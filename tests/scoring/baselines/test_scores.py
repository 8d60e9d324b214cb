"""The fusion table: each fusion model against the task's best unimodal model, paired on the
same bootstrap replicates."""

import numpy as np

from scoring.baselines.scores import fusion_table


def _report(value: float, replicates: np.ndarray) -> dict:
    return {
        "main_scenario": "paired",
        "scenarios": {
            "paired": {"metrics": {"auroc": {"value": value}}, "replicates": list(replicates)}
        },
    }


def test_fusion_is_compared_with_the_best_unimodal_model_on_the_same_replicates():
    rng = np.random.default_rng(0)
    shared = rng.normal(0, 0.03, 200)  # the replicate-to-replicate variation both share
    reports = {
        "in-hospital-mortality": {
            "ehr": _report(0.80, 0.80 + shared),
            "cxr": _report(0.60, 0.60 + shared),
            "late": _report(0.83, 0.83 + shared + rng.normal(0, 0.005, 200)),
            "joint": _report(0.80, 0.80 + shared + rng.normal(0, 0.005, 200)),
        }
    }
    table = fusion_table(reports)
    assert "best unimodal model: in-hospital-mortality: ehr" in table
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines()[4:]}
    late, joint = rows["late"], rows["joint"]
    # paired: the shared variation cancels, so +0.03 is significant although the unpaired
    # CIs (+-0.06) of the two models overlap
    assert "+0.030 [0.02" in late and "p=0.000" in late
    lo, hi = (float(x) for x in joint.split("[")[1].split("]")[0].split(", "))
    assert lo < 0 < hi


def test_under_a_missing_image_scenario_the_best_unimodal_model_is_taken_there():
    rng = np.random.default_rng(1)
    shared = rng.normal(0, 0.03, 200)

    def both(paired: float, missing: float, noise: float) -> dict:
        rep = _report(paired, paired + shared)
        extra = missing + shared + rng.normal(0, noise, 200)
        rep["scenarios"]["cxr_missing_100"] = {
            "metrics": {"auroc": {"value": missing}},
            "replicates": list(extra),
        }
        return rep

    reports = {
        "in-hospital-mortality": {
            "ehr": both(0.70, 0.70, 0.0),
            "cxr": both(0.80, 0.50, 0.0),  # best with its image, worst without
            "drfuse": both(0.85, 0.72, 0.005),
        }
    }
    paired = fusion_table(reports)
    missing = fusion_table(reports, scenario="cxr_missing_100")
    assert "paired units" in paired and "in-hospital-mortality: cxr" in paired
    assert "scenario cxr_missing_100" in missing and "in-hospital-mortality: ehr" in missing
    row = next(line for line in missing.splitlines() if line.startswith("| drfuse"))
    lo, hi = (float(x) for x in row.split("[")[1].split("]")[0].split(", "))
    assert row.startswith("| drfuse | +0.020 [") and 0 < lo < 0.02 < hi
