"""Model signals, thin: a saved or deleted entry or run marks the cached boards changed."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save

from leaderboard.board.models import Evaluation, Submission
from leaderboard.board.services.boards import board_changed


def _changed(sender: Any, **kwargs: Any) -> None:
    board_changed()


def connect() -> None:
    for model in (Submission, Evaluation):
        post_save.connect(
            _changed, sender=model, dispatch_uid=f"board-changed-save-{model.__name__}"
        )
        post_delete.connect(
            _changed, sender=model, dispatch_uid=f"board-changed-delete-{model.__name__}"
        )
