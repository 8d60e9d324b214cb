"""Start a worker host: the kinds of work it serves and its capacity.

``bin/worker`` runs this module (``python -m leaderboard.worker`` in the app image):

    bin/worker --queues scoring,cpu-runs --concurrency 2 --gpus 0 [--name runner-1]
    bin/worker --queues gpu-runs --concurrency 1 --gpus 1 --name gpu-1

Kinds of work: scoring (prediction files), refresh (board refreshes), cpu-runs and gpu-runs
(container entries without and with a GPU), baselines (the reference baselines' training).
Their queue names come from settings (CELERY_QUEUE, CELERY_*_QUEUE). The host runs
``celery worker`` with one process per --concurrency, each on one thread (``ONE_THREAD``),
reserving one message per process at a time, on the Docker engine of DOCKER_HOST. Each host needs a name of its own among the
hosts of a deployment (default: this machine's host name): it is the name drain_host takes.
Arguments after ``--`` go to ``celery worker`` as they are.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the project (manage.py's folder)
DEFAULT_KINDS = "scoring,refresh,cpu-runs"
# Each worker process computes on one thread: a host's parallelism is its --concurrency, one
# process per core. Otherwise numpy's BLAS threads of one process take the cores the others
# were given (the environment can still set other values).
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    extra: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1 :]
    p = argparse.ArgumentParser(prog="bin/worker", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--queues",
        default=os.environ.get("WORKER_QUEUES", DEFAULT_KINDS),
        help=f"kinds of work, comma-separated (default: {DEFAULT_KINDS})",
    )
    p.add_argument(
        "--concurrency",
        type=int,
        default=int(os.environ.get("WORKER_CONCURRENCY", "1")),
        help="jobs at a time (worker processes)",
    )
    p.add_argument(
        "--gpus",
        type=int,
        default=int(os.environ.get("WORKER_GPUS", "0")),
        help="GPUs of this host's engine (a host serving gpu-runs needs one)",
    )
    p.add_argument(
        "--name",
        default=os.environ.get("WORKER_NAME", socket.gethostname()),
        help="the host's name (its Celery node is celery@NAME)",
    )
    p.add_argument("--loglevel", default=os.environ.get("WORKER_LOGLEVEL", "info"))
    return p.parse_args(argv), extra


def celery_command(args: argparse.Namespace, queues: dict[str, str]) -> list[str]:
    """The ``celery worker`` command line, or SystemExit with what is wrong."""
    kinds = [k.strip() for k in args.queues.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in queues]
    if not kinds or unknown:
        raise SystemExit(
            f"bin/worker: unknown kind of work {', '.join(unknown) or '(none given)'}; "
            f"the kinds are {', '.join(queues)}"
        )
    if args.concurrency < 1:
        raise SystemExit("bin/worker: --concurrency must be 1 or more")
    if args.gpus < 0:
        raise SystemExit("bin/worker: --gpus must be 0 or more")
    if "gpu-runs" in kinds and args.gpus < 1:
        raise SystemExit(
            "bin/worker: a host serving gpu-runs needs a GPU: give --gpus N (N >= 1), or "
            "leave gpu-runs to a GPU host (GPU entries wait for one in the queue)"
        )
    name = args.name if "@" in args.name else f"celery@{args.name}"
    return [sys.executable, "-m", "celery", "-A", "leaderboard.celery", "worker",
            "--queues", ",".join(dict.fromkeys(queues[k] for k in kinds)),
            "--concurrency", str(args.concurrency), "--pool", "prefork",
            "--hostname", name, "--loglevel", args.loglevel]  # fmt: skip


def main(argv: list[str]) -> None:
    args, extra = parse(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leaderboard.settings")
    from django.conf import settings

    cmd = celery_command(args, dict(settings.WORK_QUEUES)) + extra
    os.environ["WORKER_GPUS"] = str(args.gpus)
    for name, value in ONE_THREAD.items():
        os.environ.setdefault(name, value)
    sys.stdout.write(f"bin/worker: {' '.join(cmd[1:])}\n")
    sys.stdout.flush()
    os.chdir(ROOT)
    os.execv(sys.executable, cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
