"""Oversize, lying and stalled request bodies against the real server, as the demo serves it
(gunicorn with leaderboard/gunicorn_config.py, the command of ``manage.py demo``), through raw
sockets: each is answered with a 413 (or a 408 for a stalled body) within a second, before
the body is read, with the platform's error shape and no traceback in the server's log; the
limit is the one of the track the address is for; real uploads still go through.

The time to each answer is printed (``pytest -s``)."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import tarfile
import time
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from rest_framework.authtoken.models import Token

from leaderboard.board.management.commands.demo import Command as DemoCommand
from leaderboard.board.models import Submission, Track
from tests.leaderboard import servers
from tests.leaderboard.conftest import ensure_tracks

REPO = Path(__file__).resolve().parents[2]
BODY_TIMEOUT = 2.0  # REQUEST_BODY_TIMEOUT of the server under test
GiB, MiB = 1024**3, 1024**2
BOUNDARY = b"edge-limits-boundary"
MULTIPART = b"multipart/form-data; boundary=" + BOUNDARY
FILE_PART = (
    b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="file"; filename="p.csv"\r\n'
    b"Content-Type: text/csv\r\n\r\nstay_id,prediction\r\n"
)


# A raw HTTP client ------------------------------------------------------------------------
@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float  # from the first byte sent to the whole answer
    sent: int  # body bytes the client managed to send

    def json(self) -> dict:
        return json.loads(self.body)


def _forever(piece: bytes) -> Iterator[bytes]:
    while True:
        yield piece


def exchange(
    port: int, method: str, path: str, headers: dict[str, str],
    body: Iterable[bytes] = (), *, timeout: float = 30,
) -> Answer:  # fmt: skip
    """Send a request's head, then its body pieces as fast as the server takes them, while
    reading; returns as soon as one whole answer has arrived."""
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setblocking(False)
    pieces = iter(body)
    pending: bytes | None = head.encode()
    sent = -len(pending)
    received = b""
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < timeout:
            if pending is None and pieces is not None:
                pending = next(pieces, None)
                if pending is None:
                    pieces = None
            if pending:
                try:
                    n = sock.send(pending)
                    sent += n
                    pending = pending[n:] or None
                except BlockingIOError:
                    pass
                except OSError:  # the server closed its side after answering
                    pending, pieces = None, None
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                if not pending and pieces is None:  # all sent (or given up): wait
                    time.sleep(0.002)
                continue
            except OSError:
                break
            if not data:
                break
            received += data
            answer = _parse(received)
            if answer is not None:
                status, headers_, content = answer
                return Answer(status, headers_, content, time.monotonic() - t0, max(sent, 0))
    finally:
        sock.close()
    raise AssertionError(
        f"no whole answer in {time.monotonic() - t0:.1f} s to {method} {path}: {received[:300]!r}"
    )


def _parse(data: bytes) -> tuple[int, dict[str, str], bytes] | None:
    if b"\r\n\r\n" not in data:
        return None
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:])}
    length = int(headers.get("content-length", "-1"))
    if length < 0 or len(rest) < length:
        return None
    return int(lines[0].split()[1]), headers, rest[:length]


def chunked(piece: bytes) -> Iterator[bytes]:
    """A chunked body that never ends."""
    return _forever(b"%x\r\n" % len(piece) + piece + b"\r\n")


# The server -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker):
    """The site served the demo's way (``DemoCommand.web_command``), on the test database."""
    port = servers.free_port()
    with django_db_blocker.unblock():
        env = servers.app_env(REQUEST_BODY_TIMEOUT=str(BODY_TIMEOUT), WEB_WORKERS="2",
                              WEB_THREADS="4")  # fmt: skip
    proc = servers.Process(DemoCommand.web_command(f"127.0.0.1:{port}"), env=env, name="edge")
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/limits/", timeout=5):
                break
        except OSError:
            if time.monotonic() > deadline or proc.proc.poll() is not None:
                proc.stop()
                raise RuntimeError(f"the server did not start:\n{proc.log()[-3000:]}") from None
            time.sleep(0.2)
    yield port, proc
    proc.stop()


