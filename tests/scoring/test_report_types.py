"""The report's types and its one reader: a report the scorer builds reads back unchanged;
the reports of version 1 that the scorer once wrote (the first and the last, kept as it
wrote them in tests/scoring/data) read as the current version with their newer sections
empty; a newer version or a malformed shape is refused with a message naming what is
wrong."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark_data import Benchmark
from benchmark_data.tasks import TASKS
from scoring.disclosure import participant_report
from scoring.report import report_json, score_predictions, summarize
from scoring.report_reader import (
    ReportFormatError,
    ReportVersionError,
    read_report,
    report_version,
)
from scoring.report_types import REPORT_SCHEMA, ScoreReport
from scoring.truth import Truth, truth_from_benchmark
from tests.scoring.test_report import _file, _truth
from tests.scoring.test_suite_scoring import prediction_file
from tests.tiny_suite import build_tiny_suite_benchmark

DATA = Path(__file__).parent / "data"
# Version-1 reports written by the scorer of that time: the first report it wrote, and
# the last before version 2 (with the counts, medians and robustness modality added since).
SCHEMA_1 = ("report_schema1_first.json", "report_schema1_last.json")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    dest = tmp_path_factory.mktemp("tiny") / "bench"
    frame = build_tiny_suite_benchmark(dest)
    return Benchmark.open(dest), frame


@pytest.fixture(scope="module")
def tiny_reports(tiny, tmp_path_factory) -> dict[str, ScoreReport]:
    """Reports of the tiny suite: a binary probability entry, a decision-only entry and a
    multi-label entry (notes withheld, an ablation, the has-notes attribute)."""
    bench, frame = tiny
    tmp = tmp_path_factory.mktemp("files")
    risk = frame["risk"].to_numpy()
    mortality = truth_from_benchmark(bench, "mortality-24h")
    p = 1 / (1 + np.exp(-2 * risk))
    decision = np.where(p >= 0.5, 1.0, 0.0)
    decision[::10] = np.nan
    diseases = truth_from_benchmark(bench, "diseases")
    labels = {s: 1 / (1 + np.exp(-risk * k)) for s, k in (("sepsis", 1), ("heart_failure", 1), ("aki", 1))}  # fmt: skip
    return {
        "probability": score_predictions(
            prediction_file(tmp / "p.csv", frame, {"prediction": p}), truth=mortality, replicates=60
        ),
        "decision": score_predictions(
            prediction_file(tmp / "d.csv", frame, {"decision": decision}),
            truth=mortality,
            replicates=60,
        ),  # fmt: skip
        "multilabel": score_predictions(
            prediction_file(tmp / "m.csv", frame, labels), truth=diseases, replicates=60
        ),
    }


@pytest.mark.parametrize("kind", ["probability", "decision", "multilabel"])
def test_a_report_of_the_tiny_suite_reads_back_as_it_was_built(tiny_reports, kind):
    report = tiny_reports[kind]
    assert report["schema"] == REPORT_SCHEMA
    stored = json.loads(report_json(report))  # as a database column gives it back
    read = read_report(stored)
    assert read == report and "upgraded_from" not in read
    assert report_json(read) == report_json(report)


def test_the_sections_the_types_mark_optional_are_there_when_the_entry_has_them(tiny_reports):
    prob, decision, multi = (tiny_reports[k] for k in ("probability", "decision", "multilabel"))
    assert {"roc", "pr", "reliability"} <= set(prob["curves"]) and decision["curves"] == {}
    assert "decision_policy" in decision and "decision_policy" not in prob
    assert "per_label" in multi["scenarios"]["paired"]
    assert prob["robustness"]["ablations"][0]["scenario"] == "vitals_only"
    assert prob["fairness"]["attributes"]["has_notes"]["scenario"] == "natural"
    assert "missing_images" in prob["fairness"]


def test_medmod_reports_read_back_as_they_were_built():
    truth = _truth()
    report = score_predictions(_file(truth), truth=truth, replicates=40)
    assert read_report(json.loads(report_json(report))) == report
    assert report["robustness"]["modality"] == "cxr"
    # Length of stay: hourly rows, remaining hours; no curves and no prevalence.
    base = _truth()
    n = base.n
    keys = pd.DataFrame({"stay_id": base.keys["stay_id"], "period_length": 5})
    hours = np.random.default_rng(3).gamma(2.0, 40.0, n)
    los = Truth(task=TASKS["length-of-stay"], keys=keys, y=hours, clusters=base.clusters,
                paired=base.paired, withheld=base.withheld, groups=base.groups,
                source_hash="e" * 64)  # fmt: skip
    guess = (hours * 0.5 + 30).round(2)
    text = "stay_id,period_length,prediction\n" + "\n".join(
        f"{s},5,{h}" for s, h in zip(keys["stay_id"], guess, strict=True)
    )
    los_report = score_predictions(text.encode(), truth=los, replicates=20)
    assert los_report["curves"] == {} and "prevalence" not in los_report["scenarios"]["paired"]
    assert read_report(json.loads(report_json(los_report))) == los_report


@pytest.mark.parametrize("name", SCHEMA_1)
def test_a_version_1_report_reads_as_the_current_version(name):
    stored = json.loads((DATA / name).read_text())
    assert report_version(stored) == 1
    before = copy.deepcopy(stored)
    report = read_report(stored)
    assert stored == before  # the stored report is not changed in place
    assert report["schema"] == REPORT_SCHEMA and report["upgraded_from"] == 1
    # Sections version 2 added are empty, with the same figures as before everywhere else.
    assert report["fairness"]["intersections"] == {}
    assert report["fairness"]["scenario"] == stored["main_scenario"]
    assert "missing_images" not in report["fairness"]
    assert report["scenarios"] == stored["scenarios"]
    assert report["fairness"]["attributes"] == stored["fairness"]["attributes"]
    # The summary is the current one, built from the sections: the same figures, more keys.
    summary = report["summary"]
    for key in ("primary_metric", "value", "ci", "scenario", "metrics", "natural"):
        assert summary[key] == stored["summary"][key]
    assert summary["fairness"] == stored["summary"]["fairness"]
    main = stored["scenarios"][stored["main_scenario"]]
    assert summary["counts"]["n"] == main["n_units"]
    assert summary["counts"]["positives"] == round(main["prevalence"] * main["n_units"])
    assert summary["counts"]["predicted_positive"] == main.get("n_predicted_positive")
    assert summary["robustness"]["drops"] == {
        "cxr_missing_100": stored["robustness"]["drops"]["cxr_missing_100"]
    }
    assert summary == summarize(report)
    # What leaves the platform is built from it as from a current report.
    view = participant_report(report)
    assert view["summary"]["value"] is not None and "seed" not in view
    assert view["fairness"]["intersections"] == {}


def test_the_first_version_1_report_lacks_what_was_added_to_it_later():
    report = read_report(json.loads((DATA / SCHEMA_1[0]).read_text()))
    assert "n_predicted_positive" not in report["scenarios"]["paired"]
    assert "tpr_median" not in report["curves"]["roc"]
    assert report["robustness"]["modality"] is None
    assert report["summary"]["counts"]["predicted_positive"] is None


def test_a_report_of_a_newer_version_is_refused_naming_the_versions():
    stored = json.loads((DATA / SCHEMA_1[1]).read_text())
    stored["schema"] = REPORT_SCHEMA + 1
    with pytest.raises(ReportVersionError) as err:
        read_report(stored)
    assert err.value.message == (
        f"report version {REPORT_SCHEMA + 1} is newer than this scorer reads "
        f"(versions 1 to {REPORT_SCHEMA}): read it with a newer scorer"
    )
    stored["schema"] = 0
    with pytest.raises(ReportVersionError, match="version 0 was never written"):
        read_report(stored)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda r: r.pop("schema"),
            "report has no version: its 'schema' key must be an integer, got None",
        ),  # fmt: skip
        (lambda r: r.update(schema="2"), "its 'schema' key must be an integer, got '2'"),
        (
            lambda r: r.pop("summary"),
            "report is malformed at report: the key 'summary' is missing",
        ),  # fmt: skip
        (
            lambda r: r["scenarios"]["paired"]["metrics"]["auroc"].update(ci="wide"),
            "report is malformed at report.scenarios.paired.metrics.auroc.ci: expected a list, "
            "got the text 'wide'",
        ),
        (
            lambda r: r["scenarios"]["paired"].update(n_units=12.5),
            "at report.scenarios.paired.n_units: expected an integer, got the number 12.5",
        ),
        (
            lambda r: r["scenarios"]["paired"]["replicates"].__setitem__(3, "x"),
            "at report.scenarios.paired.replicates[3]: expected a number or null, got the text 'x'",
        ),
        (
            lambda r: r["robustness"].update(audc=[0.7]),
            "at report.robustness.audc: expected an object or null, got a list",
        ),
        (
            lambda r: r["fairness"]["attributes"]["gender"].pop("groups"),
            "at report.fairness.attributes.gender: the key 'groups' is missing",
        ),
    ],
)
def test_a_malformed_report_is_refused_naming_the_key(tiny_reports, change, message):
    stored = json.loads(report_json(tiny_reports["probability"]))
    stored["fairness"]["attributes"]["gender"] = stored["fairness"]["attributes"].pop("sex")
    read_report(stored)  # renamed attribute: still a report
    change(stored)
    with pytest.raises(ReportFormatError) as err:
        read_report(stored)
    assert message in err.value.message


def test_a_malformed_version_1_report_is_named_before_its_summary_is_rebuilt():
    stored = json.loads((DATA / SCHEMA_1[0]).read_text())
    del stored["scenarios"]["paired"]["metrics"]
    with pytest.raises(ReportFormatError, match="report.scenarios.paired: the key 'metrics'"):
        read_report(stored)
    with pytest.raises(ReportFormatError, match="must be a JSON object, got a list"):
        read_report([stored])
