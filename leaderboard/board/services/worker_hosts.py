"""Worker hosts: each announces the queues it serves and its capacity when it starts and
every ``WORKER_HEARTBEAT`` seconds after; a host can be drained (it stops taking new jobs and
finishes its own) and resumed.

Draining is two things: Celery's ``cancel_consumer`` broadcast to the host, which stops its
consumers at once (a running job goes on; with ``acks_late`` and prefetch 1 the host holds no
other message), and the mark on its :class:`WorkerHost` row, which the host reads when it
starts again, so a drained host stays drained across restarts until it is resumed.

GPU runs wait in the database while no GPU host takes them (``services.fair_queue``): a
GPU host that announces itself, is resumed, or is heard from again after going quiet
dispatches them at once (the reaper would, a minute later).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from leaderboard.board.models import WorkerHost
from leaderboard.board.services.dispatch import scoring_dispatch

log = logging.getLogger(__name__)

ERR_NO_HOST = "no worker host is named {name!r}; known hosts: {known}"
ERR_AMBIGUOUS = "{name!r} names more than one worker host ({found}): give the full node name"
REPLY_TIMEOUT = 2.0  # seconds to wait for the host's answer to a control command


class UnknownHost(LookupError):
    """The name given matches no worker host, or more than one."""


def queue_kinds(queues: list[str]) -> list[str]:
    """The kinds of work (``scoring``, ``cpu-runs``...) of a list of queue names; a queue
    of no known kind is named as it is."""
    kinds = {q: k for k, q in settings.WORK_QUEUES.items()}
    return [kinds.get(q, q) for q in queues]


def worker_host_announce(
    *, name: str, queues: list[str], concurrency: int, gpus: int, starting: bool = False
) -> WorkerHost:
    """Record a host as alive with its queues and capacity (made on its first start). The
    drained mark is kept: only :func:`worker_host_resume` clears it."""
    now = timezone.now()
    values: dict[str, Any] = {
        "queues": list(queues),
        "concurrency": max(0, int(concurrency)),
        "gpus": max(0, int(gpus)),
        "last_seen": now,
    }
    if starting:
        values["started_at"] = now
    host, _ = WorkerHost.objects.update_or_create(name=name[:200], defaults=values)
    _gpu_runs_dispatch(host)
    return host


def worker_host_seen(*, name: str) -> None:
    """The host's heartbeat. A GPU host heard from again after it went quiet sends the GPU
    runs that waited for it."""
    now = timezone.now()
    host = WorkerHost.objects.filter(name=name).first()
    WorkerHost.objects.filter(name=name).update(last_seen=now)
    if host is None:
        return
    if host.last_seen is None or host.last_seen < now - settings.WORKER_HOST_STALE:
        _gpu_runs_dispatch(host)


def takes_gpu_runs(host: WorkerHost) -> bool:
    """Whether a host serves the GPU runs' queue with a GPU and is not drained (alive or
    not: see ``selectors.worker_hosts.gpu_worker_available``)."""
    return host.gpus > 0 and not host.drained and settings.GPU_RUNS_QUEUE in (host.queues or [])


def _gpu_runs_dispatch(host: WorkerHost) -> None:
    """Once committed: send the GPU runs waiting for a host, if this host takes them."""
    if not takes_gpu_runs(host):
        return
    transaction.on_commit(scoring_dispatch)


def worker_host_find(*, name: str) -> WorkerHost:
    """The host named ``name``: its Celery node name (``celery@host``) or a part of it on
    either side of the ``@``. Raises :class:`UnknownHost` with the known names otherwise."""
    hosts = list(WorkerHost.objects.all())
    exact = [h for h in hosts if h.name == name]
    found = exact or [h for h in hosts if name in h.name.split("@", 1)]
    if len(found) == 1:
        return found[0]
    if not found:
        known = ", ".join(h.name for h in hosts) or "none has started yet"
        raise UnknownHost(ERR_NO_HOST.format(name=name, known=known))
    raise UnknownHost(ERR_AMBIGUOUS.format(name=name, found=", ".join(h.name for h in found)))


@dataclass
class DrainResult:
    """What a drain or resume did: the host, the queues asked of it, the host's answers
    (empty when it is down: it reads its mark when it starts) and its running jobs."""

    host: WorkerHost
    queues: list[str]
    replies: list[dict[str, Any]] = field(default_factory=list)
    active: list[dict[str, Any]] = field(default_factory=list)

    @property
    def answered(self) -> bool:
        return bool(self.replies)


def _broadcast(command: str, host: WorkerHost) -> list[dict[str, Any]]:
    from leaderboard.celery import app

    replies: list[dict[str, Any]] = []
    for queue in host.queues:
        try:
            replies += (
                getattr(app.control, command)(
                    queue, destination=[host.name], reply=True, timeout=REPLY_TIMEOUT
                )
                or []
            )
        except Exception as exc:  # the broker is down: the mark still stands
            log.warning("%s %s on %s: the broker did not take it: %s", command, queue,
                        host.name, exc)  # fmt: skip
    return replies


def worker_host_active(*, host: WorkerHost) -> list[dict[str, Any]]:
    """The jobs the host is running now, as it answers (empty when it does not)."""
    from leaderboard.celery import app

    try:
        answer = app.control.inspect(destination=[host.name], timeout=REPLY_TIMEOUT).active()
    except Exception:  # noqa: BLE001 - a broker that is down answers nothing
        return []
    return list((answer or {}).get(host.name) or [])


def worker_host_drain(*, name: str, note: str = "") -> DrainResult:
    """Drain a host: mark it (kept across its restarts) and tell it to stop consuming
    every queue it serves. Its running jobs finish; new ones go to the other hosts."""
    host = worker_host_find(name=name)
    with transaction.atomic():
        WorkerHost.objects.filter(pk=host.pk).update(
            drained=True, drained_at=timezone.now(), drain_note=note[:300]
        )
    host.refresh_from_db()
    replies = _broadcast("cancel_consumer", host)
    return DrainResult(host=host, queues=list(host.queues), replies=replies,
                       active=worker_host_active(host=host))  # fmt: skip


def worker_host_resume(*, name: str) -> DrainResult:
    """Undo a drain: clear the mark and tell the host to consume its queues again."""
    host = worker_host_find(name=name)
    WorkerHost.objects.filter(pk=host.pk).update(drained=False, drained_at=None, drain_note="")
    host.refresh_from_db()
    _gpu_runs_dispatch(host)
    return DrainResult(host=host, queues=list(host.queues),
                       replies=_broadcast("add_consumer", host))  # fmt: skip
