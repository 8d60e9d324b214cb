"""Resource limits of a containerized submission, and the labels that mark its resources.

One :class:`Limits` value holds every bound the platform puts on an uploaded image and on
each run of it; the defaults are the published ones (docs/containers.md).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

# Every container and image tag the runner creates carries the run id, so that leftovers of a
# worker that died mid-run can be found and removed (cleanup_stale).
LABEL_RUN = "org.medmod.run"
LABEL_TASK = "org.medmod.task"
LABEL_SCENARIO = "org.medmod.scenario"
LABEL_DEADLINE = "org.medmod.deadline"  # epoch seconds after which the run is overdue
IMAGE_REPOSITORY = "medmod-run"  # loaded images are tagged medmod-run:<run id>

# The unprivileged user a model runs as by default ("nobody"), whatever the worker's uid.
NOBODY = "65534:65534"

ERR_RUN_USER = (
    "the user a model runs as must be a numeric uid:gid other than root (e.g. 65534:65534), "
    "not {user!r}"
)


@dataclass(frozen=True)
class Limits:
    """Bounds on an uploaded image and on each of its runs.

    Sizes are in bytes, times in seconds. ``user`` is the ``uid:gid`` the model runs as;
    ``None`` means ``65534:65534``. It never depends on the worker's own uid: the model
    writes only into its own ``/output`` filesystem, which the worker reads through the
    engine, so the two need not share an owner.
    """

    # Upload checks
    archive_bytes: int = 10 * GiB  # the uploaded file, compressed or not
    layers_bytes: int = 20 * GiB  # sum of the image's (uncompressed) layer tarballs
    max_layers: int = 127
    max_archive_members: int = 10_000
    max_volumes: int = 16
    max_layer_entries: int = 2_000_000  # files and directories in all layers together

    # Each run (one scenario)
    memory_bytes: int = 8 * GiB  # RAM, /tmp, /dev/shm and /output together; no swap
    cpus: float = 2.0  # CPU time, and as many CPUs pinned (cpuset): nproc inside says so
    pids: int = 128  # processes and threads together
    wall_time: float = 3600.0
    tmp_bytes: int = 2 * GiB  # tmpfs at /tmp (counts toward memory_bytes)
    shm_bytes: int = 64 * MiB
    # /output is a tmpfs of this size (counts toward memory_bytes), with room for this many
    # files and directories: the kernel refuses writes past either.
    output_bytes: int = 1 * GiB
    output_files: int = 1_000
    log_tail_bytes: int = 64 * KiB  # kept and shown to the submission's owner
    log_file_bytes: int = 8 * MiB  # what the engine keeps on disk at most
    open_files: int = 4_096
    user: str | None = None
    # The OCI runtime the engine runs models with (e.g. "runsc" for gVisor, "crun"); None:
    # the engine's default. It must be registered with the engine (docs/operations.md).
    runtime: str | None = None
    # Disk I/O: a relative weight (10-1000; the engine's default is 500, honoured only by
    # an I/O scheduler that has weights, e.g. BFQ) and, when ``io_device`` names the
    # engine host's block device under its data root (e.g. /dev/nvme0n1), bytes and
    # operations per second on it, read and write each (0: no limit).
    io_weight: int = 100
    io_device: str | None = None
    io_bps: int = 0
    io_iops: int = 0
    # GPUs the model's container is given (0: none), as the engine's device requests; with
    # ``gpu_devices`` the engine's device ids of the ones given (else any ``gpus`` of them).
    gpus: int = 0
    gpu_devices: tuple[str, ...] = ()
    # Seconds past a run's wall time after which its container counts as overdue: the
    # engine-side reaper and the deadline watchdog then remove it, worker or no worker.
    deadline_grace: float = 60.0

    # Streaming runs (the gateway, docs/containers.md): per step and at the start and end.
    step_time: float = 120.0  # to answer one step, from the step's last byte sent
    ready_time: float = 300.0  # to connect and answer the hello (loading weights included)
    exit_time: float = 30.0  # to exit after the end message
    answer_bytes: int = 64 * MiB  # one answer line

    # How often the runner checks the clock, and /output's filesystem whether it is full,
    # while a model runs.
    poll_interval: float = 0.2

    def with_(self, **changes: object) -> Limits:
        """A copy with some limits changed: ``DEFAULT_LIMITS.with_(wall_time=60)``."""
        # replace() takes each field's own type; a name that is no field raises TypeError.
        return replace(self, **changes)  # type: ignore[arg-type]

    def run_user(self) -> str:
        """The ``uid:gid`` the model runs as; raises ValueError for root or a name."""
        user = self.user or NOBODY
        uid, sep, gid = user.partition(":")
        if not (sep and uid.isdigit() and gid.isdigit()) or int(uid) == 0 or int(gid) == 0:
            raise ValueError(ERR_RUN_USER.format(user=user))
        return f"{int(uid)}:{int(gid)}"

    def describe(self) -> dict[str, object]:
        """The limits a submitter is shown (and that the docs state)."""
        return {
            "image archive": format_bytes(self.archive_bytes),
            "image layers": format_bytes(self.layers_bytes),
            "memory (RAM + /tmp + /dev/shm + /output, no swap)": format_bytes(self.memory_bytes),
            "CPUs": self.cpus,
            "processes and threads": self.pids,
            "wall time per scenario": f"{self.wall_time:g} s",
            "/tmp": format_bytes(self.tmp_bytes),
            "/output": f"{format_bytes(self.output_bytes)}, {self.output_files} files",
            "log kept": format_bytes(self.log_tail_bytes),
            "streaming: answer time per step": f"{self.step_time:g} s",
            "streaming: time to connect and answer the hello": f"{self.ready_time:g} s",
            "streaming: answer size per step": format_bytes(self.answer_bytes),
            "network": "none",
            **({"GPUs": self.gpus} if self.gpus else {}),
        }


DEFAULT_LIMITS = Limits()


def format_bytes(n: float) -> str:
    """Human-readable size with binary units.

    >>> format_bytes(3 * 1024 ** 3)
    '3.0 GiB'
    >>> format_bytes(512)
    '512 B'
    """
    if n < KiB:
        return f"{int(n)} B"
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"  # pragma: no cover
