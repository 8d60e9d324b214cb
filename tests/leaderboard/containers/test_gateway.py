"""The streaming gateway with local subprocess models: an honest model end to end (its
predictions scored by the real engine), every documented failure reason, and the scenarios.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

from benchmark_data import Benchmark
from benchmark_data.sequestered import test_split
from benchmark_data.tasks import get_task
from leaderboard.containers import DEFAULT_LIMITS, RunStatus
from leaderboard.containers.gateway import REASONS, build_timeline, run_stream_subprocess
from leaderboard.containers.limits import MiB
from scoring.report import score_predictions
from scoring.truth import truth_from_benchmark

MODELS = Path(__file__).with_name("stream_models.py")
LIMITS = DEFAULT_LIMITS.with_(
    step_time=3.0, ready_time=5.0, exit_time=3.0, wall_time=120.0, answer_bytes=1 * MiB
)


def model(behaviour: str, *args: str) -> list[str]:
    return [sys.executable, str(MODELS), behaviour, *args]


def check_scored(bench: Benchmark, task: str, out: Path, record, *, unit_set: str | None) -> float:
    """The run succeeded, and its file has one row per test unit with the task's keys and
    is accepted and scored by the scoring engine."""
    assert record.status == RunStatus.SUCCEEDED, (record.message, record.log_tail)
    units = test_split(bench).units(task)
    assert record.units_answered == len(units) and record.steps_done == record.steps_total > 0
    summary = record.summary()
    assert summary["bytes_revealed"]["total"] > summary["bytes_revealed"]["discretized"] > 0
    assert summary["gateway_step_time"]["p95_ms"] is not None
    assert summary["exit_code"] == 0
    keys = list(get_task(task).key_columns)
    got = pd.read_csv(out)
    assert list(got.columns[: len(keys)]) == keys
    pd.testing.assert_frame_equal(
        got[keys].astype(str).sort_values(keys).reset_index(drop=True),
        units[keys].astype(str).sort_values(keys).reset_index(drop=True),
    )
    truth = truth_from_benchmark(bench, task, unit_set=unit_set)
    # The gateway asks every unit; the engine scores those the task is scored on.
    scored = got.merge(truth.keys.astype({k: got[k].dtype for k in keys}), on=keys)
    assert len(scored) == truth.n > 0
    scored.to_csv(out.with_name("scored.csv"), index=False)
    report = score_predictions(out.with_name("scored.csv"), truth=truth, replicates=20)
    value = report["scenarios"]["paired"]["metrics"][get_task(task).primary_metric]["value"]
    assert -1.0 <= value <= 1.0  # kappa for length of stay, AUROC otherwise
    return value


@pytest.mark.parametrize("task", ["decompensation", "in-hospital-mortality", "length-of-stay"])
def test_honest_model_on_a_format_1_benchmark_is_scored(tiny_bench: Benchmark, tmp_path, task):
    """On a format-1 benchmark (every test unit public) the file of an honest streamed run
    is scored exactly like an uploaded prediction file, with the default truth."""
    assert not test_split(tiny_bench).sequestered
    timeline = build_timeline(test_split(tiny_bench), task, "paired")
    out = tmp_path / "predictions.csv"
    record = run_stream_subprocess(model("honest"), timeline, output=out, limits=LIMITS)
    check_scored(tiny_bench, task, out, record, unit_set=None)


@pytest.mark.slow
@pytest.mark.parametrize("task", ["decompensation", "radiology", "phenotyping"])
def test_honest_model_on_the_demo_benchmark_is_scored(demo_bench: Benchmark, tmp_path, task):
    """On the demo benchmark an honest model answers every test unit (the whole test split)
    through the helper, and the engine scores its file on every test unit."""
    timeline = build_timeline(test_split(demo_bench), task, "paired")
    out = tmp_path / "predictions.csv"
    record = run_stream_subprocess(model("honest"), timeline, output=out,
                                   limits=LIMITS.with_(step_time=60.0))  # fmt: skip
    check_scored(demo_bench, task, out, record, unit_set="all")


FAILURES = [
    # behaviour, step it misbehaves at, reason, status, words the message holds
    ("not_ready", "1", "not_ready", RunStatus.PROTOCOL_ERROR, "instead of"),
    ("silent_start", "1", "stalled", RunStatus.TIMED_OUT, "hello"),
    ("unknown_units", "2", "unknown_units", RunStatus.PROTOCOL_ERROR, "u000000000000"),
    ("missing_units", "2", "missing_units", RunStatus.PROTOCOL_ERROR, "leaves out 1"),
    ("duplicate_units", "2", "duplicate_units", RunStatus.PROTOCOL_ERROR, "more than once"),
    ("malformed", "2", "malformed", RunStatus.PROTOCOL_ERROR, "step 2 is not one JSON"),
    ("wrong_values", "2", "wrong_values", RunStatus.PROTOCOL_ERROR, "probabilities in [0, 1]"),
    ("wrong_step", "2", "wrong_step", RunStatus.PROTOCOL_ERROR, "step 3 arrived while step 2"),
    ("answer_twice", "2", "wrong_step", RunStatus.PROTOCOL_ERROR, "step 2 arrived while step 3"),
    ("stall", "2", "stalled", RunStatus.TIMED_OUT, "did not answer step 2 within"),
    ("exit_early", "2", "exited_early", RunStatus.PROTOCOL_ERROR, "at step 2"),
    ("crash", "2", "exited_early", RunStatus.CRASHED, "at step 2"),
    ("too_large", "2", "answer_too_large", RunStatus.OUTPUT_TOO_LARGE, "more than 1.0 MiB"),
    ("no_exit", "2", "no_exit", RunStatus.TIMED_OUT, "after the end message"),
    ("crash_after_end", "2", "exit_code", RunStatus.CRASHED, "code 3"),
]


@pytest.mark.parametrize(("behaviour", "at", "reason", "status", "words"), FAILURES)
def test_a_model_that_breaks_the_protocol_fails_with_its_reason(
    tiny_bench: Benchmark, tmp_path, behaviour, at, reason, status, words
):
    """Each misbehaviour ends the run with its documented reason and status, a message that
    says what happened, and no prediction file (nothing half-scored)."""
    timeline = build_timeline(test_split(tiny_bench), "decompensation", "paired")
    out = tmp_path / "predictions.csv"
    record = run_stream_subprocess(model(behaviour, at), timeline, output=out, limits=LIMITS)
    assert (record.reason, record.status) == (reason, status), (record.message, record.log_tail)
    assert reason in REASONS
    assert words in record.message
    assert not out.exists() and record.output_path is None
    assert record.wall_time < 30


def test_wall_time_limit_ends_a_slow_run(tiny_bench: Benchmark, tmp_path):
    """A run past its total wall time stops with reason wall_time, even while every single
    step is answered within its own limit."""
    timeline = build_timeline(test_split(tiny_bench), "decompensation", "paired")
    record = run_stream_subprocess(
        model("stall", "1"), timeline, output=tmp_path / "p.csv",
        limits=LIMITS.with_(wall_time=2.0, step_time=30.0),
    )  # fmt: skip
    assert (record.reason, record.status) == ("wall_time", RunStatus.TIMED_OUT)
    assert "wall-time limit of 2 s" in record.message


def test_a_model_command_that_does_not_exist_exits_early(tiny_bench: Benchmark, tmp_path):
    timeline = build_timeline(test_split(tiny_bench), "in-hospital-mortality", "paired")
    record = run_stream_subprocess(
        [sys.executable, "-c", "import sys; sys.exit(7)"], timeline, output=tmp_path / "p.csv",
        limits=LIMITS,
    )  # fmt: skip
    assert record.reason == "exited_early" and record.status == RunStatus.CRASHED
    assert record.exit_code == 7


@pytest.mark.parametrize("scenario", ["cxr_missing_50", "cxr_missing_100"])
def test_missing_scenarios_ask_paired_units_and_never_send_withheld_images(
    tiny_bench: Benchmark, tmp_path, scenario
):
    """cxr_missing_* ask only the paired units; no image of a withheld stay is revealed and
    those units name no image."""
    split = test_split(tiny_bench)
    timeline = build_timeline(split, "decompensation", scenario)
    units = split.units("decompensation")
    assert len(timeline.unit_tokens) == int(units["cxr_dicom_id"].notna().sum())
    withheld = {int(s) for s in split.scenarios("decompensation").withheld[scenario]}
    assert withheld
    sent_stays = {int(timeline.stay_ids[s]) for s, *_ in timeline.images}
    assert not sent_stays & withheld
    for i, stay in enumerate(timeline.unit_stay.tolist()):
        if int(timeline.stay_ids[stay]) in withheld:
            assert timeline.unit_image[i] is None
    record = run_stream_subprocess(model("honest"), timeline, output=tmp_path / "p.csv",
                                   limits=LIMITS)  # fmt: skip
    assert record.ok, record.message
    assert record.units_answered == len(timeline.unit_tokens)
