"""The gateway with the real engine: the template image streamed in every scenario, and a
probe image that tries to read ahead (asks for future data, answers late, looks for files,
tries to connect elsewhere). The probe's log shows what it asked for and what it got."""

from __future__ import annotations

import json
from pathlib import Path

import docker
import pandas as pd
import pytest

from benchmark_data import Benchmark
from benchmark_data.sequestered import test_split
from leaderboard.containers import DEFAULT_LIMITS, RunStatus, run_all_scenarios
from leaderboard.containers.limits import GiB
from scoring.report import score_predictions
from scoring.truth import truth_from_benchmark
from tests.leaderboard.containers.conftest import TEMPLATE_TAG, leftovers
from tests.leaderboard.containers.hostile import _context, save_image

pytestmark = pytest.mark.slow

LIMITS = DEFAULT_LIMITS.with_(memory_bytes=2 * GiB, cpus=1.0, wall_time=300.0, step_time=20.0,
                              ready_time=30.0, exit_time=10.0)  # fmt: skip

# Speaks the protocol by hand. Before it answers anything it looks for files and other
# channels; at step 1 it answers late; at step 2 it asks for the future instead of
# answering. Everything it tries and gets is logged as "PROBE {json}" lines.
PROBE = r"""
import json, os, socket, sys, time

def log(**what):
    print("PROBE " + json.dumps(what), flush=True)

def attempt(name, fn):
    try:
        log(tried=name, got=repr(fn())[:200])
    except Exception as exc:
        log(tried=name, refused=f"{type(exc).__name__}: {exc}"[:200])

for path in ("/input", "/output", "/gateway", "/benchmark", "/work", "/var/lib/docker"):
    attempt(f"list {path}", lambda p=path: sorted(os.listdir(p)))
attempt("read /input/units.csv", lambda: open("/input/units.csv").read(100))
attempt("mounts", lambda: [l.split()[4] for l in open("/proc/self/mountinfo")])
attempt("write /gateway/x", lambda: open("/gateway/x", "w").write("x"))
for host, port in (("1.1.1.1", 53), ("172.17.0.1", 2375), ("127.0.0.1", 5432)):
    attempt(f"tcp {host}:{port}", lambda h=host, p=port: socket.create_connection((h, p), timeout=2))
attempt("unix /var/run/docker.sock", lambda: socket.socket(socket.AF_UNIX).connect("/var/run/docker.sock"))

sock = socket.socket(socket.AF_UNIX)
sock.connect(os.environ["MEDMOD_GATEWAY"])
second = socket.socket(socket.AF_UNIX)
def second_channel():
    second.connect(os.environ["MEDMOD_GATEWAY"])
    second.settimeout(2)
    second.sendall(b'{"type": "ready"}\n')
    return second.recv(100)
attempt("a second connection to the gateway", second_channel)
f = sock.makefile("rb")
hello = json.loads(f.readline())
log(hello_keys=sorted(hello))
sock.sendall(b'{"type": "ready"}\n')
while True:
    line = f.readline()
    if not line:
        log(step="closed", got="EOF")
        break
    msg = json.loads(line)
    if msg["type"] != "step":
        log(got=msg["type"])
        break
    t = msg["time"]
    times = [r[1] for r in msg.get("timeseries", [])] + [i["hours"] for i in msg.get("images", [])]
    disc = msg.get("discretized") or {"first_hour": [], "hours": []}
    ends = [a + n for a, n in zip(disc["first_hour"], disc["hours"])]
    log(step=msg["step"], time=t, latest_row=max(times, default=None),
        latest_hour_end=max(ends, default=None), bytes=len(line))
    units = [u["unit"] for u in msg["units"]]
    if msg["step"] == 1:
        sock.setblocking(False)
        time.sleep(3)
        try:
            early = sock.recv(1 << 20)
        except BlockingIOError:
            early = b""
        sock.setblocking(True)
        log(waited_without_answering=3, got_meanwhile=len(early))
    if msg["step"] == 2:
        ask = {"type": "request", "stay": msg["units"][0]["stay"], "until": 1e9,
               "want": ["timeseries", "discretized", "images"]}
        sock.sendall((json.dumps(ask) + "\n").encode())
        sock.settimeout(5)
        try:
            reply = sock.recv(1 << 20)
        except OSError as exc:
            reply = f"{type(exc).__name__}".encode()
        log(asked=ask, got=reply[:200].decode("utf-8", "replace") or "nothing (channel closed)")
        break
    answer = {"type": "answer", "step": msg["step"], "units": units,
              "values": {"prediction": [0.5] * len(units)}}
    sock.sendall((json.dumps(answer) + "\n").encode())
"""


