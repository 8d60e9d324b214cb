"""The streaming gateway's own cost, with a trivial model, per step, per 1,000 active stays
and in total.

    python scripts/bench_gateway.py --benchmark BENCHMARK_DIR [--task decompensation]

Side by side in one run: building the timeline (reading the test split), a plain read of
the same data (the bytes of every revealed item, encoded once, no protocol), and the
gateway's runs with a model that answers 0.5 for every unit without decoding anything:
for each ``--model-ms`` (the model's time per step, slept), with the coming steps' images
encoded ahead on the gateway's image thread and, alternating, within each step.
Target (issue 12): at most 5 ms of gateway time per revealed hour per 1,000 active stays.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmark_data import Benchmark  # noqa: E402
from benchmark_data.sequestered import test_split  # noqa: E402
from leaderboard.containers import DEFAULT_LIMITS  # noqa: E402
from leaderboard.containers.gateway import build_timeline, reveal, run_stream_subprocess  # noqa: E402

DEFAULT_AHEAD = reveal.STEPS_AHEAD

TRIVIAL = r"""
import json, sys, time
work = float(sys.argv[1]) / 1000.0
inp, out = sys.stdin.buffer, sys.stdout.buffer
hello = json.loads(inp.readline())
cols = hello["label_slugs"] if hello["kind"] == "multilabel" else ["prediction"]
out.write(b'{"type":"ready"}\n'); out.flush()
for line in inp:
    msg = json.loads(line)
    if msg["type"] == "end":
        break
    units = [u["unit"] for u in msg["units"]]
    if work:
        time.sleep(work)
    answer = {"type": "answer", "step": msg["step"], "units": units,
              "values": {c: [0.5] * len(units) for c in cols}}
    out.write(json.dumps(answer).encode() + b"\n"); out.flush()
"""


def plain_read(timeline) -> tuple[float, int]:
    """Encode every revealed item once, as a reader of the same data would: the floor the
    gateway's message building is compared with."""
    t0 = time.perf_counter()
    n = len(",".join(timeline.ts_json))
    n += len(base64.b64encode(timeline.disc_rows.tobytes()))
    for _, _, _, dicom in timeline.images:
        n += len(base64.b64encode(timeline.read_image(dicom)))
    return time.perf_counter() - t0, n


def run_once(timeline, model_ms: float, ahead: bool) -> tuple[dict, float]:
    """One run with the trivial model; the record's summary and the whole run's seconds."""
    reveal.STEPS_AHEAD = DEFAULT_AHEAD if ahead else 0
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "trivial.py"
        model.write_text(TRIVIAL)
        t1 = time.perf_counter()
        record = run_stream_subprocess(
            [sys.executable, str(model), str(model_ms)], timeline,
            output=Path(tmp) / "predictions.csv", limits=DEFAULT_LIMITS.with_(wall_time=7200.0),
        )  # fmt: skip
        whole = time.perf_counter() - t1
    reveal.STEPS_AHEAD = DEFAULT_AHEAD
    if not record.ok:
        raise SystemExit(f"the run failed: {record.reason}: {record.message}\n{record.log_tail}")
    return record.summary(), whole


def figures_of(s: dict, whole: float, build: float, plain_s: float) -> dict:
    hours = s["bytes_revealed"]["discretized_hours"]
    cpu_all = s["gateway_cpu_seconds"] + s["gateway_prefetch_cpu_seconds"]
    return {
        "gateway wall s (steps)": s["gateway_seconds"],
        "gateway CPU s (steps)": s["gateway_cpu_seconds"],
        "gateway image thread CPU s": s["gateway_prefetch_cpu_seconds"],
        "model wall s (steps)": s["model_seconds"],
        "gateway step time": s["gateway_step_time"],
        "gateway CPU step time": s["gateway_cpu_step_time"],
        "gateway ms per 1000 active stays per step (wall)": s["gateway_ms_per_1000_stay_steps"],
        "gateway ms per 1000 active stays per step (CPU)": s["gateway_cpu_ms_per_1000_stay_steps"],
        "gateway ms per 1000 active stays per step (CPU, image thread included)": s[
            "gateway_all_cpu_ms_per_1000_stay_steps"
        ],
        "gateway ms per revealed hour per 1000 stays (wall)": round(
            s["gateway_seconds"] * 1e6 / max(1, hours), 3
        ),  # fmt: skip
        "gateway CPU (image thread included) / plain read": round(cpu_all / max(plain_s, 1e-9), 2),
        "whole run s (model start to exit)": round(whole, 1),
        "whole run with build s": round(whole + build, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", required=True)
    parser.add_argument("--task", default="decompensation")
    parser.add_argument("--scenario", default="paired")
    parser.add_argument(
        "--model-ms", default="0,2",
        help="comma-separated: the model sleeps this long per step, as a model at work would "
        "(default 0,2)",
    )  # fmt: skip
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args(argv)
    try:
        sleeps = [float(x) for x in args.model_ms.split(",") if x.strip()]
    except ValueError:
        parser.error(f"--model-ms takes numbers separated by commas, not {args.model_ms!r}")

    bench = Benchmark.open(args.benchmark)
    t0 = time.perf_counter()
    split = test_split(bench)
    timeline = build_timeline(split, args.task, args.scenario)
    build = time.perf_counter() - t0
    plain_s, _ = plain_read(timeline)
    runs: dict[str, dict] = {}
    last = None
    for model_ms in sleeps:  # the two gateways alternate, side by side on the same machine
        for ahead in (True, False):
            s, whole = run_once(timeline, model_ms, ahead)
            name = f"model {model_ms:g} ms/step, images {'ahead' if ahead else 'in step'}"
            runs[name] = figures_of(s, whole, build, plain_s)
            last = s
    assert last is not None
    stay_steps = last["steps"]["done"]
    figures = {
        "benchmark": f"{bench.name} {bench.version}",
        "task": args.task,
        "scenario": args.scenario,
        "units": last["units"]["answered"],
        "steps": stay_steps,
        "stays": len(timeline.stay_ids),
        "active stays per step, mean": round(
            last["bytes_revealed"]["stay_mentions"] / max(1, stay_steps), 1
        ),  # fmt: skip
        "revealed hours": last["bytes_revealed"]["discretized_hours"],
        "bytes revealed": last["bytes_revealed"],
        "timeline build s": round(build, 2),
        "plain read of the same data s": round(plain_s, 3),
        "runs": runs,
    }
    print(json.dumps(figures, indent=1))
    key = "gateway ms per 1000 active stays per step (wall)"
    print(f"\n{'run':<42} {'wall ms/1000 stay-steps':>24} {'CPU incl. thread':>17} {'target':>7}")
    for name, f in runs.items():
        cpu = f["gateway ms per 1000 active stays per step (CPU, image thread included)"]
        met = "met" if f[key] <= 5.0 else "MISSED"
        print(f"{name:<42} {f[key]:>24.2f} {cpu:>17.2f} {met:>7}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
