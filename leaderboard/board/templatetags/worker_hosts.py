"""``{% waiting_for sub as waiting %}``: what an entry in the queue waits for beyond its
turn (a GPU worker), for the entry page's status line."""

from __future__ import annotations

from django import template

from leaderboard.board.models import Submission
from leaderboard.board.selectors.worker_hosts import submission_waiting_for

register = template.Library()


@register.simple_tag
def waiting_for(submission: Submission) -> str:
    return submission_waiting_for(submission=submission)
