"""Reads of a user's account (e-mail address and whether it is confirmed)."""

from __future__ import annotations

from typing import Any

from leaderboard.board.models import Account


def account_for(user: Any) -> Account | None:
    if not getattr(user, "is_authenticated", False):
        return None
    try:
        return user.account
    except Account.DoesNotExist:
        return None
