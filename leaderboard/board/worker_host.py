"""The worker process's side of worker hosts, wired to Celery's signals in
``leaderboard.celery``: the host announces its queues and capacity before it consumes
anything, stays drained if it was drained before it stopped, and sends a heartbeat.
"""

from __future__ import annotations

import contextlib
import logging
import threading
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
    """Once the consumers run: the heartbeat, in a thread of the worker's main process."""
    name = consumer.hostname
    threading.Thread(target=_heartbeat, args=(name,), name="host-heartbeat", daemon=True).start()


def _heartbeat(name: str) -> None:
    from leaderboard.board.models import WorkerHost
    from leaderboard.board.services.worker_hosts import worker_host_seen

    while not _stop.wait(settings.WORKER_HEARTBEAT):
        try:
            if WorkerHost.objects.filter(name=name).exists():
                worker_host_seen(name=name)
        except Exception:  # noqa: BLE001 - tried again next beat
            log.warning("worker host %s: heartbeat not recorded", name, exc_info=True)
        finally:
            _close_db()
