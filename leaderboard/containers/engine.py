"""The Docker engine side of a run: client, image load and removal, and the reaper.

Every resource a run creates is findable from the engine alone: containers and volumes
carry the ``org.medmod.run`` label and images the tag ``medmod-run:<run id>``, whose run id
starts with the UTC time it was made; each container also carries its deadline
(``org.medmod.deadline``: the end of its wall time plus a grace). :func:`cleanup_stale`
removes what a dead worker left behind, and any container past its deadline at once;
:func:`watch_deadlines` does the latter in a loop of its own (``python -m
leaderboard.containers watchdog``), so a run cannot outlive its deadline by more than a
round even while the worker and the reaper are down.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import docker
import docker.errors
import requests

from leaderboard.containers.archive import ImageArchiveError, ImageInfo, load_stream
from leaderboard.containers.limits import IMAGE_REPOSITORY, LABEL_DEADLINE, LABEL_RUN

log = logging.getLogger(__name__)

ERR_ENGINE = "the container engine is not reachable ({detail})"
ERR_LOAD = "the engine could not load the image ({detail})"
ERR_LOAD_ID = "the engine loaded image {got}, not the checked image {expected}"

_RUN_ID = re.compile(r"^(\d{8}t\d{6})-[0-9a-f]{8}$")


class EngineError(RuntimeError):
    """The engine failed in a way that is not the submission's fault; retry later."""


def new_run_id(now: datetime | None = None) -> str:
    """A run id: UTC creation time and a random part, e.g. ``20250101t120000-1a2b3c4d``."""
    t = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{t:%Y%m%dt%H%M%S}-{secrets.token_hex(4)}"


def run_id_time(run_id: str) -> datetime | None:
    """Creation time encoded in a run id (None for anything else)."""
    m = _RUN_ID.match(run_id)
    if not m:
        return None
    return datetime.strptime(m.group(1), "%Y%m%dt%H%M%S").replace(tzinfo=UTC)


def image_tag(run_id: str) -> str:
    return f"{IMAGE_REPOSITORY}:{run_id}"


def get_client(*, timeout: float = 120) -> docker.DockerClient:
    """A client for the engine configured by the environment (DOCKER_HOST etc.)."""
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise EngineError(ERR_ENGINE.format(detail=exc)) from None
    return client


def load_image(client: docker.DockerClient, info: ImageInfo, run_id: str) -> str:
    """Load a checked archive under the run's own tag; returns the tag.

    Raises ImageArchiveError when the engine refuses the archive (the upload's fault) and
    EngineError when the engine itself fails.
    """
    tag = image_tag(run_id)
    try:
        for chunk in client.api.load_image(load_stream(info, tag), quiet=True):
            if isinstance(chunk, dict) and "errorDetail" in chunk:
                detail = (chunk.get("errorDetail") or {}).get("message") or chunk.get("error")
                raise ImageArchiveError(ERR_LOAD.format(detail=detail))
    except docker.errors.APIError as exc:
        if exc.response is not None and exc.response.status_code >= 500 and not exc.explanation:
            raise EngineError(ERR_LOAD.format(detail=exc)) from None
        raise ImageArchiveError(ERR_LOAD.format(detail=exc.explanation or exc)) from None
    except requests.exceptions.RequestException as exc:
        raise EngineError(ERR_LOAD.format(detail=exc)) from None
    try:
        loaded = client.api.inspect_image(tag)
    except docker.errors.ImageNotFound:
        raise ImageArchiveError(ERR_LOAD.format(detail="no image was loaded")) from None
    if loaded["Id"] != info.image_id:
        remove_image(client, tag)
        raise ImageArchiveError(ERR_LOAD_ID.format(got=loaded["Id"], expected=info.image_id))
    return tag


def remove_image(client: docker.DockerClient, tag: str) -> bool:
    """Remove a run's tag (and the image, when no other run's tag still names it)."""
    try:
        client.images.remove(tag, force=False, noprune=False)
        return True
    except docker.errors.ImageNotFound:
        return False
    except docker.errors.APIError:
        # Still used by a container (removed later by cleanup_stale): untag at least.
        try:
            client.api.remove_image(tag, force=True, noprune=False)
            return True
        except docker.errors.APIError:
            return False


def remove_container(client: docker.DockerClient, container_id: str) -> bool:
    """Kill and remove a container and its anonymous volumes; True when it was there."""
    try:
        client.api.remove_container(container_id, force=True, v=True)
        return True
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as exc:
        if "already in progress" in str(exc):
            return True
        raise


@contextmanager
def loaded_image(client: docker.DockerClient, info: ImageInfo, run_id: str) -> Iterator[str]:
    """Load an image for the duration of a block, removing it afterwards whatever happens."""
    tag = load_image(client, info, run_id)
    try:
        yield tag
    finally:
        remove_image(client, tag)


@dataclass
class CleanupReport:
    """What :func:`cleanup_stale` removed."""

    containers: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    overdue: list[str] = field(default_factory=list)  # removed for being past their deadline
    errors: list[str] = field(default_factory=list)


