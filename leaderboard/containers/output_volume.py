"""A run's ``/output``: a filesystem of its own whose size and file count the kernel caps.

Each run gets a named volume of the engine's ``local`` driver mounted as a tmpfs of
``output_bytes`` (plus one page) with room for ``output_files`` (plus one) files and
directories, owned by the model's user with mode 0700. The kernel refuses any write past
the cap, and a file deleted while still open keeps its blocks until it is closed, so it
counts too. Its pages count toward the model's memory limit; nothing reaches the host's disk.

A tmpfs lives only while mounted, and the engine unmounts a volume when the last container
using it stops. So a small *holder* container mounts the volume read-only before the model
starts and outlives it: the prediction file is read out of the holder through the engine
(``docker cp``), and the holder's only process watches the filesystem (``statfs`` every
``poll_interval``) and exits with :data:`WATCH_FULL` as soon as it is full, which is how a
filled quota is seen even when the model deletes what it wrote. The holder's image is made
here from a statically linked busybox (Debian's ``busybox-static``) of the worker.

Nothing in the volume is ever on the worker's disk: the worker only reads one regular file
out of it, so whatever modes or owners the model gives its files, removing the volume
removes everything.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import tarfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import requests
from docker.types import LogConfig

from leaderboard.containers.limits import Limits
from leaderboard.containers.output import PREDICTIONS

MOUNT = "/output"
HOLDER_REPOSITORY = "medmod-holder"  # medmod-holder:<digest of its busybox>
BUSYBOX_ENV = "MEDMOD_BUSYBOX"  # path of the static busybox, if not `busybox` on PATH
WATCH_FULL = 3  # the holder's exit code when /output is full
_PAGE = 4096
_CHUNK = 1024 * 1024

ERR_NO_BUSYBOX = (
    "the runner makes the image that holds each run's /output from a statically linked "
    "busybox, and {detail}; install Debian's busybox-static or set {env} to one"
)
ERR_HOLDER = "the container holding /output stopped unexpectedly (exit code {code})"
ERR_STATFS = "the size of /output could not be read from its holder ({detail})"

# The holder's process: statfs of /output until blocks or inodes run out.
_WATCH = (
    "while :; do set -- $(/bin/busybox stat -f -c '%a %d' {mount}); "
    'if [ "$1" = 0 ] || [ "$2" = 0 ]; then echo "{mount} is full"; exit {full}; fi; '
    "/bin/busybox sleep {interval}; done"
)
# Go's os.FileMode type bits (dir, symlink, device, pipe, socket, char device, irregular),
# as the engine reports a path's mode.
_GO_MODE_TYPE = (1 << 31) | (1 << 27) | (1 << 26) | (1 << 25) | (1 << 24) | (1 << 21) | (1 << 19)


class OutputVolumeError(RuntimeError):
    """The engine or the worker's set-up failed; not the submission's fault."""


def _static_busybox() -> Path:
    named = os.environ.get(BUSYBOX_ENV)
    found = named or shutil.which("busybox")
    if not found:
        raise OutputVolumeError(
            ERR_NO_BUSYBOX.format(detail="none is on the PATH", env=BUSYBOX_ENV)
        )
    path = Path(found).resolve()
    try:
        static = _is_static_elf(path)
    except OSError as exc:
        raise OutputVolumeError(
            ERR_NO_BUSYBOX.format(detail=f"{path} cannot be read ({exc})", env=BUSYBOX_ENV)
        ) from None
    if not static:
        raise OutputVolumeError(
            ERR_NO_BUSYBOX.format(detail=f"{path} is not a static executable", env=BUSYBOX_ENV)
        )
    return path


def _is_static_elf(path: Path) -> bool:
    """Whether ``path`` is a 64-bit little-endian ELF executable with no interpreter."""
    with path.open("rb") as fh:
        head = fh.read(64)
        if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
            return False
        phoff = int.from_bytes(head[32:40], "little")
        phentsize = int.from_bytes(head[54:56], "little")
        phnum = int.from_bytes(head[56:58], "little")
        fh.seek(phoff)
        table = fh.read(phentsize * phnum)
    types = (int.from_bytes(table[i : i + 4], "little") for i in range(0, len(table), phentsize))
    return 3 not in types  # PT_INTERP: dynamically linked


def holder_image(client: docker.DockerClient) -> str:
    """The holder's image (made once per busybox, then kept): busybox alone, user 65534."""
    busybox = _static_busybox()
    data = busybox.read_bytes()
    tag = f"{HOLDER_REPOSITORY}:{hashlib.sha256(data).hexdigest()[:12]}"
    try:
        client.api.inspect_image(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode = len(data), 0o555
        tf.addfile(info, io.BytesIO(data))
    repository, _, name = tag.partition(":")
    try:
        client.api.import_image_from_data(
            buf.getvalue(),
            repository=repository,
            tag=name,
            changes=['ENTRYPOINT ["/bin/busybox"]', "USER 65534:65534"],
        )
    except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
        raise OutputVolumeError(f"the /output holder's image could not be made ({exc})") from None
    return tag


@dataclass
class OutputReport:
    """What a run left in its ``/output``, read once the model has stopped.

    ``full``: the filesystem ran out of space or files at some point while the model ran
    (files deleted while open included). ``predictions``: a copy of ``predictions.csv`` on
    the worker (a regular file), or None; ``not_a_file``: ``predictions.csv`` exists but is
    a link, directory or other non-regular file.
    """

    bytes: int = 0
    entries: int = 0
    full: bool = False
    predictions: Path | None = None
    not_a_file: bool = False


def _force_remove(remove: Callable[..., object], name: str, what: str) -> list[str]:
    """Call ``remove(name, force=True)``: the problem it met, as ``["what: error"]``, or
    ``[]`` (a container or volume already gone is no problem)."""
    try:
        remove(name, force=True)
    except docker.errors.NotFound:
        pass
    except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
        return [f"{what}: {exc}"]
    return []


class OutputVolume:
    """The ``/output`` filesystem of one run and its holder; use as a context manager:
    entering creates and mounts it, leaving removes the holder and the volume."""

    def __init__(
        self,
        client: docker.DockerClient,
        *,
        name: str,
        limits: Limits,
        user: str,
        labels: dict[str, str],
    ) -> None:
        self.client = client
        self.name = f"{name}-output"
        self.limits = limits
        self.user = user
        self.labels = labels
        self.holder_id: str | None = None
        self._created = False
        self._holder_exit: dict[str, object] = {}
        self._holder_done = threading.Event()

    # -- set-up and removal ---------------------------------------------------------------

    def __enter__(self) -> OutputVolume:
        try:
            self._open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _mount_options(self) -> str:
        uid, _, gid = self.user.partition(":")
        size = -(-self.limits.output_bytes // _PAGE) * _PAGE + _PAGE
        inodes = self.limits.output_files + 2  # the root, and one past the limit
        return f"size={size},nr_inodes={inodes},mode=0700,uid={uid},gid={gid},nosuid,nodev,noexec"

    def _open(self) -> None:
        tag = holder_image(self.client)
        api = self.client.api
        try:
            api.create_volume(
                name=self.name,
                driver="local",
                driver_opts={"type": "tmpfs", "device": "tmpfs", "o": self._mount_options()},
                labels=self.labels,
            )
            self._created = True
            script = _WATCH.format(mount=MOUNT, full=WATCH_FULL,
                                   interval=f"{self.limits.poll_interval:g}")  # fmt: skip
            holder = api.create_container(
                image=tag,
                command=["sh", "-c", script],
                name=f"{self.name}-holder",
                user=self.user,
                labels=self.labels,
                network_disabled=True,
                host_config=api.create_host_config(
                    binds={self.name: {"bind": MOUNT, "mode": "ro,nocopy"}},
                    network_mode="none",
                    read_only=True,
                    cap_drop=["ALL"],
                    security_opt=["no-new-privileges"],
                    mem_limit=32 * 1024 * 1024,
                    memswap_limit=32 * 1024 * 1024,
                    nano_cpus=int(0.2 * 1e9),
                    pids_limit=64,  # runc starting an exec in it counts its threads
                    log_config=LogConfig(type="json-file", config={"max-size": "64k"}),
                ),
            )
            self.holder_id = holder["Id"]
            api.start(self.holder_id)
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            raise OutputVolumeError(f"/output could not be set up ({exc})") from None
        threading.Thread(target=self._wait_holder, name=f"hold-{self.name}", daemon=True).start()

    def _wait_holder(self) -> None:
        try:
            self._holder_exit.update(self.client.api.wait(self.holder_id, timeout=None))
        except Exception as exc:  # noqa: BLE001 - reported when the output is read
            self._holder_exit["Error"] = str(exc)
        finally:
            self._holder_done.set()

    def close(self) -> list[str]:
        """Remove the holder and the volume (and so everything in it); returns what could
        not be removed (left to the reaper, which finds both by the run's label)."""
        problems = []
        api = self.client.api
        if self.holder_id is not None:
            problems += _force_remove(
                api.remove_container, self.holder_id, f"container {self.holder_id[:12]}"
            )
            self.holder_id = None
        if self._created:
            problems += _force_remove(api.remove_volume, self.name, f"volume {self.name}")
            self._created = False
        return problems

    # -- while the model runs -------------------------------------------------------------

    @property
    def binds(self) -> dict[str, dict[str, str]]:
        """The model's mount of the volume, for the engine's host config."""
        return {self.name: {"bind": MOUNT, "mode": "rw,nocopy"}}

    def full(self) -> bool:
        """Whether the holder has seen /output full (its space or its files used up)."""
        return self._holder_done.is_set() and self._holder_exit.get("StatusCode") == WATCH_FULL

    # -- once the model has stopped -------------------------------------------------------

    def read_out(self, dest: Path) -> OutputReport:
        """Measure /output and copy ``predictions.csv`` (a regular file only, read as the
        engine reports it, never following a link) to ``dest``. Call after the model's
        container has stopped, before :meth:`close`."""
        report = OutputReport(full=self.full())
        if report.full:
            report.bytes, report.entries = self._used_estimate()
            return report
        try:
            total, avail, bsize, files, free = self._statfs()
        except OutputVolumeError:
            # The holder may have just seen /output full and exited.
            self._holder_done.wait(self.limits.poll_interval + 5.0)
            if self.full():
                report.full = True
                report.bytes, report.entries = self._used_estimate()
                return report
            if self._holder_done.is_set():
                code = self._holder_exit.get("StatusCode", self._holder_exit.get("Error"))
                with contextlib.suppress(docker.errors.APIError):
                    said = self.client.api.logs(self.holder_id, tail=3).decode(errors="replace")
                    code = f"{code}: {said.strip()}"
                raise OutputVolumeError(ERR_HOLDER.format(code=code)) from None
            raise
        report.bytes, report.entries = (total - avail) * bsize, files - free - 1
        if avail == 0 or free == 0:
            report.full = True
            return report
        try:
            stream, stat = self.client.api.get_archive(self.holder_id, f"{MOUNT}/{PREDICTIONS}")
        except docker.errors.NotFound:
            return report
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            raise OutputVolumeError(f"/output could not be read ({exc})") from None
        size, mode = int(stat.get("size", 0)), int(stat.get("mode", 0))
        if mode & _GO_MODE_TYPE:
            report.not_a_file = True
        elif size > self.limits.output_bytes:  # a sparse file: its apparent size counts
            report.full = True
        else:
            report.predictions = _copy_member(stream, PREDICTIONS, dest, size)
            report.not_a_file = report.predictions is None
        with contextlib.suppress(Exception):
            stream.close()
        return report

    def _used_estimate(self) -> tuple[int, int]:
        """What was in use when the holder stopped on seeing /output full: its whole size
        (entries unknown)."""
        return -(-self.limits.output_bytes // _PAGE) * _PAGE + _PAGE, 0

    def _statfs(self) -> tuple[int, int, int, int, int]:
        api = self.client.api
        cmd = ["/bin/busybox", "stat", "-f", "-c", "%b %a %S %c %d", MOUNT]
        try:
            run = api.exec_create(self.holder_id, cmd, user=self.user)
            out = api.exec_start(run["Id"])
            numbers = [int(x) for x in out.decode().split()]
            if len(numbers) != 5:
                raise ValueError(out.decode(errors="replace").strip())
        except (docker.errors.APIError, requests.exceptions.RequestException, ValueError) as exc:
            raise OutputVolumeError(ERR_STATFS.format(detail=exc)) from None
        total, avail, bsize, files, free = numbers
        return total, avail, bsize, files, free


class _Chunks(io.RawIOBase):
    """A readable file over an iterator of byte chunks (the engine's archive stream)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._it: Iterator[bytes] = iter(chunks)
        self._buf = b""

    def readable(self) -> bool:
        return True

    # io's stubs type the buffer as any writable buffer; io only ever passes these two.
    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buf:
            try:
                self._buf = next(self._it)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def _copy_member(stream: Iterable[bytes], name: str, dest: Path, size: int) -> Path | None:
    """Copy the one regular file ``name`` of a tar stream to ``dest``; None if the stream's
    first member is anything else."""
    with tarfile.open(fileobj=io.BufferedReader(_Chunks(stream)), mode="r|") as tf:
        member = tf.next()
        if member is None or not member.isreg() or member.name != name or member.size != size:
            return None
        src = tf.extractfile(member)
        if src is None:
            return None
        with dest.open("wb") as out:
            shutil.copyfileobj(src, out, _CHUNK)
    return dest
