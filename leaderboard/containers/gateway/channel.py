"""A pair of byte streams to a model: lines out, lines in, every wait bounded by a deadline.

The same class serves a subprocess's pipes and a Unix socket (one file descriptor for both
directions). Nothing here raises for what the model does but :class:`Closed`,
:class:`Overdue` and :class:`TooLong`, which the driver turns into a documented reason.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import socket
import stat
import time
from pathlib import Path

_CHUNK = 1 << 20
_BUFFER = 4 << 20  # kernel buffer asked for toward the model: most steps fit in one write
_F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ (Linux; named in the fcntl module from 3.10)


class Closed(Exception):
    """The model closed its end (or exited)."""


class Overdue(Exception):
    """A deadline passed while waiting for the model."""


class TooLong(Exception):
    """The model sent a line longer than allowed."""


class Channel:
    """Line I/O over a readable and a writable file descriptor (non-blocking)."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.rfd, self.wfd = read_fd, write_fd
        for fd in {read_fd, write_fd}:
            os.set_blocking(fd, False)
        _enlarge(write_fd)
        self.buf = bytearray()
        self.received = 0

    def send(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.wfd, view[:_CHUNK])
            except BlockingIOError:
                n = 0
            except (BrokenPipeError, ConnectionResetError):
                raise Closed from None
            view = view[n:]
            if view and n == 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Overdue
                select.select([], [self.wfd], [], min(left, 1.0))

    def readline(self, deadline: float, max_bytes: int) -> bytes:
        """The next line (without its newline)."""
        start = 0
        while True:
            nl = self.buf.find(b"\n", start)
            if nl >= 0:
                line = bytes(self.buf[:nl])
                del self.buf[: nl + 1]
                return line
            if len(self.buf) > max_bytes:
                raise TooLong
            start = len(self.buf)
            left = deadline - time.monotonic()
            if left <= 0:
                raise Overdue
            ready, _, _ = select.select([self.rfd], [], [], min(left, 1.0))
            if not ready:
                continue
            try:
                chunk = os.read(self.rfd, _CHUNK)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                raise Closed from None
            if not chunk:
                raise Closed
            self.received += len(chunk)
            self.buf += chunk

    def close(self) -> None:
        for fd in {self.rfd, self.wfd}:
            with contextlib.suppress(OSError):
                os.close(fd)


def _enlarge(fd: int) -> None:
    """Ask for a larger kernel buffer toward the model (best effort)."""
    if stat.S_ISFIFO(os.fstat(fd).st_mode):
        for size in (_BUFFER, 1 << 20):
            try:
                fcntl.fcntl(fd, _F_SETPIPE_SZ, size)
                return
            except OSError:
                continue
    elif stat.S_ISSOCK(os.fstat(fd).st_mode):
        with contextlib.suppress(OSError):
            sock = socket.socket(fileno=os.dup(fd))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _BUFFER)
            sock.close()


class SocketListener:
    """A Unix socket a model connects to, e.g. in a directory mounted into its container.

    Paths longer than the kernel's limit for socket names (108 bytes) are bound through the
    directory's ``/proc/self/fd`` entry.
    """

    def __init__(self, path: Path, mode: int = 0o666, owner: tuple[int, int] | None = None):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        name = str(path)
        dir_fd = None
        if len(name.encode()) > 100:
            dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
            name = f"/proc/self/fd/{dir_fd}/{path.name}"
        try:
            self.sock.bind(name)
        finally:
            if dir_fd is not None:
                os.close(dir_fd)
        self.sock.listen(1)
        self.sock.setblocking(False)
        if owner is not None:
            os.chown(path, *owner)
        path.chmod(mode)

    def accept(self, deadline: float, alive: object = None) -> Channel:
        """Wait for one connection; ``alive()`` (if given) is asked every second and a
        False answer raises :class:`Closed` (the model exited without connecting)."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Overdue
            ready, _, _ = select.select([self.sock], [], [], min(left, 0.5))
            if ready:
                try:
                    conn, _ = self.sock.accept()
                except OSError as exc:
                    if exc.errno in (errno.EAGAIN, errno.ECONNABORTED):
                        continue
                    raise
                fd = conn.detach()
                return Channel(fd, fd)
            if callable(alive) and not alive():
                raise Closed

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        with contextlib.suppress(OSError):
            self.path.unlink()
