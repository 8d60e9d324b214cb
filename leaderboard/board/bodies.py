"""The request body at the WSGI edge: read whole, within its limit and its time, before
Django sees any of it.

:class:`BodyGuard` wraps the site's WSGI application (``leaderboard.wsgi``). For a request
with a body, it reads the body into a spooled temporary file (memory, then disk), as a
buffering front server would:

- at most the limit of the request's track (:func:`leaderboard.board.uploads.body_limit`),
  also when no ``Content-Length`` is given (``Transfer-Encoding: chunked``): reading stops at
  the limit, and the request goes on with an empty body, marked as refused, so that
  :class:`~leaderboard.board.uploads.RequestSizeLimitMiddleware` answers 413;
- never past its ``Content-Length``: bytes sent beyond it are not this request's body (the
  server takes them as the next request, and refuses that); a multipart body that does not
  end with its closing boundary (cut short by a lying length, or by a lost connection) is
  refused whole (a 400 ``incomplete_body``), not parsed as a form with fields missing;
- with each read waiting at most ``REQUEST_BODY_TIMEOUT`` seconds under gunicorn: a body that
  stops arriving is given up, marked as timed out (the middleware answers 408), and the thread
  is free again.

A body declared over its limit (``Content-Length``) is not read at all: the request goes on
with an empty body, marked as refused. Django then reads the body from the local file, so a slow or stalled client
can never leave a request half-parsed inside a view.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import socket
import tempfile

from django.conf import settings

from leaderboard.board.uploads import REFUSAL_KEY, body_limit

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
# Where the closing boundary of a multipart body is looked for: its last bytes (room for an
# epilogue, which clients do not send).
MULTIPART_TAIL = 4096


class _BodyTimeout(Exception):
    def __init__(self, received: int):
        self.received = received


def _declared_length(environ) -> int | None:
    try:
        return int(environ.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None


def _spool(stream, *, declared: int | None, max_body: int, sock, timeout: float):
    """The body in a temporary file and its size; stops after ``max_body + 1`` bytes."""
    out = tempfile.SpooledTemporaryFile(  # noqa: SIM115 (handed on, closed by the caller)
        max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE, dir=settings.FILE_UPLOAD_TEMP_DIR
    )
    want = max_body + 1 if declared is None else declared
    size = 0
    if sock is not None:
        sock.settimeout(timeout)
    try:
        while size < want:
            try:
                data = stream.read(min(CHUNK, want - size))
            except TimeoutError:  # socket.timeout too
                raise _BodyTimeout(size) from None
            if not data:
                break
            out.write(data)
            size += len(data)
    except BaseException:
        out.close()
        raise
    finally:
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.settimeout(None)
    out.seek(0)
    return out, size


def _multipart_complete(body, size: int, content_type: str) -> bool:
    """Whether a multipart body ends with its closing boundary (``--boundary--``), as every
    whole one does: one cut short (a ``Content-Length`` shorter than what was sent, or a
    connection lost) would otherwise be parsed as a form with fields missing."""
    if not content_type.startswith("multipart/form-data"):
        return True
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if match is None:
        return True  # Django's parser refuses it with its own message
    body.seek(max(0, size - MULTIPART_TAIL))
    tail = body.read()
    body.seek(0)
    return b"--" + match.group(1).encode("latin-1") + b"--" in tail


def _stop_reading(sock) -> None:
    """Nothing more is read from this connection: the server closes it after the answer
    instead of draining a body that may never end."""
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RD)


class BodyGuard:
    """WSGI middleware: bounded, timed reading of request bodies (see the module's text)."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        declared = _declared_length(environ)
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if not declared and not chunked:
            return self.app(environ, start_response)
        limit = body_limit(
            path=environ.get("PATH_INFO", ""),
            query=environ.get("QUERY_STRING", ""),
            content_type=environ.get("CONTENT_TYPE", ""),
        )
        sock = environ.get("gunicorn.socket")
        if declared is not None and declared > limit.max_body:
            # Refused from its Content-Length, unread: nothing in Django can read it either.
            return self._refused(environ, start_response, ("declared", declared))
        try:
            body, size = _spool(
                environ["wsgi.input"], declared=declared, max_body=limit.max_body,
                sock=sock, timeout=settings.REQUEST_BODY_TIMEOUT,
            )  # fmt: skip
        except _BodyTimeout as exc:
            log.warning(
                "%s %s: the body stopped arriving after %d bytes; given up after %g s",
                environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"), exc.received,
                settings.REQUEST_BODY_TIMEOUT,
            )  # fmt: skip
            _stop_reading(sock)
            return self._refused(environ, start_response, ("timeout", exc.received))
        if size > limit.max_body:
            body.close()
            log.warning(
                "%s %s: a body of unknown length passed the %d bytes limit; refused",
                environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"), limit.max_body,
            )  # fmt: skip
            _stop_reading(sock)
            return self._refused(environ, start_response, ("too_large", size - 1))
        if (declared is not None and size < declared) or not _multipart_complete(
            body, size, environ.get("CONTENT_TYPE", "")
        ):
            body.close()
            return self._refused(environ, start_response, ("incomplete", size))
        environ["wsgi.input"] = body
        environ["CONTENT_LENGTH"] = str(size)
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        try:
            return self.app(environ, start_response)
        finally:
            body.close()

    def _refused(self, environ, start_response, refusal):
        environ[REFUSAL_KEY] = refusal
        environ["wsgi.input"] = io.BytesIO(b"")
        environ["CONTENT_LENGTH"] = "0"
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        return self.app(environ, start_response)
