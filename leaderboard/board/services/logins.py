"""Failed logins and lockout, the same for the web form and the API token endpoint.

Each wrong password is counted twice in the shared cache: against the user name tried and
against the client's address. When either count reaches its limit (``LOGIN_MAX_FAILURES``
per user name, ``LOGIN_MAX_FAILURES_PER_CLIENT`` per address) within
``LOGIN_FAILURE_WINDOW`` seconds, that user name or address is locked out for
``LOGIN_LOCKOUT_SECONDS``: every login attempt is refused, the right password included,
without the password being checked. The cache is Redis in production, so every web process
sees the same counts.
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from leaderboard.board.errors import ServiceError

LOCKED_MESSAGE = (
    "Too many failed logins {whom}: logins are refused for {wait}, even with the right "
    "password. Try again after that."
)


class LoginLocked(ServiceError):
    status_code = 429
    code = "login_locked"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def client_address(request: Any) -> str:
    """The client's address as the API throttles see it (``REMOTE_ADDR``, or the
    ``X-Forwarded-For`` entry chosen by DRF's ``NUM_PROXIES`` behind a proxy)."""
    return BaseThrottle().get_ident(request) or "unknown"


def _subjects(username: str, client: str) -> list[tuple[str, str, int]]:
    name = hashlib.sha256(username.strip().casefold().encode()).hexdigest()[:32]
    return [
        ("user", name, settings.LOGIN_MAX_FAILURES),
        ("client", hashlib.sha256(client.encode()).hexdigest()[:32], settings.LOGIN_MAX_FAILURES_PER_CLIENT),
    ]  # fmt: skip


def _wait_text(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minutes"


def check_login_allowed(*, username: str, client: str) -> None:
    """Raise :class:`LoginLocked` (429) while the user name or the address is locked."""
    now = time.time()
    for kind, ident, _limit in _subjects(username, client):
        until = cache.get(f"login-lock:{kind}:{ident}")
        if until is not None and until > now:
            wait = max(1, math.ceil(until - now))
            whom = "for this user name" if kind == "user" else "from your address"
            raise LoginLocked(
                LOCKED_MESSAGE.format(whom=whom, wait=_wait_text(wait)), retry_after=wait
            )


def login_failed(*, username: str, client: str) -> None:
    """Count a wrong password; lock the user name or the address at its limit."""
    window = settings.LOGIN_FAILURE_WINDOW
    lockout = settings.LOGIN_LOCKOUT_SECONDS
    for kind, ident, limit in _subjects(username, client):
        key = f"login-fail:{kind}:{ident}"
        cache.add(key, 0, timeout=window)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr: a new window
            cache.set(key, 1, timeout=window)
            count = 1
        if count >= limit:
            cache.set(f"login-lock:{kind}:{ident}", time.time() + lockout, timeout=lockout)
            cache.delete(key)  # after the lockout, a new window of attempts


def login_succeeded(*, username: str, client: str) -> None:
    """A right password: the user name's failures are forgotten (the address's are not, so
    that one good account does not reset a guessing run from the same place)."""
    kind, ident, _limit = _subjects(username, client)[0]
    cache.delete(f"login-fail:{kind}:{ident}")
