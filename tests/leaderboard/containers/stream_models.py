"""Small streaming models for the gateway tests: one honest, the others break the protocol
in one way each. Run as ``python stream_models.py BEHAVIOUR [STEP]`` over stdin/stdout.

``honest`` answers through the participant helper (docker/template-model/model/
medmod_stream.py) with a risk from the revealed heart rate; the others speak the protocol
by hand and misbehave at step ``STEP`` (default 1).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

HELPER = Path(__file__).resolve().parents[3] / "docker" / "template-model" / "model"


def honest() -> int:
    sys.path.insert(0, str(HELPER))
    import medmod_stream

    hello: dict = {}

    def predict(batch):
        risks = []
        for unit in batch.units:
            col = 1 + unit.stay.column("Heart Rate")
            hr = [r[col] for r in unit.stay.timeseries if r[col] is not None]
            risks.append(min(1.0, max(0.0, (max(hr) - 60.0) / 100.0)) if hr else 0.1)
        kind, labels = hello["kind"], hello["label_slugs"]
        if kind == "multilabel":
            return {label: risks for label in labels}
        if kind == "los":
            return {"prediction": [48.0 * (1.0 + r) for r in risks]}
        return {"prediction": risks}

    return medmod_stream.run(predict, setup=hello.update)


def send(out, message: dict) -> None:
    out.write(json.dumps(message).encode() + b"\n")
    out.flush()


def answer_for(hello: dict, msg: dict, units: list[str]) -> dict:
    if hello["kind"] == "multilabel":
        values = {label: [0.5] * len(units) for label in hello["label_slugs"]}
    else:
        values = {"prediction": [0.5] * len(units)}
    return {"type": "answer", "step": msg["step"], "units": units, "values": values}


def misbehave(behaviour: str, at: int) -> int:
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    hello = json.loads(inp.readline())
    if behaviour == "not_ready":
        send(out, {"type": "hi"})
        return 0
    if behaviour == "silent_start":
        time.sleep(60)
    send(out, {"type": "ready"})
    for line in inp:
        msg = json.loads(line)
        if msg["type"] == "end":
            if behaviour == "no_exit":
                time.sleep(60)
            return 3 if behaviour == "crash_after_end" else 0
        units = [u["unit"] for u in msg["units"]]
        reply = answer_for(hello, msg, units)
        if msg["step"] == at:
            if behaviour == "unknown_units":
                reply["units"] = units[:-1] + ["u000000000000"]
            elif behaviour == "missing_units":
                reply = answer_for(hello, msg, units[:-1])
            elif behaviour == "duplicate_units":
                reply = answer_for(hello, msg, units + units[:1])
            elif behaviour == "malformed":
                out.write(b'{"type": "answer", "step": \n')
                out.flush()
                continue
            elif behaviour == "wrong_values":
                reply["values"] = {k: [1.5] * len(units) for k in reply["values"]}
            elif behaviour == "wrong_step":
                reply["step"] = msg["step"] + 1
            elif behaviour == "answer_twice":
                send(out, reply)
            elif behaviour == "stall":
                time.sleep(60)
            elif behaviour == "exit_early":
                os._exit(0)
            elif behaviour == "crash":
                os._exit(5)
            elif behaviour == "too_large":
                out.write(b"[" + b"0," * (3 << 20))
                out.flush()
                time.sleep(60)
        send(out, reply)
    return 0


if __name__ == "__main__":
    which = sys.argv[1]
    sys.exit(honest() if which == "honest" else misbehave(which, int(sys.argv[2]) if len(sys.argv) > 2 else 1))  # fmt: skip
