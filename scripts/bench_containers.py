"""A container run's overhead (the platform's time beyond the model's own), side by side:
``/output`` as a size-capped tmpfs volume with its holder (what the runner does) against a
bind-mounted host directory whose size is polled by walking it every 0.2 s (what it did).

    python scripts/bench_containers.py [--runs 10]

The model is a static busybox that writes a two-line predictions.csv, so nearly all of a
run's time is the platform's. Runs alternate between the two ways; medians are printed as
JSON. Needs a running engine (scripts/docker-engine.sh) and a static busybox.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import stat
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import docker.errors  # noqa: E402

from leaderboard.containers import DEFAULT_LIMITS, get_client, inspect_image_archive  # noqa: E402
from leaderboard.containers.engine import load_image, new_run_id, remove_image  # noqa: E402
from leaderboard.containers.results import engine_seconds  # noqa: E402
from leaderboard.containers.runner import (  # noqa: E402
    _host_config,
    _run_loaded,
    start_and_watch,
)

MODEL = "printf 'stay_id,prediction\\n30000001,0.5\\n' > /output/predictions.csv"


def model_archive(client, dest: Path) -> Path:
    busybox = Path(shutil.which("busybox") or "/bin/busybox").resolve()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("bin/busybox")
        data = busybox.read_bytes()
        info.size, info.mode = len(data), 0o555
        tf.addfile(info, io.BytesIO(data))
    client.api.import_image_from_data(
        buf.getvalue(), repository="medmod-bench/model", tag="latest",
        changes=[f'ENTRYPOINT ["/bin/busybox", "sh", "-c", "{MODEL}"]'],
    )  # fmt: skip
    with dest.open("wb") as fh:
        for chunk in client.api.get_image("medmod-bench/model:latest"):
            fh.write(chunk)
    client.images.remove("medmod-bench/model:latest", force=True)
    return dest


def _walk_size(root: Path) -> int:
    """The former size check: apparent sizes of everything under ``root``."""
    total, stack = 0, [root]
    while stack:
        with contextlib.suppress(OSError), os.scandir(stack.pop()) as it:
            for entry in it:
                st = entry.stat(follow_symlinks=False)
                total += max(st.st_size, st.st_blocks * 512)
                if stat.S_ISDIR(st.st_mode):
                    stack.append(Path(entry.path))
    return total


def run_bind_polled(client, tag, info, input_dir: Path, work: Path, limits) -> float:
    """One run the former way; returns its overhead in seconds."""
    started = time.monotonic()
    out = work / "output-bind"
    out.mkdir()
    out.chmod(0o777)
    container = client.api.create_container(
        image=tag, user=limits.run_user(), network_disabled=True,
        host_config=_host_config(client, info, input_dir, out, limits),
    )  # fmt: skip
    cid = container["Id"]
    exited, _ = start_and_watch(client, cid, _Dummy(), run_id="bench")
    while not exited.wait(limits.poll_interval):
        _walk_size(out)
    state = client.api.inspect_container(cid)["State"]
    client.api.logs(cid)
    _walk_size(out)
    client.api.remove_container(cid, force=True, v=True)
    shutil.copyfile(out / "predictions.csv", work / "predictions-bind.csv")
    shutil.rmtree(out)
    return time.monotonic() - started - (engine_seconds(state) or 0.0)


class _Dummy:
    status = message = None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    client = get_client()
    limits = DEFAULT_LIMITS.with_(cpus=1.0)
    with tempfile.TemporaryDirectory(prefix="bench-containers-") as tmp:
        root = Path(tmp)
        os.chmod(root, 0o755)
        info = inspect_image_archive(model_archive(client, root / "model.tar"))
        run_id = new_run_id()
        tag = load_image(client, info, run_id)
        input_dir = root / "input"
        input_dir.mkdir()
        (input_dir / "units.csv").write_text("stay_id\n30000001\n")
        times: dict[str, list[float]] = {"tmpfs_volume": [], "bind_polled": []}
        try:
            for i in range(args.runs):
                work = root / f"work{i}"
                work.mkdir()
                r = _run_loaded(client, tag, info, task="in-hospital-mortality",
                                scenario=f"s{i}", input_dir=input_dir, work_dir=work,
                                limits=limits, run_id=run_id)  # fmt: skip
                if not r.ok:
                    raise SystemExit(f"the run failed: {r.status} {r.message}")
                times["tmpfs_volume"].append(r.overhead or 0.0)
                times["bind_polled"].append(run_bind_polled(client, tag, info, input_dir,
                                                            work, limits))  # fmt: skip
        finally:
            with contextlib.suppress(docker.errors.APIError):
                remove_image(client, tag)
    report = {
        way: {"median_s": round(statistics.median(t), 3), "min_s": round(min(t), 3),
              "max_s": round(max(t), 3), "runs": len(t)}
        for way, t in times.items()
    }  # fmt: skip
    print(json.dumps(report, indent=2))  # noqa: T201


if __name__ == "__main__":
    main()