@pytest.fixture
def token(user) -> str:
    return Token.objects.get_or_create(user=user)[0].key


def no_traceback(proc: servers.Process) -> None:
    log = proc.log()
    assert "Traceback" not in log, log[-4000:]
    assert " 500 " not in log and "[ERROR]" not in log and "[CRITICAL]" not in log, log[-4000:]


def report(case: str, answer: Answer) -> None:
    print(f"\n{case}: HTTP {answer.status} in {answer.seconds * 1000:.1f} ms, "
          f"{answer.sent / MiB:.2f} MiB of body sent")  # fmt: skip


# Declared too large: refused at once, unread ----------------------------------------------
DECLARED = [
    ("a multipart body of 3 GiB to the prediction-file address", "/api/submissions/",
     MULTIPART, 3 * GiB, "file_too_large", ["64 MiB", "/api/submissions/images/"]),
    ("a prediction-file upload declared as 2 GiB", "/api/submissions/", MULTIPART, 2 * GiB,
     "file_too_large", ["64 MiB"]),
    ("a JSON body of 200 MiB", "/api/submissions/", b"application/json", 200 * MiB,
     "request_too_large", ["1 MiB", "multipart/form-data"]),
    ("a multipart body of 3 GiB to the image address", "/api/submissions/images/", MULTIPART,
     3 * GiB, "file_too_large", ["2048 MiB", "image archive"]),
]  # fmt: skip


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("case", "path", "ctype", "size", "code", "says"), DECLARED)
def test_a_body_declared_over_its_track_limit_gets_a_413_at_once_unread(
    server, token, case, path, ctype, size, code, says
):
    port, proc = server
    headers = {"Authorization": f"Token {token}", "Content-Type": ctype.decode(),
               "Content-Length": str(size)}  # fmt: skip
    answer = exchange(port, "POST", path, headers)
    report(case, answer)
    assert answer.status == 413, answer.body
    assert answer.json()["code"] == code
    for text in says:
        assert text in answer.json()["detail"]
    assert answer.seconds < 1
    no_traceback(proc)


@pytest.mark.django_db(transaction=True)
def test_the_submit_page_answers_an_oversize_body_with_a_page_that_says_where_to_go(server):
    port, proc = server
    headers = {"Content-Type": MULTIPART.decode(), "Content-Length": str(3 * GiB)}
    answer = exchange(port, "POST", "/submit/", headers)
    report("the submit form, 3 GiB declared", answer)
    assert answer.status == 413 and answer.seconds < 1
    page = answer.body.decode()
    assert answer.headers["content-type"].startswith("text/html")
    assert "MedMod leaderboard" in page and 'class="error-box"' in page  # the site's page
    assert "larger than the 64 MiB limit" in page and "/submit/?track=container" in page
    # The container track's form takes up to the image limit, and no more.
    answer = exchange(port, "POST", "/submit/?track=container", headers)
    assert answer.status == 413 and "2048 MiB" in answer.body.decode()
    no_traceback(proc)


# Bodies whose length is not declared, or is a lie -----------------------------------------
@pytest.mark.django_db(transaction=True)
def test_a_chunked_body_without_length_is_cut_at_the_limit_with_a_413(server, token):
    port, proc = server
    headers = {"Authorization": f"Token {token}", "Content-Type": MULTIPART.decode(),
               "Transfer-Encoding": "chunked"}  # fmt: skip
    answer = exchange(port, "POST", "/api/submissions/", headers, chunked(b"1,0.5\n" * 40000))
    report("a chunked body without length, never ending", answer)
    assert answer.status == 413, answer.body
    assert answer.json()["code"] == "file_too_large"
    assert "more than" in answer.json()["detail"]
    # Read up to the limit (64 MiB and 1 MiB of fields), not further: what the client got
    # into the connection past that is bounded by the sockets' buffers.
    assert 65 * MiB <= answer.sent < 65 * MiB + 16 * MiB
    assert answer.seconds < 1
    no_traceback(proc)


