"""The embedded default runs with no server at all: SQLite, local files and a Celery worker
on kombu's filesystem transport, each a real process, driven over HTTP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.leaderboard.conftest import stop_group, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.worker]

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _multipart(fields: dict[str, str], file_field: str, filename: str, content: bytes):
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{filename}"\r\n'
        f"Content-Type: text/csv\r\n\r\n".encode()
        + content
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _request(url: str, *, data: bytes | None = None, headers: dict | None = None):
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, ConnectionError):
        return 0, b""


def _stop(proc: subprocess.Popen) -> None:
    stop_group(proc, timeout=20)


def test_the_embedded_default_needs_no_server(tmp_path, demo_benchmark_dir, sample_ihm_csv):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DJANGO", "DATABASE_URL", "SECRET_KEY", "CELERY", "AWS_", "DEBUG", "VAR_DIR", "MEDIA_ROOT"))}  # fmt: skip
    env["VAR_DIR"] = str(tmp_path / "var")
    out = tmp_path / "demo"
    out.mkdir()
    (out / "benchmark").symlink_to(demo_benchmark_dir)  # skip the 40 s generation
    setup = subprocess.run(
        [sys.executable, "manage.py", "demo", "--no-serve", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert setup.returncode == 0, setup.stderr[-3000:]
    assert "sample entry scored" in setup.stdout and "auroc" in setup.stdout
    assert (tmp_path / "var" / "leaderboard.sqlite3").is_file()

    port = _free_port()
    logs = tmp_path / "logs"
    logs.mkdir()
    from leaderboard.board.management.commands.demo import Command, worker_command

    with open(logs / "server.log", "w") as server_log, open(logs / "worker.log", "w") as worker_log:
        server = subprocess.Popen(
            Command.web_command(f"127.0.0.1:{port}"),  # gunicorn, as `manage.py demo` serves
            cwd=ROOT, env=env, stdout=server_log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        worker = subprocess.Popen(
            worker_command(beat=False), cwd=ROOT, env=env,
            stdout=worker_log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        _drive(f"http://127.0.0.1:{port}", server, worker, logs, sample_ihm_csv)


def _drive(base, server, worker, logs, sample_ihm_csv) -> None:
    try:
        wait_for(lambda: _request(base + "/api/limits/")[0] == 200 if server.poll() is None else True,
                 timeout=60, what="the web server")  # fmt: skip
        assert server.poll() is None, (logs / "server.log").read_text()[-2000:]
        status, body = _request(base + "/api/auth/token/",
                                data=json.dumps({"username": "demo", "password": "demo-password"}).encode(),
                                headers={"Content-Type": "application/json"})  # fmt: skip
        assert status == 200, body
        token = json.loads(body)["token"]
        content = sample_ihm_csv.replace(b",0.0", b",0.1")  # a different file from the sample
        data, ctype = _multipart(
            {"task": "in-hospital-mortality", "method_name": "Shifted LR", "modalities": "ehr",
             "training_data": "the benchmark's train split only"},
            "file", "shifted.csv", content,
        )  # fmt: skip
        status, body = _request(base + "/api/submissions/", data=data,
                                headers={"Content-Type": ctype, "Authorization": f"Token {token}"})  # fmt: skip
        assert status == 201, body
        pk = json.loads(body)["id"]

        def published():
            code, raw = _request(
                base + f"/api/submissions/{pk}/", headers={"Authorization": f"Token {token}"}
            )
            return (
                code == 200
                and json.loads(raw)["status"] in ("published", "failed")
                and json.loads(raw)
            )

        final = wait_for(
            published, timeout=90, interval=0.5, what="scoring by the filesystem-broker worker"
        )
        assert final["status"] == "published", final["failure_reason"]
        status, body = _request(base + "/api/tasks/in-hospital-mortality/leaderboard/")
        rows = json.loads(body)["rows"]
        assert {r["method_name"] for r in rows} >= {
            "Shifted LR",
            "Logistic regression on 48-h EHR summaries",
        }
        status, page = _request(base + "/tasks/in-hospital-mortality/")
        assert status == 200 and b"Shifted LR" in page
        status, js = _request(base + "/static/vendor/plotly.min.js")
        assert status == 200 and len(js) > 1_000_000
    finally:
        _stop(server)
        _stop(worker)


def test_the_demo_trains_its_baselines_on_its_own_worker_and_reuses_them(tmp_path):
    """`bin/demo --no-serve` (manage.py demo --train-baselines --no-serve): the jobs are
    done by a worker process on the baselines queue and the command waits for them; the next
    run finds them done and starts no worker."""
    import sqlite3

    from benchmark_data import synth

    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DJANGO", "DATABASE_URL", "SECRET_KEY", "CELERY", "AWS_", "DEBUG", "VAR_DIR", "MEDIA_ROOT"))}  # fmt: skip
    env["VAR_DIR"] = str(tmp_path / "var")
    out = tmp_path / "demo"
    synth.generate(out / "benchmark", scale="tiny", seed=3)
    cmd = [sys.executable, "manage.py", "demo", "--no-serve", "--out", str(out),
           "--train-baselines", "--baseline-tasks", "in-hospital-mortality",
           "--baseline-models", "ehr"]  # fmt: skip
    first = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert (
        "its reference baselines: 0 of 1 jobs done, the rest trained by the worker" in first.stdout
    )
    assert "baselines worker started" in first.stdout
    assert "reference baselines: 1 of 1 done" in first.stdout
    db = sqlite3.connect(tmp_path / "var" / "leaderboard.sqlite3")
    ((status, message),) = db.execute("select status, message from board_baselinejob").fetchall()
    assert status == "done" and message.startswith("in-hospital-mortality EHR only (LSTM): auroc")
    ((streamed, state),) = db.execute(
        "select streamed, status from board_submission where is_reference"
    ).fetchall()
    assert streamed and state == "published"
    assert (out / "baselines" / "stream" / "in-hospital-mortality" / "ehr.csv").is_file()

    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "its reference baselines: 1 of 1 jobs done" in again.stdout
    assert "baselines worker started" not in again.stdout
