"""The engine's side of the containment: what it must offer before an upload runs, and the
host options every run gets on top of the runner's limits.

:func:`check_engine` refuses an engine without seccomp, or without the OCI runtime the
limits name or with one that cannot start a container, before any image is loaded. :func:`host_options` adds an init process
(``--init``: signals forwarded, zombies reaped), a cpuset as wide as the CPU limit (so
``nproc`` inside says the limit), the I/O limits and the runtime.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import re
import threading
import time
from typing import Any

import docker
import docker.errors
import requests

from leaderboard.containers.limits import Limits
from leaderboard.containers.output_volume import OutputVolumeError, holder_image
from leaderboard.containers.results import MSG_NOT_STARTED, RunStatus

ERR_NO_SECCOMP = (
    "the container engine runs without seccomp (its security options: {options}); uploads "
    "are not run on it: start dockerd with its default seccomp profile"
)
ERR_SECCOMP_UNCONFINED = (
    "the container engine's default seccomp profile is unconfined; uploads are not run on "
    "it: remove --seccomp-profile=unconfined from dockerd"
)
ERR_NO_RUNTIME = (
    "the container engine has no OCI runtime named {runtime!r} (it has: {known}); register "
    'it with dockerd (--add-runtime {runtime}=PATH, or "runtimes" in daemon.json) or '
    "change CONTAINER_RUNTIME"
)
ERR_RUNTIME_BROKEN = (
    "the container engine's OCI runtime {runtime!r} is registered but cannot start a "
    "container on this host ({detail}); uploads are not run under it: fix the runtime's "
    "installation or change CONTAINER_RUNTIME"
)
ERR_INFO = "the container engine did not describe itself ({detail})"

# The label of the probe container that proves a runtime (prove_runtime).
LABEL_PROBE = "org.medmod.runtime-probe"
_CACHE_SECONDS = 60.0
_cache: dict[int, tuple[float, dict[str, Any]]] = {}
_cache_lock = threading.Lock()
_next_cpu = itertools.count()
_runtimes_proven: set[tuple[int, str]] = set()


class EngineUnfit(RuntimeError):
    """The engine lacks something the containment needs; the message says what."""


def engine_info(client: docker.DockerClient) -> dict[str, Any]:
    """The engine's ``info()``, kept for a minute per client (it is asked before each run)."""
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(id(client))
        if hit is not None and now - hit[0] < _CACHE_SECONDS:
            return hit[1]
    try:
        info = client.info()
    except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
        raise EngineUnfit(ERR_INFO.format(detail=exc)) from None
    with _cache_lock:
        _cache[id(client)] = (now, info)
    return info


def check_engine(client: docker.DockerClient, *, runtime: str | None = None) -> dict[str, Any]:
    """The engine's info, once it is known to run seccomp and to have ``runtime``; raises
    :class:`EngineUnfit` otherwise."""
    info = engine_info(client)
    options = [str(o) for o in info.get("SecurityOptions") or ()]
    seccomp = [o for o in options if o.startswith("name=seccomp")]
    if not seccomp:
        raise EngineUnfit(ERR_NO_SECCOMP.format(options=", ".join(options) or "none"))
    if any("profile=unconfined" in o for o in seccomp):
        raise EngineUnfit(ERR_SECCOMP_UNCONFINED)
    if runtime:
        known = sorted(info.get("Runtimes") or {})
        if runtime not in known:
            raise EngineUnfit(ERR_NO_RUNTIME.format(runtime=runtime, known=", ".join(known)))
        prove_runtime(client, runtime)
    return info


