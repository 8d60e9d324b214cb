"""The training-missingness sweep on the platform: its runs enter unranked variants of the
reference entries, scored like any entry, and the task board shows their curve (figure,
table, API) with the figures as published."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark_data import Benchmark
from leaderboard.board.errors import BenchmarkInvalid
from leaderboard.board.models import BaselineJob, Evaluation, Submission
from leaderboard.board.selectors.training_missingness import variant_method_name
from leaderboard.board.services.baseline_jobs import baseline_jobs_plan, baseline_sweep_plan
from leaderboard.board.services.baselines import baselines_load, baselines_load_sweep
from leaderboard.board.services.evaluations import evaluation_run
from scoring.disclosure import participant_report
from scoring.report_reader import read_report
from scoring.template import sample_predictions

pytestmark = pytest.mark.slow  # scores seven entries

TASK = "in-hospital-mortality"
MODELS = ("late", "joint")
RATES = (0.3, 0.7)


def _write_run(root: Path, bench: Benchmark, rate: float | None, base: bytes) -> None:
    """A run directory as the baselines CLI writes it (manifest and prediction files), with
    seeded predictions per model and rate."""
    config = {"seed": 42} if rate is None else {"seed": 42, "train_cxr_missing": rate}
    manifest = {
        "kind": "medmod-baselines-run",
        "seed": 42,
        "benchmark": {"hash": bench.manifest_hash},
        "config": config,
        "tasks": {TASK: {m: {"best_epoch": 2} for m in MODELS}},
    }
    root.mkdir(parents=True)
    (root / "run.json").write_text(json.dumps(manifest))
    frame = pd.read_csv(io.BytesIO(base))
    for i, model in enumerate(MODELS):
        rng = np.random.default_rng([i, int(1000 * (rate or 0))])
        df = frame.copy()
        df["prediction"] = rng.uniform(0.01, 0.99, len(df)).round(6)
        out = root / "predictions" / TASK / f"{model}.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(out, index=False)


def _score(subs: list[Submission]) -> None:
    for sub in subs:
        pending = sub.evaluations.get(status=Evaluation.Status.QUEUED)
        assert evaluation_run(evaluation_id=pending.pk, worker="test").status == "succeeded"


@pytest.fixture
def sweep_entries(benchmark, demo_benchmark_dir, tmp_path):
    bench = Benchmark.open(demo_benchmark_dir)
    base = sample_predictions(bench, TASK)
    _write_run(tmp_path / "baselines", bench, None, base)
    sweep = tmp_path / "sweep"
    for rate in RATES:
        _write_run(sweep / f"rate-{rate:.2f}", bench, rate, base)
    index = {
        "kind": "medmod-baselines-sweep",
        "settings": {"benchmark": bench.manifest_hash, "tasks": [TASK], "models": ["joint"]},
        "runs": [{"rate": r, "dir": f"rate-{r:.2f}"} for r in RATES],
    }
    (sweep / "sweep.json").write_text(json.dumps(index))
    refs = baselines_load(run_dir=tmp_path / "baselines")
    variants = baselines_load_sweep(sweep_dir=sweep)
    _score(refs + variants)
    return refs, variants, sweep


def test_a_sweep_enters_the_models_it_asked_for_as_unranked_variants(client, sweep_entries):
    """Only joint (the sweep's model, not late it builds on) at each rate; the variants are
    scored, published and named with their rate, and the board ranks only the ordinary
    entries."""
    refs, variants, _ = sweep_entries
    assert [(v.method_name, v.train_missing_rate) for v in variants] == [
        (variant_method_name("Joint fusion", r), r) for r in RATES
    ]
    assert (
        variant_method_name("Joint fusion", 0.3) == "Joint fusion (training images withheld: 30%)"
    )
    for v in variants:
        v.refresh_from_db()
        assert v.status == Submission.Status.PUBLISHED and v.is_reference
        assert "30%" in v.description or "70%" in v.description
    assert all(r.train_missing_rate is None for r in refs)

    board = client.get(f"/api/tasks/{TASK}/leaderboard/").json()
    rows = board.get("entries") or board.get("rows")
    assert sorted(r["method_name"] for r in rows) == ["Joint fusion", "Late fusion"]
    page = client.get(f"/tasks/{TASK}/").content.decode()
    assert "withheld: 30%" not in page and "withheld: 70%" not in page
    # The home page counts the board's entries: the two ordinary ones, not the variants.
    home = client.get("/").content.decode()
    row = home[home.index(f'href="/tasks/{TASK}/"><strong>') :].split("</tr>")[0]
    assert '<td class="num">2</td>' in row


def test_the_task_board_shows_the_curve_with_the_published_figures(client, sweep_entries):
    """The robustness section has the figure (a panel per scenario, error bars from the
    CIs) and a table; the API gives the same figures, each the entry's published one."""
    refs, variants, _ = sweep_entries
    page = client.get(f"/tasks/{TASK}/").content.decode()
    assert 'id="training-missingness"' in page
    assert 'data-figure="training-missingness-figure"' in page
    assert "vendor/plotly.min.js" in page

    body = client.get(f"/api/tasks/{TASK}/training-missingness/").json()
    assert body["metric"] == "auroc" and body["scenarios"] == ["paired", "cxr_missing_100"]
    assert [m["method_name"] for m in body["models"]] == ["Joint fusion"]
    points = body["models"][0]["points"]
    assert [p["rate"] for p in points] == [0.0, *RATES]
    joint = next(r for r in refs if r.method_name == "Joint fusion")
    assert [p["entry_id"] for p in points] == [joint.public_id, *(v.public_id for v in variants)]
    for p in points:
        sub = Submission.objects.get(public_id=p["entry_id"])
        view = participant_report(read_report(sub.evaluations.get().report))
        published = {c["scenario"]: c for c in view["robustness"]["curve"]}
        for scenario in ("paired", "cxr_missing_100"):
            got = p["scenarios"][scenario]
            assert got["value"] == published[scenario]["value"]
            assert got["ci"] == published[scenario]["ci"]
            assert got["ci"][0] <= got["value"] <= got["ci"][1]
            assert len(repr(got["value"]).split(".")[-1]) <= 3  # rounded as on the board
    fig = body["figure"]
    assert {t["xaxis"] for t in fig["data"]} == {"x", "x2"}
    first = fig["data"][0]
    assert first["x"] == [0.0, *RATES] and first["name"] == "Joint fusion"  # one model: no dodge
    assert [c[0] for c in first["customdata"]] == [0.0, *RATES]
    paired = [p["scenarios"]["paired"] for p in points]
    assert first["y"] == [f["value"] for f in paired]
    assert first["error_y"]["array"] == pytest.approx([f["ci"][1] - f["value"] for f in paired])


def test_a_task_without_a_sweep_has_no_curve(client, benchmark):
    page = client.get(f"/tasks/{TASK}/").content.decode()
    assert 'id="training-missingness"' not in page
    body = client.get(f"/api/tasks/{TASK}/training-missingness/").json()
    assert body["models"] == [] and body["figure"] is None
    assert client.get("/api/tasks/nope/training-missingness/").status_code == 404


def test_a_new_variant_replaces_only_the_one_of_its_rate(
    sweep_entries, demo_benchmark_dir, tmp_path
):
    """Loading a rerun of rate 0.3 withdraws the old 0.3 variant, not the 0.7 one nor the
    ordinary entry."""
    refs, variants, _ = sweep_entries
    bench = Benchmark.open(demo_benchmark_dir)
    again = tmp_path / "again"
    _write_run(again, bench, 0.3, sample_predictions(bench, TASK))
    df = pd.read_csv(again / "predictions" / TASK / "joint.csv")
    df["prediction"] = (df["prediction"] * 0.9).round(6)
    df.to_csv(again / "predictions" / TASK / "joint.csv", index=False)
    new = baselines_load(run_dir=again, only={(TASK, "joint")})
    assert len(new) == 1 and new[0].train_missing_rate == 0.3
    states = {
        s.pk: s.status
        for s in Submission.objects.filter(pk__in=[v.pk for v in variants] + [r.pk for r in refs])
    }
    assert states[variants[0].pk] != Submission.Status.PUBLISHED
    assert states[variants[1].pk] == Submission.Status.PUBLISHED
    assert all(states[r.pk] == Submission.Status.PUBLISHED for r in refs)


def test_the_sweep_is_planned_after_the_main_jobs(benchmark, tmp_path):
    """One job per rate, after every job of the main plan, waiting for the main jobs of its
    models; bad rates, unknown models and a sweep of another benchmark are refused."""
    main = baseline_jobs_plan(benchmark=benchmark, run_dir=tmp_path / "run", tasks=[TASK],
                              models=["late", "joint"])  # fmt: skip
    jobs = baseline_sweep_plan(benchmark=benchmark, sweep_dir=tmp_path / "sweep", task=TASK,
                               models=["late", "joint"], rates=[0.5, 0.1])  # fmt: skip
    assert [j.model for j in jobs] == ["sweep:0.10:late,joint", "sweep:0.50:late,joint"]
    assert min(j.position for j in jobs) > max(j.position for j in main)
    assert jobs[0].needs == [f"{TASK}/late", f"{TASK}/joint"]
    assert "10% of training images withheld" in jobs[0].label
    again = baseline_sweep_plan(benchmark=benchmark, sweep_dir=tmp_path / "sweep", task=TASK,
                                models=["late", "joint"], rates=[0.1, 0.5])  # fmt: skip
    assert [j.pk for j in again] == [j.pk for j in jobs]
    assert BaselineJob.objects.filter(model__startswith="sweep:").count() == 2
    for kwargs, message in (
        ({"rates": [1.0]}, "lie in (0, 1)"),
        ({"rates": []}, "lie in (0, 1)"),
        ({"models": ["nope"]}, "unknown model(s) nope"),
        ({"task": "nope"}, "task nope is not in"),
    ):
        args = {"task": TASK, "models": ["late"], "rates": [0.3], **kwargs}
        with pytest.raises(BenchmarkInvalid, match=message.replace("(", r"\(").replace(")", r"\)")):
            baseline_sweep_plan(benchmark=benchmark, sweep_dir=tmp_path / "s2", **args)
    (tmp_path / "s3").mkdir()
    (tmp_path / "s3" / "sweep.json").write_text(json.dumps({"settings": {"benchmark": "0" * 64}}))
    with pytest.raises(BenchmarkInvalid, match="another benchmark"):
        baseline_sweep_plan(benchmark=benchmark, sweep_dir=tmp_path / "s3", task=TASK,
                            models=["late"], rates=[0.3])  # fmt: skip
