"""A prediction file over the site's upload limit, sent with the client against the real
server (served the demo's way on a loopback port): ``medmod submit`` says in one line what
is wrong and what to do, exits with 1 and prints no traceback; the server's own 413, met by
an upload that goes out anyway, becomes the same kind of line; nothing is entered. A 413
page from a server in front of the site (a smaller body limit there) is one clear line too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.conf import settings

from leaderboard.board.models import Submission
from tests.leaderboard.conftest import user  # noqa: F401 (a fixture)
from tests.leaderboard.test_edge_limits import server, token  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parents[2]
MiB = 1024**2

pytestmark = pytest.mark.django_db(transaction=True)


def _oversize(tmp_path: Path) -> Path:
    """A prediction file 1 MiB over the limit (sparse on disk: its bytes read as zeros
    after a valid header)."""
    path = tmp_path / "predictions.csv"
    with path.open("wb") as fh:
        fh.write(b"stay_id,prediction\n")
        fh.truncate(settings.MAX_UPLOAD_BYTES + MiB)
    return path


def _medmod(tmp_path: Path, port: int, key: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDMOD_")}
    env.update(
        PYTHONPATH=str(ROOT / "client"),
        HOME=str(tmp_path / "home"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        MEDMOD_HOST=f"http://127.0.0.1:{port}",
        MEDMOD_TOKEN=key,
    )
    return subprocess.run(
        [sys.executable, "-m", "medmod_client", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _one_line(done: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_medmod_submit_of_a_file_over_the_limit_says_so_in_one_line_and_exits_1(
    server,  # noqa: F811
    token,  # noqa: F811
    tmp_path,
):
    port, proc = server
    path = _oversize(tmp_path)
    done = _medmod(tmp_path, port, token, "submit", str(path), "--task",
                   "in-hospital-mortality", "--method-name", "Too big", "--modalities", "ehr",
                   "--training-data", "The benchmark's train split only.")  # fmt: skip
    line = _one_line(done)
    assert line.startswith("medmod: error"), line
    sys.path.insert(0, str(ROOT / "client"))
    from medmod_client.output import size

    for text in (str(path), size(path.stat().st_size), size(settings.MAX_UPLOAD_BYTES)):
        assert text in line, (text, line)
    assert "gzip" in line, line
    assert not Submission.objects.exists()


def test_the_servers_413_to_an_upload_that_goes_out_anyway_is_one_clear_line(
    server,  # noqa: F811
    token,  # noqa: F811
    tmp_path,
):
    """The client's upload itself (no check of the limit first, as against a server that
    states none): the server answers 413 before reading the body and the client reports
    its message, not a cut connection."""
    sys.path.insert(0, str(ROOT / "client"))
    from medmod_client.api import ApiError, Client, describe

    port, proc = server
    client = Client(f"http://127.0.0.1:{port}", token)
    with pytest.raises(ApiError) as caught:
        client.submit(_oversize(tmp_path), [("task", "in-hospital-mortality")])
    err = caught.value
    assert err.status == 413 and err.code == "file_too_large", (err.status, err.code)
    line = describe(err)
    assert "\n" not in line and "over the server's limit" in line and "64 MiB" in line, line
    assert not Submission.objects.exists()


class _Proxy413(BaseHTTPRequestHandler):
    """A front server with a smaller body limit than the site's: it states the site's
    limits, and answers an upload with its own 413 page, unread."""

    def do_GET(self):  # noqa: N802 (the handler's name)
        body = json.dumps({"max_upload_bytes": 64 * MiB}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):  # noqa: N802
        body = b"<html><body><h1>413 Request Entity Too Large</h1></body></html>"
        self.send_response(413)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_413_page_from_a_server_in_front_of_the_site_is_one_clear_line(tmp_path):
    front = ThreadingHTTPServer(("127.0.0.1", 0), _Proxy413)
    thread = threading.Thread(target=front.serve_forever, daemon=True)
    thread.start()
    try:
        path = tmp_path / "predictions.csv"
        path.write_bytes(b"stay_id,prediction\n" + b"1,0.5\n" * 200_000)
        done = _medmod(tmp_path, front.server_address[1], "a-token", "submit", str(path),
                       "--task", "in-hospital-mortality", "--method-name", "Behind a proxy",
                       "--modalities", "ehr", "--training-data", "The train split.")  # fmt: skip
    finally:
        front.shutdown()
        front.server_close()
    line = _one_line(done)
    assert line.startswith("medmod: error (request_too_large)"), line
    assert "over the server's limit" in line and "HTTP 413" in line, line