def prove_runtime(client: docker.DockerClient, runtime: str) -> None:
    """Start one container of the platform's own (the /output holder's busybox image, no
    network, no capabilities) under ``runtime``, once per client while it works: a runtime
    can be registered and still unable to run anything on this host (crun, for one, refuses
    a host whose cgroup v2 hierarchy holds controllers beside v1's). Raises
    :class:`EngineUnfit` with the engine's reason then, before any upload is loaded."""
    key = (id(client), runtime)
    if key in _runtimes_proven:
        return
    api, container_id = client.api, None
    try:
        image = holder_image(client)
        container_id = api.create_container(
            image=image, command=["true"], network_disabled=True, labels={LABEL_PROBE: runtime},
            host_config=api.create_host_config(network_mode="none", runtime=runtime,
                                               cap_drop=["ALL"], read_only=True),
        )["Id"]  # fmt: skip
        api.start(container_id)
        code = api.wait(container_id, timeout=60).get("StatusCode")
        if code != 0:
            raise EngineUnfit(ERR_RUNTIME_BROKEN.format(runtime=runtime,
                                                        detail=f"a probe exited {code}"))  # fmt: skip
    except docker.errors.APIError as exc:
        raise EngineUnfit(ERR_RUNTIME_BROKEN.format(runtime=runtime,
                                                    detail=exc.explanation or exc)) from None  # fmt: skip
    except (OutputVolumeError, requests.exceptions.RequestException) as exc:
        raise EngineUnfit(ERR_INFO.format(detail=exc)) from None
    finally:
        if container_id is not None:
            with contextlib.suppress(docker.errors.APIError, requests.exceptions.RequestException):
                api.remove_container(container_id, force=True)
    _runtimes_proven.add(key)


def cpuset(cpus: float, n_cpus: int, start: int) -> str:
    """``ceil(cpus)`` consecutive CPUs of ``n_cpus`` from ``start`` (wrapping), e.g. "2,3".

    >>> cpuset(2.0, 4, 3)
    '0,3'
    >>> cpuset(8.0, 4, 1)
    '0-3'
    """
    want = max(1, math.ceil(cpus))
    if n_cpus <= 0:
        return ""
    if want >= n_cpus:
        return f"0-{n_cpus - 1}" if n_cpus > 1 else "0"
    chosen = sorted((start + i) % n_cpus for i in range(want))
    return ",".join(str(c) for c in chosen)


def host_options(client: docker.DockerClient, limits: Limits) -> dict[str, Any]:
    """Keyword arguments of ``create_host_config`` beyond the runner's own: init, cpuset,
    I/O limits, runtime. Successive runs start their cpuset on successive CPUs, so that
    runs side by side spread over the host."""
    info = engine_info(client)
    n_cpus = int(info.get("NCPU") or 0)
    options: dict[str, Any] = {"init": True}
    want = max(1, math.ceil(limits.cpus))
    chosen = cpuset(limits.cpus, n_cpus, next(_next_cpu) * want % max(n_cpus, 1))
    if chosen:
        options["cpuset_cpus"] = chosen
    if limits.io_weight:
        options["blkio_weight"] = limits.io_weight
    if limits.io_device:
        device = limits.io_device
        if limits.io_bps:
            rate = [{"Path": device, "Rate": int(limits.io_bps)}]
            options["device_read_bps"] = options["device_write_bps"] = rate
        if limits.io_iops:
            rate = [{"Path": device, "Rate": int(limits.io_iops)}]
            options["device_read_iops"] = options["device_write_iops"] = rate
    if limits.runtime:
        options["runtime"] = limits.runtime
    return options


# What the init process (docker-init, tini) prints when it cannot run the image's command:
# the runtime started, so the engine reports no start error, only exit code 126 or 127.
_INIT_EXEC = re.compile(r"\[FATAL tini \(\d+\)\] exec (.+) failed: (.+)")
_EXEC_REASONS = {
    "No such file or directory": "executable file not found in the image",
    "Permission denied": "permission denied (not an executable file)",
}


def note_exec_failure(result: Any, record: Any = None) -> None:
    """A run whose init could not exec the image's ENTRYPOINT/CMD is ``image_invalid`` with
    the reason, as when the runtime itself refuses to start it (``record``: a streamed
    run's record, kept in step)."""
    if result.ok or result.exit_code not in (126, 127):
        return
    match = _INIT_EXEC.search(result.log_tail or "")
    if match is None:
        return
    reason = match.group(2).strip()
    detail = f"exec {match.group(1)}: {_EXEC_REASONS.get(reason, reason)}"
    result.status, result.message = RunStatus.IMAGE_INVALID, MSG_NOT_STARTED.format(detail=detail)
    if record is not None:
        record.status, record.message = result.status, result.message
