"""gunicorn's settings for the site, the same in the app image (docker/compose.yml) and in
``manage.py demo``: ``gunicorn leaderboard.wsgi -c python:leaderboard.gunicorn_config``.

Threaded workers (``gthread``): the arbiter's ``timeout`` watches each worker's main loop, so
a long upload (a container image of up to 2 GiB) is not cut by it, while a body that stops
arriving is given up by the application after ``REQUEST_BODY_TIMEOUT`` seconds
(leaderboard.board.bodies) and its thread freed. Bodies over their track's limit are refused
unread (leaderboard.board.uploads). The environment variables below override the defaults.
"""

from __future__ import annotations

import os

bind = os.environ.get("WEB_BIND", "0.0.0.0:8000")
worker_class = "gthread"
workers = int(os.environ.get("WEB_WORKERS", "2"))
threads = int(os.environ.get("WEB_THREADS", "4"))
# A worker whose main loop answers nothing for this long is restarted.
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
# On a restart or stop, requests in flight get this long to finish.
graceful_timeout = int(os.environ.get("WEB_GRACEFUL_TIMEOUT", "30"))
keepalive = 5
# The request line and headers: a few kilobytes each, a hundred headers at most; anything
# longer is refused by gunicorn with a 4xx before the application sees it.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
accesslog = "-"
# No control socket (gunicornc): it would be one file in the home folder shared by every
# instance on the machine.
control_socket_disable = True
