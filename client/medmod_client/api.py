"""The REST API of the leaderboard (docs/api.md), as the client calls it.

Every refusal of the server becomes an :class:`ApiError` holding the error shape the API
answers with (``detail``, ``code``, ``errors``); a server that cannot be reached, or that
answers with something other than the API's JSON, becomes an :class:`Unreachable`. Neither
carries a traceback to the user.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

import requests

from medmod_client import __version__

CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 120.0
USER_AGENT = f"medmod-client/{__version__}"

Progress = Callable[[int, int], None]


class ClientError(Exception):
    """A failure the client reports in one line; ``exit_code`` is what the command returns."""

    exit_code = 1


class Unreachable(ClientError):
    """No answer from the server, or not one of the API's."""


class ApiError(ClientError):
    """The server refused the request (a 4xx or 5xx in the API's error shape)."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        errors: dict[str, Any] | None = None,
        retry_after: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors or {}
        self.retry_after = retry_after


def _field_messages(errors: dict[str, Any]) -> list[str]:
    out = []
    for field, value in errors.items():
        msgs = value if isinstance(value, list) else [value]
        text = "; ".join(str(m) for m in msgs)
        out.append(text if field in ("non_field_errors", "detail") else f"{field}: {text}")
    return out


def describe(exc: ApiError) -> str:
    """One line for the user: what the server said and, for the codes a participant meets,
    what to do about it."""
    fields = _field_messages(exc.errors)
    text = "; ".join(fields) if len(fields) > 1 else exc.detail
    wait = f" (retry after {exc.retry_after} s)" if exc.retry_after else ""
    hints = {
        "quota_exceeded": f"the daily submission limit is reached{wait}; limits reset at "
        "00:00 UTC (GET /api/limits/)",
        "throttled": f"too many requests{wait}",
        "login_locked": f"too many wrong passwords{wait}",
        "duplicate_file": "this exact file was entered already; `medmod status` lists your entries",
        "invalid_file": "the server refused the file",
        "file_too_large": "the upload is over the server's limit",
        "request_too_large": "the request is over the server's limit",
        "not_authenticated": "not logged in: run `medmod login`",
        "authentication_failed": "the server refused the token: run `medmod login` again",
        "email_not_confirmed": "confirm your e-mail address first",
        "track_closed": "the track takes no entries now",
        "not_published": "the organizers have not published these files yet",
    }
    hint = hints.get(exc.code)
    return f"{hint}: {text}" if hint else text


class Client:
    """The API at ``host`` (``http(s)://name[:port]``), with a token or anonymously."""

    def __init__(self, host: str, token: str | None = None) -> None:
        self.host = host.rstrip("/")
        self.token = token
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.headers["Accept"] = "application/json"

    def url(self, path: str) -> str:
        return path if "://" in path else f"{self.host}/api/{path.lstrip('/')}"

    def request(
        self,
        method: str,
        path: str,
        *,
        auth: bool = True,
        timeout: float = READ_TIMEOUT,
        raw: bool = False,
        **kwargs: Any,
    ) -> Any:
        headers = dict(kwargs.pop("headers", None) or {})
        if auth and self.token:
            headers["Authorization"] = f"Token {self.token}"
        url = self.url(path)
        try:
            response = self.session.request(
                method, url, headers=headers, timeout=(CONNECT_TIMEOUT, timeout), **kwargs
            )
        except requests.exceptions.ConnectionError as exc:
            raise Unreachable(f"cannot reach {self.host}: {_reason(exc)}") from None
        except requests.exceptions.Timeout:
            raise Unreachable(f"{self.host} did not answer within {timeout:.0f} s") from None
        except requests.exceptions.RequestException as exc:
            raise Unreachable(f"request to {url} failed: {exc}") from None
        if response.status_code >= 400:
            raise _api_error(response, self.host)
        if raw:
            return response
        try:
            return response.json()
        except ValueError:
            raise Unreachable(
                f"{url} answered HTTP {response.status_code} with no JSON: is {self.host} the "
                "leaderboard?"
            ) from None

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)

    # Endpoints ---------------------------------------------------------------------------
    def login(self, username: str, password: str) -> str:
        body = self.post(
            "auth/token/", auth=False, data={"username": username, "password": password}
        )
        return str(body["token"])

    def limits(self) -> dict[str, Any]:
        return self.get("limits/", auth=False)

    def task_path(self, task: str, suite: str | None) -> str:
        return f"suites/{suite}/tasks/{task}/" if suite else f"tasks/{task}/"

    def submissions(self, *, task: str | None = None, active: bool = False) -> dict[str, Any]:
        params = {"task": task} if task else {}
        if active:
            params["active"] = "1"
        return self.get("submissions/", params=params)

    def submission(self, entry: str) -> dict[str, Any]:
        return self.get(f"submissions/{entry}/")

    def report(self, entry: str, evaluation: int | None = None) -> dict[str, Any]:
        params = {"evaluation": str(evaluation)} if evaluation is not None else {}
        return self.get(f"submissions/{entry}/report/", params=params)

    def board(self, task: str, suite: str | None, params: dict[str, str]) -> dict[str, Any]:
        return self.get(self.task_path(task, suite) + "leaderboard/", params=params)

    def board_csv(self, task: str, suite: str | None, params: dict[str, str]) -> str:
        response = self.get(
            self.task_path(task, suite) + "leaderboard/",
            params={**params, "format": "csv"},
            headers={"Accept": "text/csv"},
            raw=True,
        )
        return str(response.content.decode("utf-8"))

    def task_files(self, task: str, suite: str | None) -> dict[str, Any]:
        return self.get(self.task_path(task, suite) + "files/", auth=False)

    def submit(
        self,
        path: Path,
        fields: list[tuple[str, str]],
        *,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        body = MultipartFile(fields, "file", path, progress=progress)
        return self.post(
            "submissions/",
            data=body,
            headers={"Content-Type": body.content_type, "Content-Length": str(len(body))},
            timeout=READ_TIMEOUT,
        )

    def download(self, url: str, dest: Path, *, progress: Progress | None = None) -> str:
        """Save a file of the site's downloads; returns its sha256. No token is sent (the
        downloads are public, and may redirect to storage elsewhere)."""
        response = self.request("GET", url, auth=False, raw=True, stream=True)
        total = int(response.headers.get("Content-Length") or 0)
        digest = hashlib.sha256()
        done = 0
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        try:
            with tmp.open("wb") as fh:
                for chunk in response.iter_content(1 << 16):
                    fh.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
        except requests.exceptions.RequestException as exc:
            tmp.unlink(missing_ok=True)
            raise Unreachable(f"the download of {url} was cut: {_reason(exc)}") from None
        os.replace(tmp, dest)
        return digest.hexdigest()


def _reason(exc: Exception) -> str:
    """The innermost reason of a connection error, without urllib3's object names."""
    text = str(exc)
    found = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if found:
        return found.group(1).strip().lower()
    if "RemoteDisconnected" in text or "Connection aborted" in text:
        return "the connection was closed by the server"
    return text


def _api_error(response: requests.Response, host: str) -> ClientError:
    try:
        body = response.json()
    except ValueError:
        body = None
    retry_after = response.headers.get("Retry-After")
    if isinstance(body, dict) and ("detail" in body or "code" in body):
        return ApiError(
            response.status_code,
            str(body.get("code") or "error"),
            str(body.get("detail") or f"HTTP {response.status_code}"),
            body.get("errors") if isinstance(body.get("errors"), dict) else None,
            retry_after,
        )
    if response.status_code == 404:
        return ApiError(404, "not_found", f"{response.url}: not found")
    if response.status_code == 413:
        # A proxy in front of the site refuses an oversized body in its own words.
        return ApiError(413, "request_too_large", f"HTTP 413 from {host}")
    return Unreachable(
        f"{response.url} answered HTTP {response.status_code} without the API's error shape: "
        f"is {host} the leaderboard?"
    )


class MultipartFile:
    """A multipart/form-data body with one file, read from disk as it is sent, with its
    length known in advance (the server refuses an oversized upload from its
    ``Content-Length`` before reading it)."""

    def __init__(
        self,
        fields: Iterable[tuple[str, str]],
        file_field: str,
        path: Path,
        *,
        progress: Progress | None = None,
    ) -> None:
        boundary = uuid.uuid4().hex
        self.content_type = f"multipart/form-data; boundary={boundary}"
        head = b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{_quote(name)}"\r\n\r\n'.encode()
            + value.encode("utf-8")
            + b"\r\n"
            for name, value in fields
        )
        head += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; '
            f'filename="{_quote(path.name)}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        self._size = path.stat().st_size
        self._parts: list[bytes | Path] = [head, path, tail]
        self._length = len(head) + self._size + len(tail)
        self._progress = progress
        self._sent_file = 0
        self._current: BinaryIO | None = None
        self._buffer = b""

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        out = b""
        want = self._length if size is None or size < 0 else size
        while len(out) < want:
            if self._buffer:
                take = self._buffer[: want - len(out)]
                self._buffer = self._buffer[len(take) :]
                out += take
                continue
            if self._current is not None:
                chunk = self._current.read(want - len(out))
                if chunk:
                    self._sent_file += len(chunk)
                    if self._progress:
                        self._progress(self._sent_file, self._size)
                    out += chunk
                    continue
                self._current.close()
                self._current = None
            if not self._parts:
                break
            part = self._parts.pop(0)
            if isinstance(part, Path):
                self._current = part.open("rb")
            else:
                self._buffer = part
        return out


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\r", " ").replace("\n", " ")
