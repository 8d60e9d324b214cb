"""The baselines through the streaming gateway predict what they predict from the files.

Every model kind, every task (on the hourly tasks and radiology, each model one of the two
scenarios), on the tiny synthetic benchmark's whole test split: the gateway's real driver
asks the :class:`StreamPredictor` over a real Unix socket, through the participant helper,
and the answers equal the batch path's predictions (float rounding aside). The models are
freshly initialised (seeded), which is enough: equality does not depend on the weights, and
their outputs still differ from unit to unit.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark_data.benchmark import Benchmark
from benchmark_data.sequestered import test_split
from benchmark_data.tasks import TASK_SLUGS, get_task
from leaderboard.containers.gateway import (
    SocketListener,
    StreamRecord,
    build_timeline,
    drive,
    run_stream_subprocess,
    write_predictions,
)
from leaderboard.containers.limits import DEFAULT_LIMITS
from scoring.baselines import MODEL_NAMES
from scoring.baselines.artifacts import RUN_KIND, checkpoint_path, save_checkpoint
from scoring.baselines.models import build_model
from scoring.baselines.predict import predict_scenarios, prediction_columns
from scoring.baselines.stream import HELPER_DIR, StreamPredictor
from scoring.baselines.workspace import Workspace

synth = pytest.importorskip("benchmark_data.synth")

pytestmark = pytest.mark.slow
# One thread, as a streamed model runs (two threads for one unit at a time mostly wait).
torch.set_num_threads(1)

SCENARIOS = ("paired", "cxr_missing_50")
MAX_HOURS = 24
# Float32 rounding differs between one pass over a stay and many short ones (MMTM's running
# mean over hundreds of rows most): a few units differ by up to about 4e-5. A real
# difference in inputs (a row or an image more or less) moves most units by 1e-4 or more.
TOLERANCE = 1e-4
TYPICAL = 2e-6


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Benchmark:
    root = tmp_path_factory.mktemp("stream") / "bench"
    synth.generate(root, scale="tiny", seed=3)
    return Benchmark.open(root)


@pytest.fixture(scope="module")
def workspace(bench) -> Workspace:
    return Workspace.load(bench, list(TASK_SLUGS), image_size=64, max_hours=MAX_HOURS)


def _model(task: str, name: str):
    t = get_task(task)
    out_dim = 1 if t.kind == "binary" else (10 if t.kind == "los" else len(t.label_slugs))
    torch.manual_seed(zlib.crc32(f"{task}/{name}".encode()))
    model = build_model(name, kind=t.kind, out_dim=out_dim, ehr_hidden=16, cxr_encoder="small")
    with torch.no_grad():  # move the no-image vectors away from zero, as training does
        for pname, param in model.named_parameters():
            if "no_image" in pname:
                param.normal_(0.0, 0.5)
    return model.eval(), {"name": name, "kind": t.kind, "out_dim": out_dim, "ehr_hidden": 16,
                          "dropout": 0.3, "cxr_encoder": "small"}  # fmt: skip


def _stream(timeline, predictor, sock: Path, dest: Path) -> tuple[pd.DataFrame, StreamRecord]:
    """One gateway run with the predictor behind the participant helper, in a thread."""
    sys.path.insert(0, str(HELPER_DIR))
    import medmod_stream

    listener = SocketListener(sock)
    failure: list[BaseException] = []

    def model_side() -> None:
        try:
            medmod_stream.run(predictor, address=str(sock))
        except BaseException as exc:  # reported by the test below
            failure.append(exc)

    thread = threading.Thread(target=model_side, daemon=True)
    thread.start()
    record = StreamRecord(task=timeline.task.slug, scenario=timeline.scenario)
    try:
        channel = listener.accept(time.monotonic() + 30)
        answers = drive(timeline, channel, record, limits=DEFAULT_LIMITS)
        thread.join(timeout=30)
    finally:
        listener.close()
    assert not failure, failure
    assert answers is not None, record.message
    return pd.read_csv(write_predictions(timeline, answers, dest)), record


def _batch(workspace: Workspace, task: str, model) -> pd.DataFrame:
    return predict_scenarios(
        model,
        workspace.data(task, "test"),
        workspace.units[(task, "test")],
        workspace.test_scenarios(task),
        ehr=workspace.ehr["test"],
        images=workspace.images,
        batch_size=64,
    )


# The hourly tasks have many prediction times per stay, and radiology many units, so
# streaming them costs most: there each model streams one of the two scenarios, and the
# other on the other hourly task. Every model still streams both scenarios on an hourly task,
# and both on each of in-hospital mortality and phenotyping.
ONE_SCENARIO = {"decompensation": 0, "length-of-stay": 1, "radiology": 0}


def _scenarios(task: str, index: int) -> tuple[str, ...]:
    if task not in ONE_SCENARIO:
        return SCENARIOS
    return (SCENARIOS[(index + ONE_SCENARIO[task]) % len(SCENARIOS)],)


@pytest.mark.parametrize("task", TASK_SLUGS)
def test_every_model_streams_the_batch_predictions(task, bench, workspace, tmp_path):
    t = get_task(task)
    split = test_split(bench)
    keys = list(t.key_columns)
    cols = prediction_columns(t)
    for index, name in enumerate(MODEL_NAMES):
        model, _ = _model(task, name)
        batch = _batch(workspace, task, model)
        predictor = StreamPredictor(
            model, t, preprocessing=workspace.preprocessing(), max_hours=MAX_HOURS
        )
        for scenario in _scenarios(task, index):
            timeline = build_timeline(split, task, scenario)
            got, record = _stream(timeline, predictor, tmp_path / "s", tmp_path / "p.csv")
            want = batch[batch["scenario"] == scenario].drop(columns="scenario")
            assert len(got) == len(want) == len(timeline.units), (name, scenario)
            both = want.merge(got, on=keys, suffixes=("_batch", "_stream"), validate="1:1")
            assert len(both) == len(want)
            a = both[[f"{c}_batch" for c in cols]].to_numpy()
            b = both[[f"{c}_stream" for c in cols]].to_numpy()
            diff = np.abs(a - b).max(axis=1)
            what = f"{task} {name} {scenario}: difference max {diff.max():.2e}"
            assert diff.max() < TOLERANCE and np.median(diff) < TYPICAL, what
            assert a.std(axis=0).max() > 1e-4, f"{task} {name}: constant predictions"
            assert record.steps_done == record.steps_total > 0
            # A new predictor per scenario, as each run is a new process.
            predictor = StreamPredictor(
                model, t, preprocessing=workspace.preprocessing(), max_hours=MAX_HOURS
            )


def test_the_serve_command_answers_the_gateway_as_a_process(bench, workspace, tmp_path):
    """``python -m scoring.baselines serve`` reads the run directory only."""
    from leaderboard.containers.baselines import serve_command

    task, name = "decompensation", "mmtm"
    run = tmp_path / "run"
    model, settings = _model(task, name)
    save_checkpoint(checkpoint_path(run, task, name), model, settings)
    (run / "run.json").write_text(json.dumps({
        "kind": RUN_KIND,
        "tasks": {task: {name: {}}},
        "config": {"max_hours": MAX_HOURS, "image_size": 64},
        "preprocessing": workspace.preprocessing(),
    }))  # fmt: skip
    timeline = build_timeline(test_split(bench), task, "cxr_missing_50")
    repo = Path(__file__).resolve().parents[3]
    record = run_stream_subprocess(
        serve_command(run, task, name),
        timeline,
        output=tmp_path / "out.csv",
        cwd=repo,
    )
    assert record.status.value == "succeeded", (record.message, record.log_tail)
    got = pd.read_csv(tmp_path / "out.csv")
    want = _batch(workspace, task, model)
    want = want[want["scenario"] == "cxr_missing_50"].drop(columns="scenario")
    both = want.merge(got, on=list(get_task(task).key_columns), validate="1:1")
    assert len(both) == len(timeline.units)
    assert float((both["prediction_x"] - both["prediction_y"]).abs().max()) < TOLERANCE


def test_stream_baselines_writes_scored_files_and_a_record(bench, workspace, tmp_path):
    """The operator's command: every model of a run, every scenario, as processes."""
    from leaderboard.containers.baselines import (
        StreamFailed,
        read_stream_manifest,
        scored_keys,
        stream_baselines,
        stream_path,
    )

    run = tmp_path / "run"
    tasks = {"in-hospital-mortality": ["late"], "length-of-stay": ["daft"]}
    models = {}
    for task, names in tasks.items():
        for name in names:
            model, settings = _model(task, name)
            models[(task, name)] = model
            save_checkpoint(checkpoint_path(run, task, name), model, settings)
    (run / "run.json").write_text(json.dumps({
        "kind": RUN_KIND,
        "benchmark": {"hash": bench.manifest_hash},
        "tasks": {t: {n: {} for n in names} for t, names in tasks.items()},
        "config": {"max_hours": MAX_HOURS, "image_size": 64},
        "preprocessing": workspace.preprocessing(),
    }))  # fmt: skip
    lines: list[str] = []
    record = stream_baselines(run, bench, jobs=2, progress=lines.append)
    assert len(lines) == 2 and read_stream_manifest(run) == record
    split = test_split(bench)
    for (task, name), model in models.items():
        keys = list(get_task(task).key_columns)
        got = pd.read_csv(stream_path(run, task, name))
        scored = scored_keys(split, task)
        want = _batch(workspace, task, model).merge(scored, on=keys)
        assert set(got["scenario"]) == set(want["scenario"]) and len(got) == len(want) > 0
        both = want.merge(got, on=[*keys, "scenario"], validate="1:1")
        cols = prediction_columns(get_task(task))
        diff = np.abs(both[[f"{c}_x" for c in cols]].to_numpy()
                      - both[[f"{c}_y" for c in cols]].to_numpy())  # fmt: skip
        assert diff.max() < TOLERANCE
        runs = record["runs"][task][name]
        assert set(runs) == set(want["scenario"])
        paired = runs["paired"]
        assert paired["steps"] > 0 and paired["revealed"]["discretized_hours"] > 0
        assert paired["units"] == len(split.units(task))  # every unit asked; scored ones kept
    # A run made on another benchmark is refused, and says why.
    manifest = json.loads((run / "run.json").read_text())
    manifest["benchmark"]["hash"] = "0" * 64
    (run / "run.json").write_text(json.dumps(manifest))
    with pytest.raises(StreamFailed, match="trained on benchmark 000000000000"):
        stream_baselines(run, bench)
