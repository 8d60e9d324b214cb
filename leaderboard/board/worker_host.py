"""The worker process's side of worker hosts, wired to Celery's signals in
``leaderboard.celery``: the host announces its queues and capacity before it consumes
anything, stays drained if it was drained before it stopped, and sends a heartbeat; a host
that runs containers sweeps its own engine of dead runs' leftovers.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

from django.conf import settings
from django.db import connection

log = logging.getLogger(__name__)

MSG_DRAINED = (
    "worker host %s is drained: it consumes no queue until it is resumed "
    "(python manage.py drain_host --resume %s)"
)
_stop = threading.Event()


def _close_db() -> None:
    with contextlib.suppress(Exception):  # a connection that is already gone
        connection.close()


def on_worker_setup(worker: Any) -> None:
    """Before the consumers start: record the host; a drained host deselects every queue."""
    from leaderboard.board.services.worker_hosts import worker_host_announce

    queues = sorted(worker.app.amqp.queues.consume_from)
    try:
        host = worker_host_announce(
            name=worker.hostname, queues=queues, concurrency=worker.concurrency or 1,
            gpus=settings.WORKER_GPUS, starting=True,
        )  # fmt: skip
    except Exception:  # the database is down: the host works, unrecorded until it is back
        log.exception("worker host %s could not be recorded", worker.hostname)
        return
    finally:
        _close_db()
    if host.drained:
        worker.app.amqp.queues.deselect(queues)
        log.warning(MSG_DRAINED, host.name, host.name)


def on_worker_ready(consumer: Any) -> None:
    """Once the consumers run: the heartbeat, in a thread of the worker's main process; on
    a host running containers, also the sweep of its own engine."""
    name = consumer.hostname
    runs = {settings.CPU_RUNS_QUEUE, settings.GPU_RUNS_QUEUE}
    sweeps = bool(runs & set(consumer.app.amqp.queues.consume_from))
    threading.Thread(target=_heartbeat, args=(name, sweeps), name="host-heartbeat",
                     daemon=True).start()  # fmt: skip


def _heartbeat(name: str, sweeps: bool) -> None:
    """Every WORKER_HEARTBEAT seconds the host's heartbeat; with ``sweeps``, at the start and
    every REAPER_INTERVAL seconds, the removal of leftovers of dead runs on this host's
    engine (the reaper task may run on a host without it) and of containers past their
    deadline."""
    from leaderboard.board.models import WorkerHost
    from leaderboard.board.services.containers import container_runs_reap
    from leaderboard.board.services.worker_hosts import worker_host_seen

    next_sweep = 0.0
    while True:
        if sweeps and time.monotonic() >= next_sweep:
            next_sweep = time.monotonic() + settings.REAPER_INTERVAL
            try:
                container_runs_reap()
            except Exception:  # noqa: BLE001 - tried again next round
                log.warning("worker host %s: engine sweep failed", name, exc_info=True)
        if _stop.wait(settings.WORKER_HEARTBEAT):
            return
        try:
            if WorkerHost.objects.filter(name=name).exists():
                worker_host_seen(name=name)
        except Exception:  # noqa: BLE001 - tried again next beat
            log.warning("worker host %s: heartbeat not recorded", name, exc_info=True)
        finally:
            _close_db()