@pytest.mark.django_db(transaction=True)
def test_bytes_past_a_lying_content_length_are_never_read_as_the_body(server, token):
    """Declared 1 KiB, then 100 MiB sent: the server reads the 1 KiB it was told of, answers
    for it (a multipart body without its end: a 400 that says so), and takes nothing more."""
    port, proc = server
    headers = {"Authorization": f"Token {token}", "Content-Type": MULTIPART.decode(),
               "Content-Length": "1024"}  # fmt: skip
    body = [FILE_PART, *([b"1,0.5\n" * 10000] * 1700)]  # the file part streams on: 100 MiB
    answer = exchange(port, "POST", "/api/submissions/", headers, body)
    report("a lying Content-Length (1 KiB declared, 100 MiB sent)", answer)
    assert answer.status == 400, answer.body
    assert answer.json()["code"] == "incomplete_body"
    assert "Content-Length is shorter than what was sent" in answer.json()["detail"]
    assert answer.sent < 16 * MiB  # the rest was never taken in
    assert answer.seconds < 1
    assert not Submission.objects.exists()
    no_traceback(proc)


# A stalled body ---------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_a_stalled_body_times_out_with_a_408_and_frees_its_thread(server, token):
    """An upload that sends a part of its body, then nothing, is answered 408 after
    REQUEST_BODY_TIMEOUT. Eight at once (as many as the server's two workers have threads):
    each is answered 408 in turn, and then the server answers a plain request at once."""
    port, proc = server
    headers = {"Authorization": f"Token {token}", "Content-Type": MULTIPART.decode(),
               "Content-Length": str(10 * MiB)}  # fmt: skip
    t0 = time.monotonic()
    answer = exchange(port, "POST", "/api/submissions/", headers, [FILE_PART + b"1,0.5\n" * 1000])
    report("a stalled body", answer)
    assert answer.status == 408, answer.body
    assert answer.json()["code"] == "request_timeout"
    assert BODY_TIMEOUT <= answer.seconds < BODY_TIMEOUT + 1

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        stalls = [pool.submit(exchange, port, "POST", "/api/submissions/", headers, [FILE_PART])
                  for _ in range(8)]  # fmt: skip
        time.sleep(0.5)
        t0 = time.monotonic()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/limits/", timeout=10) as r:
            assert r.status == 200
        during = time.monotonic() - t0
        answers = [s.result() for s in stalls]
    assert [a.status for a in answers] == [408] * 8
    # A connection that found every thread of its worker stalled waits for one to be freed.
    assert max(a.seconds for a in answers) < 2 * BODY_TIMEOUT + 1.5
    t0 = time.monotonic()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/limits/", timeout=10) as r:
        assert r.status == 200
    after = time.monotonic() - t0
    print(
        f"\na request while 8 uploads stall: {during * 1000:.0f} ms; after: {after * 1000:.0f} ms"
    )
    assert after < 1
    no_traceback(proc)


