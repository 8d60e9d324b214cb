"""The streaming gateway's own cost, with a trivial model, per step, per 1,000 active stays
and in total.

    python scripts/bench_gateway.py --benchmark BENCHMARK_DIR [--task decompensation]

Side by side in one run: building the timeline (reading the test split), a plain read of
the same data (the bytes of every revealed item, encoded once, no protocol), and the
gateway's run with a model that answers 0.5 for every unit without decoding anything.
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
from leaderboard.containers.gateway import build_timeline, run_stream_subprocess  # noqa: E402

TRIVIAL = r"""
import json, sys
inp, out = sys.stdin.buffer, sys.stdout.buffer
hello = json.loads(inp.readline())
cols = hello["label_slugs"] if hello["kind"] == "multilabel" else ["prediction"]
out.write(b'{"type":"ready"}\n'); out.flush()
for line in inp:
    msg = json.loads(line)
    if msg["type"] == "end":
        break
    units = [u["unit"] for u in msg["units"]]
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", required=True)
    parser.add_argument("--task", default="decompensation")
    parser.add_argument("--scenario", default="paired")
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args(argv)

    bench = Benchmark.open(args.benchmark)
    t0 = time.perf_counter()
    split = test_split(bench)
    timeline = build_timeline(split, args.task, args.scenario)
    build = time.perf_counter() - t0
    plain_s, plain_bytes = plain_read(timeline)
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "trivial.py"
        model.write_text(TRIVIAL)
        t1 = time.perf_counter()
        record = run_stream_subprocess(
            [sys.executable, str(model)], timeline, output=Path(tmp) / "predictions.csv",
            limits=DEFAULT_LIMITS.with_(wall_time=7200.0),
        )  # fmt: skip
        whole = time.perf_counter() - t1
    if not record.ok:
        print(f"the run failed: {record.reason}: {record.message}\n{record.log_tail}")
        return 1
    s = record.summary()
    stay_steps = sum(record.stays_per_step)
    hours = s["bytes_revealed"]["discretized_hours"]
    figures = {
        "benchmark": f"{bench.name} {bench.version}",
        "task": args.task,
        "scenario": args.scenario,
        "units": record.units_answered,
        "steps": record.steps_done,
        "stays": len(timeline.stay_ids),
        "active stays per step, mean": round(stay_steps / max(1, record.steps_done), 1),
        "revealed hours": hours,
        "bytes revealed": s["bytes_revealed"],
        "timeline build s": round(build, 2),
        "plain read of the same data s": round(plain_s, 3),
        "gateway wall s (steps)": s["gateway_seconds"],
        "gateway CPU s (steps)": s["gateway_cpu_seconds"],
        "model wall s (steps)": s["model_seconds"],
        "gateway step time": s["gateway_step_time"],
        "gateway CPU step time": s["gateway_cpu_step_time"],
        "gateway ms per 1000 active stays per step (wall)": s["gateway_ms_per_1000_stay_steps"],
        "gateway ms per 1000 active stays per step (CPU)": s["gateway_cpu_ms_per_1000_stay_steps"],
        "gateway ms per revealed hour per 1000 stays (wall)": round(
            s["gateway_seconds"] * 1e6 / max(1, hours), 3
        ),  # fmt: skip
        "gateway CPU / plain read": round(s["gateway_cpu_seconds"] / max(plain_s, 1e-9), 2),
        "whole run s (model start to exit)": round(whole, 1),
        "whole run with build s": round(whole + build, 1),
    }
    print(json.dumps(figures, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