@pytest.fixture(scope="module")
def probe_archive(engine: docker.DockerClient, template_archive: Path, tmp_path_factory):
    tag = "medmod-test/gateway-probe:latest"
    engine.images.build(fileobj=_context(PROBE), custom_context=True, tag=tag,
                        buildargs={"BASE": TEMPLATE_TAG}, network_mode="none", rm=True,
                        forcerm=True)  # fmt: skip
    archive = save_image(engine, tag, tmp_path_factory.mktemp("probe") / "probe.tar")
    yield archive
    engine.images.remove(tag, force=True)


def test_a_probe_that_tries_to_read_ahead_gets_nothing_past_each_prediction_time(
    engine: docker.DockerClient, probe_archive: Path, tiny_bench: Benchmark, tmp_path
):
    run = run_all_scenarios(probe_archive, benchmark=tiny_bench, task="decompensation",
                            work_dir=tmp_path, scenarios=("paired",), limits=LIMITS,
                            client=engine, mode="stream")  # fmt: skip
    result = run.results["paired"]
    probes = [json.loads(line[6:]) for line in result.log_tail.splitlines() if line.startswith("PROBE ")]  # fmt: skip
    print("\n".join(json.dumps(p) for p in probes))  # what it asked for and what it got
    tried = {p["tried"]: p for p in probes if "tried" in p}
    for name in ("list /input", "list /output", "list /benchmark", "list /work"):
        assert "refused" in tried[name] or tried[name]["got"] == "[]", tried[name]  # no data
    for name in ("read /input/units.csv", "write /gateway/x",
                 "tcp 1.1.1.1:53", "tcp 172.17.0.1:2375", "tcp 127.0.0.1:5432",
                 "unix /var/run/docker.sock"):  # fmt: skip
        assert "refused" in tried[name], tried[name]
    assert tried["list /gateway"]["got"] == "['socket']"
    # A second connection is never served: the gateway talks to the first one only.
    assert "refused" in tried["a second connection to the gateway"] or tried[
        "a second connection to the gateway"
    ]["got"] in ("b''",)
    steps = [p for p in probes if isinstance(p.get("step"), int)]
    assert [p["step"] for p in steps] == [0, 1, 2]
    for p in steps:
        assert p["latest_row"] is None or p["latest_row"] <= p["time"]
        assert p["latest_hour_end"] is None or p["latest_hour_end"] <= p["time"]
    late = next(p for p in probes if "waited_without_answering" in p)
    assert late["got_meanwhile"] == 0  # nothing later arrives before the answer
    asked = next(p for p in probes if "asked" in p)
    assert asked["got"] in ("nothing (channel closed)", "ConnectionResetError")
    # The gateway ends the run on the request: a protocol error, no predictions.
    assert result.status == RunStatus.PROTOCOL_ERROR and result.stream["reason"] == "malformed"
    assert result.output_path is None and result.stream["steps"]["done"] == 2
    assert not leftovers(engine, run.run_id)


def test_the_template_image_streams_every_scenario(
    engine: docker.DockerClient, template_archive: Path, demo_bench: Benchmark, tmp_path
):
    """The template image, run through the gateway in its container, answers every
    scenario; its paired figures are the batch ones (docs/containers.md)."""
    run = run_all_scenarios(template_archive, benchmark=demo_bench, task="in-hospital-mortality",
                            work_dir=tmp_path, limits=LIMITS, client=engine, mode="stream")  # fmt: skip
    assert run.ok, run.summary()
    split = test_split(demo_bench)
    units = split.units("in-hospital-mortality")
    for scenario, result in run.results.items():
        stream = result.stream
        assert stream["status"] == "succeeded", (scenario, result.message, result.log_tail)
        want = len(units) if scenario == "paired" else int(units["cxr_dicom_id"].notna().sum())
        assert stream["units"]["answered"] == want
        if scenario == "cxr_missing_100":
            assert stream["bytes_revealed"]["images"] == 0
    truth = truth_from_benchmark(demo_bench, "in-hospital-mortality", unit_set="all")
    got = pd.read_csv(run.outputs["paired"])
    scored = got.merge(truth.keys, on="stay_id")  # the units scored: the clean ones
    assert len(scored) == truth.n > 0
    scored.to_csv(tmp_path / "scored.csv", index=False)
    report = score_predictions(tmp_path / "scored.csv", truth=truth, replicates=20)
    auroc = report["scenarios"]["paired"]["metrics"]["auroc"]["value"]
    print(f"template, streamed in its container: mortality AUROC {auroc:.3f}")
    assert auroc > 0.7  # informative; the batch figures are compared in docs/containers.md
    assert not leftovers(engine, run.run_id)
