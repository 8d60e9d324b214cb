"""The Celery app. Workers start with ``celery -A leaderboard.celery worker``.

Configuration comes from Django settings (``CELERY_*``), queues by kind of work and their
routing included; a deployment starts a host with ``bin/worker`` (its queues and capacity).
Each worker records itself as a worker host (``leaderboard.board.worker_host``). With the
embedded default the broker is kombu's filesystem transport: its folders are made here,
before the first message.
"""

from __future__ import annotations

import os
from pathlib import Path

from celery import Celery
from celery.signals import celeryd_after_setup, celeryd_init, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leaderboard.settings")

app = Celery("leaderboard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["leaderboard.board"])


def ensure_broker_folders() -> None:
    """Create the folders of the filesystem transport, when that is the broker in use."""
    options = app.conf.broker_transport_options or {}
    if not str(app.conf.broker_url or "").startswith("filesystem://"):
        return
    for key in ("data_folder_in", "data_folder_out", "control_folder", "processed_folder"):
        if options.get(key):
            Path(options[key]).mkdir(parents=True, exist_ok=True)


@app.on_after_configure.connect
def _on_configure(sender: Celery, **_: object) -> None:
    ensure_broker_folders()


@celeryd_init.connect
def _on_worker_init(**_: object) -> None:
    ensure_broker_folders()


@celeryd_after_setup.connect
def _on_worker_setup(sender: str, instance: object, **_: object) -> None:
    # Queues and capacity recorded; a drained host consumes nothing (board.worker_host).
    from leaderboard.board.worker_host import on_worker_setup

    on_worker_setup(instance)


@worker_ready.connect
def _on_worker_ready(sender: object, **_: object) -> None:
    from leaderboard.board.worker_host import on_worker_ready

    on_worker_ready(sender)