def _parse_engine_time(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None


def _created(attrs: dict[str, Any]) -> datetime | None:
    created = attrs.get("Created")
    if isinstance(created, int | float):  # container lists give epoch seconds
        return datetime.fromtimestamp(created, UTC)
    return _parse_engine_time(str(created)) if created else None


def deadline_of(labels: dict[str, str] | None) -> datetime | None:
    """A container's deadline from its ``org.medmod.deadline`` label (epoch seconds)."""
    raw = (labels or {}).get(LABEL_DEADLINE, "")
    try:
        return datetime.fromtimestamp(int(raw), UTC)
    except (ValueError, OverflowError, OSError):
        return None


def remove_overdue(
    *, client: docker.DockerClient | None = None, now: datetime | None = None
) -> CleanupReport:
    """Kill and remove every run's container past its deadline, running or not.

    A live worker stops its model at the wall time and removes the container well before
    the deadline (wall time plus ``Limits.deadline_grace``), so a container still there
    past it belongs to a worker that died or hangs.
    """
    client = client or get_client()
    now = now or datetime.now(UTC)
    report = CleanupReport()
    for c in client.api.containers(all=True, filters={"label": LABEL_RUN}):
        deadline = deadline_of(c.get("Labels"))
        if deadline is None or deadline > now:
            continue
        try:
            if remove_container(client, c["Id"]):
                report.containers.append(c["Id"][:12])
                report.overdue.append(c["Id"][:12])
        except docker.errors.APIError as exc:
            report.errors.append(f"container {c['Id'][:12]}: {exc}")
    return report


def cleanup_stale(
    max_age: float | timedelta,
    *,
    client: docker.DockerClient | None = None,
    now: datetime | None = None,
    run_ids: Collection[str] | None = None,
) -> CleanupReport:
    """Remove runs' containers, volumes and images older than ``max_age`` (seconds or a
    timedelta), and any run's container past its deadline whatever its age.

    For the platform's reaper: a worker that dies mid-run leaves its container (possibly
    still running), its ``/output`` volume and its image behind. Choose ``max_age`` above
    the longest run (wall time plus image load); ``max_age=0`` removes every run's
    leftovers. ``run_ids`` restricts the cleanup to those runs (e.g. the runs of jobs known
    to have died); overdue containers are removed in any case.
    """
    only = set(run_ids) if run_ids is not None else None
    age = max_age if isinstance(max_age, timedelta) else timedelta(seconds=float(max_age))
    client = client or get_client()
    now = now or datetime.now(UTC)
    report = remove_overdue(client=client, now=now)
    live_runs: set[str] = set()
    for c in client.api.containers(all=True, filters={"label": LABEL_RUN}):
        run = (c.get("Labels") or {}).get(LABEL_RUN, "")
        if only is not None and run not in only:
            continue
        created = _created(c)
        if created is not None and now - created < age:
            live_runs.add(run)
            continue
        try:
            if remove_container(client, c["Id"]):
                report.containers.append(c["Id"][:12])
        except docker.errors.APIError as exc:
            report.errors.append(f"container {c['Id'][:12]}: {exc}")
            live_runs.add(run)
    for v in (client.api.volumes(filters={"label": LABEL_RUN}) or {}).get("Volumes") or ():
        run = (v.get("Labels") or {}).get(LABEL_RUN, "")
        made = _parse_engine_time(str(v.get("CreatedAt") or "")) or run_id_time(run)
        if run in live_runs or (only is not None and run not in only):
            continue
        if made is not None and now - made < age:
            continue
        try:
            client.api.remove_volume(v["Name"], force=True)
            report.volumes.append(v["Name"])
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:  # still mounted by a container
            report.errors.append(f"volume {v['Name']}: {exc}")
    for img in client.api.images(name=IMAGE_REPOSITORY):
        for tag in img.get("RepoTags") or ():
            repo, _, run = tag.rpartition(":")
            if (
                repo != IMAGE_REPOSITORY
                or run in live_runs
                or (only is not None and run not in only)
            ):
                continue
            made = run_id_time(run)
            if made is not None and now - made < age:
                continue
            if remove_image(client, tag):
                report.images.append(tag)
            else:
                report.errors.append(f"image {tag}: could not be removed")
    return report


def watch_deadlines(
    *,
    interval: float = 10.0,
    stop: threading.Event | None = None,
    client_factory: Callable[[], docker.DockerClient] = get_client,
    on_round: Callable[[CleanupReport], None] | None = None,
) -> None:
    """Remove overdue containers every ``interval`` seconds until ``stop`` is set.

    The supervisor beside the worker: it needs only the engine, not the worker, the
    database or the broker. An engine that cannot be reached is logged and tried again
    next round. ``on_round`` sees each round's report (e.g. to touch a heartbeat file).
    """
    stop = stop or threading.Event()
    client: docker.DockerClient | None = None
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            client = client or client_factory()
            report = remove_overdue(client=client)
        except (EngineError, docker.errors.DockerException,
                requests.exceptions.RequestException) as exc:  # fmt: skip
            log.warning("deadline watchdog: the engine cannot be reached: %s", exc)
            client = None
            report = CleanupReport(errors=[str(exc)])
        for cid in report.overdue:
            log.warning("deadline watchdog: removed container %s, past its deadline", cid)
        if on_round is not None:
            on_round(report)
        stop.wait(max(0.0, interval - (time.monotonic() - t0)))
