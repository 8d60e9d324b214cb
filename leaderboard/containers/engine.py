"""The Docker engine side of a run: client, image load and removal, and the reaper.

Every resource a run creates is findable from the engine alone: containers carry the
``org.medmod.run`` label and images the tag ``medmod-run:<run id>``, whose run id starts
with the UTC time it was made. :func:`cleanup_stale` removes what a dead worker left behind.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import docker
import docker.errors
import requests

from leaderboard.containers.archive import ImageArchiveError, ImageInfo, load_stream
from leaderboard.containers.limits import IMAGE_REPOSITORY, LABEL_RUN

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


def cleanup_stale(
    max_age: float | timedelta,
    *,
    client: docker.DockerClient | None = None,
    now: datetime | None = None,
    run_ids: Collection[str] | None = None,
) -> CleanupReport:
    """Remove runs' containers and images older than ``max_age`` (seconds or a timedelta).

    For the platform's reaper: a worker that dies mid-run leaves its container (possibly
    still running) and its image behind. Choose ``max_age`` above the longest run (wall
    time plus image load); ``max_age=0`` removes every run's leftovers. ``run_ids``
    restricts the cleanup to those runs (e.g. the runs of jobs known to have died).
    """
    only = set(run_ids) if run_ids is not None else None
    age = max_age if isinstance(max_age, timedelta) else timedelta(seconds=float(max_age))
    client = client or get_client()
    now = now or datetime.now(UTC)
    report = CleanupReport()
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