# Real uploads still go through ------------------------------------------------------------
def _multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(b"--" + BOUNDARY + f'\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())  # fmt: skip
    for name, (filename, data) in files.items():
        out.write(b"--" + BOUNDARY + f'\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode())  # fmt: skip
        out.write(data + b"\r\n")
    out.write(b"--" + BOUNDARY + b"--\r\n")
    return out.getvalue()


@pytest.fixture(scope="module")
def small_image(tmp_path_factory) -> bytes:
    """A real `docker save` archive of a tiny image (a static busybox), built on the engine."""
    from leaderboard.containers import get_client
    from tests.leaderboard.test_container_track import _saved_image

    proc = subprocess.run(["bash", str(REPO / "scripts" / "docker-engine.sh")],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    if proc.returncode != 0:
        pytest.fail(f"the Docker engine could not be started:\n{proc.stderr}", pytrace=False)
    path = _saved_image(
        get_client(), tmp_path_factory.mktemp("image"), "edge",
        'FROM scratch\nCOPY busybox /bin/busybox\nENTRYPOINT ["/bin/busybox", "true"]\n',
    )  # fmt: skip
    with tarfile.open(path) as tar:
        assert "manifest.json" in tar.getnames()
    return path.read_bytes()


@pytest.mark.django_db(transaction=True)
def test_a_small_image_and_a_prediction_file_still_go_through_their_addresses(
    server, token, benchmark, sample_ihm_csv, small_image
):
    from django.apps import apps

    ensure_tracks()
    module = __import__("leaderboard.board.migrations.0003_container_track",
                        fromlist=["open_container_track"])  # fmt: skip
    module.open_container_track(apps, None)
    port, proc = server
    fields = {"task": "in-hospital-mortality", "modalities": "ehr,cxr",
              "training_data": "the benchmark's train split only"}  # fmt: skip
    auth = {"Authorization": f"Token {token}", "Content-Type": MULTIPART.decode()}

    body = _multipart({**fields, "method_name": "Tiny image"}, {"image": ("m.tar", small_image)})
    answer = exchange(port, "POST", "/api/submissions/images/",
                      {**auth, "Content-Length": str(len(body))}, [body])  # fmt: skip
    report(f"an image of {len(small_image) / MiB:.1f} MiB to /api/submissions/images/", answer)
    assert answer.status == 201, answer.body
    assert answer.json()["track"] == Track.CONTAINER

    body = _multipart({**fields, "method_name": "A file", "modalities": "ehr"},
                      {"file": ("p.csv", sample_ihm_csv)})  # fmt: skip
    answer = exchange(port, "POST", "/api/submissions/",
                      {**auth, "Content-Length": str(len(body))}, [body])  # fmt: skip
    assert answer.status == 201, answer.body
    assert answer.json()["track"] == Track.PREDICTION_FILE

    # The same file without a length (chunked) is taken too.
    body = _multipart({**fields, "method_name": "Chunked", "modalities": "ehr"},
                      {"file": ("q.csv", sample_ihm_csv + b"\n")})  # fmt: skip
    answer = exchange(port, "POST", "/api/submissions/",
                      {**auth, "Transfer-Encoding": "chunked"},
                      [b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"])  # fmt: skip
    assert answer.status in (201, 409), answer.body  # 409: the same predictions as above
    assert Submission.objects.count() >= 2
    no_traceback(proc)


# The same limits in the application, without the server (Django's test client) ------------
@pytest.mark.django_db
@override_settings(MAX_UPLOAD_BYTES=1000, CONTAINER_MAX_UPLOAD_BYTES=50_000)
def test_the_limit_is_the_one_of_the_address_track(api, benchmark):
    big = SimpleUploadedFile("m.tar", b"x" * 40_000)
    r = api.post("/api/submissions/", {"task": "in-hospital-mortality", "track": "container",
                                       "image": big}, format="multipart")  # fmt: skip
    assert r.status_code == 400
    message = r.json()["errors"]["image"][0]
    assert "larger than the 1000 bytes limit" in message and "/api/submissions/images/" in message
    big.seek(0)
    r = api.post("/api/submissions/images/", {"task": "in-hospital-mortality", "image": big},
                 format="multipart")  # fmt: skip
    # Past the size check: the archive itself is what is wrong now.
    assert r.status_code == 400 and "limit" not in json.dumps(r.json().get("errors", {}))


@pytest.mark.django_db
def test_the_image_address_takes_container_entries_only(api, benchmark):
    r = api.post("/api/submissions/images/", {"task": "in-hospital-mortality",
                 "track": "prediction-file"}, format="multipart")  # fmt: skip
    assert r.status_code == 400
    assert "a prediction file goes to POST /api/submissions/" in r.json()["errors"]["track"][0]
    r = api.post("/api/submissions/images/", {"task": "in-hospital-mortality"}, format="json")
    assert r.status_code == 415


@pytest.mark.django_db
def test_the_submit_page_of_the_container_track_posts_back_to_its_own_address(
    client, user, benchmark
):
    """``/submit/?track=container`` opens on the container track and its form posts to the
    page's own address (no ``action``), the one with the image limit."""
    client.force_login(user)
    r = client.get("/submit/?track=container")
    assert r.status_code == 200
    assert r.context["form"].initial["track"] == Track.CONTAINER
    form = r.content.decode().split('id="submit-form"', 1)[0].rsplit("<form", 1)[1]
    assert "action=" not in form
