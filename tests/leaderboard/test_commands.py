"""Management commands: load_benchmark, load_baselines, rescore, reap."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from leaderboard.board.models import AuditLog, Benchmark, Evaluation, Submission
from tests.leaderboard.factories import EvaluationFactory

pytestmark = pytest.mark.django_db


def _call(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.mark.slow
def test_load_benchmark_registers_and_verifies(demo_benchmark_dir):
    text = _call("load_benchmark", str(demo_benchmark_dir))
    assert "registered medmod-synthetic demo-seed42" in text and "current" in text
    b = Benchmark.objects.get()
    assert b.is_current and b.tasks.count() == 5
    counts = json.loads((demo_benchmark_dir / "manifest.json").read_text())["counts"]
    ihm = b.tasks.get(slug="in-hospital-mortality")
    assert ihm.n_test_units == counts["in-hospital-mortality"]["test"] and not ihm.gateway_only
    # Decompensation is scored on every hourly test row, through the gateway only.
    dec = b.tasks.get(slug="decompensation")
    assert dec.gateway_only and dec.n_test_units == counts["decompensation"]["test_clean"] > 0
    # idempotent on the manifest hash
    _call("load_benchmark", str(demo_benchmark_dir))
    assert Benchmark.objects.count() == 1
    assert AuditLog.objects.filter(action="benchmark.load").count() == 2


def test_load_benchmark_explains_a_bad_location(tmp_path):
    with pytest.raises(CommandError, match="manifest.json is missing"):
        call_command("load_benchmark", str(tmp_path))


def test_load_benchmark_refuses_a_public_export(tmp_path, demo_benchmark_dir):
    from benchmark_data import Benchmark as Data
    from benchmark_data import export_public

    export_public(Data.open(demo_benchmark_dir), tmp_path / "public")
    with pytest.raises(CommandError, match="no credentialed part"):
        call_command("load_benchmark", str(tmp_path / "public"), "--no-verify")


def test_load_baselines_enters_reference_entries(benchmark, tmp_path, sample_ihm_csv):
    run = tmp_path / "run"
    (run / "predictions" / "in-hospital-mortality").mkdir(parents=True)
    (run / "predictions" / "in-hospital-mortality" / "late.csv").write_bytes(sample_ihm_csv)
    (run / "run.json").write_text(json.dumps({
        "kind": "medmod-baselines-run", "seed": 42, "code_version": "abc123",
        "benchmark": {"hash": benchmark.manifest_hash},
        "tasks": {"in-hospital-mortality": {"late": {"best_epoch": 3, "val_metric": 0.8}}},
    }))  # fmt: skip
    text = _call("load_baselines", str(run))
    assert "1 reference entry entered" in text
    sub = Submission.objects.get()
    assert (
        sub.is_reference
        and sub.method_name == "Late fusion"
        and sub.team_name == "Platform reference"
    )
    assert sub.uses_ehr and sub.uses_cxr and "seed 42" in sub.description
    assert sub.evaluations.get().trigger == "baseline"
    assert "0 reference entries entered" in _call("load_baselines", str(run))  # already there


def test_load_baselines_prefers_the_streamed_files(benchmark, tmp_path, sample_ihm_csv):
    """A model the platform streamed through the gateway is entered from its streamed file,
    verified and causal; a model without one keeps its file and its label."""
    run = tmp_path / "run"
    task = "in-hospital-mortality"
    for folder in ("predictions", "stream"):
        (run / folder / task).mkdir(parents=True)
    (run / "predictions" / task / "late.csv").write_bytes(sample_ihm_csv)
    (run / "predictions" / task / "ehr.csv").write_bytes(sample_ihm_csv)
    (run / "stream" / task / "late.csv").write_bytes(sample_ihm_csv.replace(b"\n", b"\r\n"))
    (run / "run.json").write_text(json.dumps({
        "kind": "medmod-baselines-run", "benchmark": {"hash": benchmark.manifest_hash},
        "tasks": {task: {"late": {}, "ehr": {}}},
    }))  # fmt: skip
    (run / "stream.json").write_text(json.dumps({
        "kind": "medmod-baselines-stream", "runs": {task: {"late": {"paired": {}}}},
    }))  # fmt: skip
    assert "2 reference entries entered" in _call("load_baselines", str(run))
    late = Submission.objects.get(method_name="Late fusion")
    ehr = Submission.objects.get(method_name="EHR only (LSTM)")
    assert late.streamed and late.causal and late.verification == "verified"
    assert "streaming gateway" in late.description
    assert late.evaluations.get().note.startswith("Reference baseline run through the streaming")
    assert not ehr.streamed and not ehr.causal and "streaming" not in ehr.description


def test_load_baselines_refuses_a_run_on_another_benchmark(benchmark, tmp_path, sample_ihm_csv):
    run = tmp_path / "run"
    (run / "predictions" / "in-hospital-mortality").mkdir(parents=True)
    (run / "predictions" / "in-hospital-mortality" / "ehr.csv").write_bytes(sample_ihm_csv)
    (run / "run.json").write_text(json.dumps({"benchmark": {"hash": "0" * 64}}))
    with pytest.raises(CommandError, match="not on the current benchmark"):
        call_command("load_baselines", str(run))


def test_rescore_command_by_submission_task_and_all(staff):
    ev = EvaluationFactory()
    sub = ev.submission
    assert "1 run(s) queued" in _call(
        "rescore", "--submission", str(sub.pk), "--user", staff.username
    )
    assert "0 run(s) queued, 1 skipped" in _call("rescore", "--task", sub.task.slug)
    Evaluation.objects.filter(status="queued").update(
        status="failed", error_message="x", run_token=ev.run_token
    )
    assert "1 run(s) queued" in _call("rescore", "--all")
    assert AuditLog.objects.filter(action="evaluation.rescore").first().details["scope"] == "all"
    with pytest.raises(CommandError, match="no submission"):
        call_command("rescore", "--submission", "999999")


def test_reap_command(db):
    assert "requeued 0, gave up 0, resent 0" in _call("reap")
