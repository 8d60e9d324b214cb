"""The suite specification: MedMod declared as data, a suite defined here from scratch, and
every malformed specification refused with a message naming its field."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest

from benchmark_data import Benchmark, BenchmarkError, BenchmarkWriter, layout, tasks
from benchmark_data.suite import SuiteError, builtin_suite, load_suite, parse_suite

# A third suite, declared here and nowhere else: one required and one optional modality, a
# binary task at admission + 24 h, a multi-label task at the stay's end, an ablation, and a
# binned and a grouped fairness attribute.
TINY = {
    "spec": "medmod-suite",
    "spec_version": 1,
    "slug": "tiny-notes",
    "title": "Tiny notes suite",
    "modalities": [
        {"slug": "vitals", "title": "Vital signs", "required": True},
        {"slug": "notes", "title": "Clinical notes", "withheld_levels": [50, 100]},
    ],
    "tasks": [
        {
            "slug": "mortality-24h",
            "title": "Mortality from the first day",
            "kind": "binary",
            "key_columns": ["stay_id"],
            "labels": ["Death in hospital"],
            "prediction_time": {"anchor": "admission", "hours": 24},
            "primary_metric": "auprc",
            "metrics": ["auroc", "auprc", "accuracy"],
            "decision_metrics": ["accuracy", "answer_rate"],
            "threshold": 0.3,
        },
        {
            "slug": "diseases",
            "title": "Diseases",
            "kind": "multilabel",
            "key_columns": ["stay_id"],
            "labels": ["Sepsis", "Heart failure", "AKI"],
            "prediction_time": {"anchor": "stay_end"},
            "primary_metric": "macro_f1",
            "metrics": ["macro_f1", "micro_f1", "macro_auroc"],
            "modalities": ["notes"],
        },
    ],
    "ablations": [{"slug": "vitals_only", "title": "Vital signs only", "modalities": ["vitals"]}],
    "fairness": [
        {"slug": "age_group", "title": "Age", "source": "age", "edges": [0, 65, 85, None],
         "labels": ["<=65", "65-85", ">85"]},
        {"slug": "sex", "title": "Sex", "source": "gender", "groups": ["F", "M"], "other": "U"},
    ],
}  # fmt: skip


def test_medmod_is_a_declared_suite_with_the_definitions_it_always_had():
    suite = builtin_suite("medmod")
    assert suite.task_slugs == (
        "in-hospital-mortality", "phenotyping", "decompensation", "length-of-stay", "radiology",
    )  # fmt: skip
    assert suite.scenarios == (
        "paired", "cxr_missing_25", "cxr_missing_50", "cxr_missing_75", "cxr_missing_100",
        "natural",
    )  # fmt: skip
    assert tasks.TASKS["in-hospital-mortality"] is suite.task("in-hospital-mortality")
    mortality = suite.task("in-hospital-mortality")
    assert mortality.prediction_time.describe() == "at admission + 48 h"
    assert mortality.metrics == (
        "auroc", "auprc", "brier", "ece", "f1", "precision", "recall", "specificity",
    )  # fmt: skip
    assert suite.task("decompensation").hourly and suite.task("length-of-stay").hourly
    assert not suite.task("radiology").hourly
    assert (
        len(tasks.PHENOTYPE_NAMES) == 25
        and tasks.TASKS["phenotyping"].label_groups.count("acute") == 13
    )
    edges = tasks.LOS_BUCKET_EDGES_DAYS
    assert edges == (0, 1, 2, 3, 4, 5, 6, 7, 8, 14, math.inf)
    assert tasks.los_bucket([3.0, 30.0, 400.0]).tolist() == [0, 1, 9]
    assert tasks.age_group([17, 45, 90]).tolist() == ["18-40", "40-60", "80+"]
    assert tasks.RACE_GROUPS == ("WHITE", "BLACK", "HISPANIC", "ASIAN", "OTHER")
    # The declaration is canonical JSON with a stable hash (it goes into the benchmark).
    again = load_suite(suite.to_json())
    assert again == suite and again.sha256 == suite.sha256


def test_a_new_suite_is_declared_by_its_specification_alone():
    suite = parse_suite(TINY)
    assert suite.scenarios == ("paired", "notes_missing_50", "notes_missing_100", "vitals_only", "natural")  # fmt: skip
    task = suite.task("mortality-24h")
    assert (task.kind, task.threshold, task.suite) == ("binary", 0.3, "tiny-notes")
    assert task.prediction_time.describe() == "at admission + 24 h"
    assert task.modalities == ("vitals", "notes")
    diseases = suite.task("diseases")
    assert diseases.label_slugs == ("sepsis", "heart_failure", "aki")
    assert diseases.label_columns == ("sepsis", "heart_failure", "aki")
    assert suite.fairness_attribute("age_group").bin([40, 65, 70, 99]).tolist() == [
        "<=65", "65-85", "65-85", ">85",
    ]  # fmt: skip
    assert suite.fairness_attribute("sex").bin(["F", "M", "X"]).tolist() == ["F", "M", "U"]
    with pytest.raises(KeyError, match="the tasks are: mortality-24h, diseases"):
        suite.task("phenotyping")


def broken(path: str, value: object) -> dict:
    """TINY with the field at ``path`` (dots and list indices) set to ``value``
    (``...`` removes it)."""
    spec = copy.deepcopy(TINY)
    *parents, last = path.split(".")
    node: object = spec
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]  # type: ignore[index]
    key = int(last) if isinstance(node, list) else last
    if value is ...:
        del node[key]  # type: ignore[union-attr]
    else:
        node[key] = value  # type: ignore[index]
    return spec


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("spec", "other", r"suite\.spec: must be 'medmod-suite'"),
        ("spec_version", 2, r"suite\.spec_version: must be 1"),
        ("slug", "Tiny Suite", r"suite\.slug: 'Tiny Suite' is not a slug"),
        ("title", ..., r"suite\.title: is required"),
        ("colour", "blue", r"suite\.colour: unknown field"),
        ("modalities", [], r"suite\.modalities: must not be empty"),
        (
            "modalities.0.required",
            False,
            r"suite\.modalities: at least one modality must be required",
        ),  # fmt: skip
        ("modalities.1.slug", "vitals", r"suite\.modalities\[1\]\.slug: 'vitals' is used twice"),
        (
            "modalities.1.withheld_levels",
            [50, 150],
            r"suite\.modalities\[1\]\.withheld_levels\[1\]: must be a whole percentage",
        ),  # fmt: skip
        (
            "modalities.0.withheld_levels",
            [50],
            r"suite\.modalities\[0\]\.withheld_levels: a required modality is never withheld",
        ),  # fmt: skip
        (
            "tasks.0.kind",
            "ordinal",
            r"suite\.tasks\[0\]\.kind: 'ordinal' is not one of: binary, multilabel, los",
        ),  # fmt: skip
        (
            "tasks.0.labels",
            ["a", "b"],
            r"suite\.tasks\[0\]\.labels: a binary task has one label, not 2",
        ),  # fmt: skip
        (
            "tasks.1.labels",
            ["Heart failure", "heart-failure"],
            r"suite\.tasks\[1\]\.labels: two labels give the same column 'heart_failure'",
        ),  # fmt: skip
        (
            "tasks.0.metrics",
            ["auroc", "kappa"],
            r"suite\.tasks\[0\]\.metrics\[1\]: 'kappa' is not computed for a binary task",
        ),  # fmt: skip
        (
            "tasks.0.primary_metric",
            "brier",
            r"suite\.tasks\[0\]\.primary_metric: 'brier' must be one of the task's metrics",
        ),  # fmt: skip
        (
            "tasks.1.decision_metrics",
            ["accuracy"],
            r"suite\.tasks\[1\]\.decision_metrics: only a binary task",
        ),  # fmt: skip
        (
            "tasks.0.threshold",
            1.5,
            r"suite\.tasks\[0\]\.threshold: must be a probability strictly between 0 and 1",
        ),  # fmt: skip
        (
            "tasks.0.prediction_time",
            {"anchor": "discharge"},
            r"suite\.tasks\[0\]\.prediction_time\.anchor: 'discharge' is not one of",
        ),  # fmt: skip
        (
            "tasks.0.prediction_time",
            {"anchor": "admission"},
            r"suite\.tasks\[0\]\.prediction_time\.hours: must be a finite number",
        ),  # fmt: skip
        (
            "tasks.0.prediction_time",
            {"anchor": "every_hour"},
            r"suite\.tasks\[0\]\.key_columns: a task predicted every hour ends its keys with 'period_length'",
        ),  # fmt: skip
        (
            "tasks.0.prediction_time",
            ...,
            r"suite\.tasks\[0\]\.prediction_time: must be a JSON object",
        ),  # fmt: skip
        (
            "tasks.1.modalities",
            ["images"],
            r"suite\.tasks\[1\]\.modalities\[0\]: 'images' is not a modality of the suite: vitals, notes",
        ),  # fmt: skip
        (
            "tasks.1.slug",
            "mortality-24h",
            r"suite\.tasks\[1\]\.slug: 'mortality-24h' is used twice",
        ),  # fmt: skip
        (
            "tasks.1.key_columns",
            ["Stay ID"],
            r"suite\.tasks\[1\]\.key_columns\[0\]: 'Stay ID' is not a column name",
        ),  # fmt: skip
        (
            "tasks.0.kind",
            "los",
            r"suite\.tasks\[0\]\.metrics\[0\]: 'auroc' is not computed for a los task",
        ),  # fmt: skip
        (
            "tasks.1.buckets",
            {"edges_days": [0, 1, None], "mean_hours": [5, 50]},
            r"suite\.tasks\[1\]\.buckets: applies to a length-of-stay task only",
        ),  # fmt: skip
        (
            "ablations.0.modalities",
            ["notes"],
            r"suite\.ablations\[0\]\.modalities: must keep the required modality 'vitals'",
        ),  # fmt: skip
        (
            "ablations.0.slug",
            "notes_missing_50",
            r"suite\.ablations: the scenario 'notes_missing_50' is declared twice",
        ),  # fmt: skip
        (
            "fairness.0.labels",
            ["young", "old"],
            r"suite\.fairness\[0\]\.labels: must name each of the 3 bins, not 2",
        ),  # fmt: skip
        (
            "fairness.0.edges",
            [0, 85, 65, None],
            r"suite\.fairness\[0\]\.edges: must be at least two increasing edges",
        ),  # fmt: skip
        ("fairness.1.edges", [0, 1], r"suite\.fairness\[1\]\.labels: is required"),
    ],
)
def test_a_malformed_specification_is_refused_naming_the_field(path, value, message):
    with pytest.raises(SuiteError, match=message):
        parse_suite(broken(path, value))


def test_a_length_of_stay_task_needs_its_buckets():
    spec = copy.deepcopy(TINY)
    los = {
        "slug": "remaining-stay", "title": "Remaining stay", "kind": "los",
        "key_columns": ["stay_id", "period_length"], "labels": ["short", "long"],
        "prediction_time": {"anchor": "every_hour"}, "primary_metric": "kappa",
        "metrics": ["kappa", "mad"],
    }  # fmt: skip
    spec["tasks"].append(los)
    with pytest.raises(SuiteError, match=r"suite\.tasks\[2\]\.buckets: is required"):
        parse_suite(spec)
    los["buckets"] = {"edges_days": [0, 3, None], "mean_hours": [30.0, 200.0]}
    task = parse_suite(spec).task("remaining-stay")
    assert task.hourly and task.buckets is not None
    assert task.buckets.bucket([10.0, 71.9, 72.0, 5000.0]).tolist() == [0, 0, 1, 1]
    np.testing.assert_array_equal(task.buckets.hours([1, 0]), [200.0, 30.0])
    los["buckets"] = {"edges_days": [0, 3, None], "mean_hours": [30.0]}
    with pytest.raises(SuiteError, match=r"tasks\[2\]\.buckets\.mean_hours: must hold one value per bucket \(2\), not 1"):  # fmt: skip
        parse_suite(spec)


def test_a_document_that_is_not_json_is_refused_with_its_name():
    with pytest.raises(SuiteError, match=r"the suite specification suite.json is not valid JSON"):
        load_suite(b"{'slug': 'x'}")
    with pytest.raises(SuiteError, match=r"suite.json: must be a JSON object"):
        load_suite(json.dumps([TINY]))


def test_a_benchmark_declares_its_suite_and_is_read_through_it(tmp_path):
    writer = BenchmarkWriter(tmp_path / "tiny")
    writer.write_bytes("public/stays.csv", b"stay_id\n1\n")
    manifest = writer.finish(name="tiny", version="1", source={"kind": "test"}, seed=0,
                             suite=parse_suite(TINY))  # fmt: skip
    assert manifest["suite"] == "tiny-notes" and layout.SUITE in manifest["files"]
    bench = Benchmark.open(tmp_path / "tiny")
    assert bench.suite.slug == "tiny-notes" and bench.tasks == ["mortality-24h", "diseases"]
    assert bench.task("diseases").metrics == ("macro_f1", "micro_f1", "macro_auroc")
    with pytest.raises(KeyError, match="unknown task 'phenotyping' in suite tiny-notes"):
        bench.units("phenotyping", "train")
    # A benchmark written before suites were declared is MedMod's.
    old = BenchmarkWriter(tmp_path / "old")
    old.write_bytes("public/stays.csv", b"stay_id\n1\n")
    old.finish(name="old", version="1", source={"kind": "test"}, seed=0)
    assert Benchmark.open(tmp_path / "old").suite is builtin_suite("medmod")


def test_a_benchmark_with_a_malformed_suite_is_refused_naming_the_file_and_field(tmp_path):
    writer = BenchmarkWriter(tmp_path / "bad")
    writer.write_bytes(layout.SUITE, json.dumps(broken("tasks.0.kind", "ordinal")).encode())
    writer.finish(name="bad", version="1", source={"kind": "test"}, seed=0)
    bench = Benchmark.open(tmp_path / "bad")
    with pytest.raises(BenchmarkError, match=r"public/suite\.json\.tasks\[0\]\.kind: 'ordinal'"):
        _ = bench.suite


def test_the_yu_et_al_suite_is_declared_with_its_ablations_and_fairness_bins():
    suite = builtin_suite("yu2025")
    assert suite.task_slugs == ("mortality-24h", "los-over-3d")
    for task in suite.tasks:
        assert task.prediction_time.describe() == "at admission + 24 h"
        assert {"auroc", "auprc", "accuracy"} <= set(task.metrics)
        assert "answer_rate" in task.decision_metrics  # yes/no answers rank apart
    assert suite.scenarios == (
        "paired",
        "cxr_missing_25", "cxr_missing_50", "cxr_missing_75", "cxr_missing_100",
        "notes_missing_25", "notes_missing_50", "notes_missing_75", "notes_missing_100",
        "ablation_ehr", "ablation_ehr_cxr", "ablation_ehr_notes",
        "natural",
    )  # fmt: skip
    assert suite.fairness_attribute("age_group").bin([40, 65, 66, 85, 86, 99]).tolist() == [
        "<=65", "<=65", "66-85", "66-85", ">85", ">85",
    ]  # fmt: skip
    assert suite.fairness_attributes == ("age_group", "gender", "race")
