"""WSGI entry point: ``gunicorn leaderboard.wsgi -c python:leaderboard.gunicorn_config``.

Request bodies are read by :class:`leaderboard.board.bodies.BodyGuard` first: within the limit
of their track and with a timeout, before Django parses them.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leaderboard.settings")

django_application = get_wsgi_application()

from leaderboard.board.bodies import BodyGuard  # noqa: E402 (after Django is set up)

application = BodyGuard(django_application)
