"""Reads of teams: a user's team, a team's members and invitations, its published entries."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone

from leaderboard.board.models import Submission, Team, TeamInvitation, TeamMembership
from leaderboard.board.selectors.identity import account_for


def team_membership_for(*, user: Any) -> TeamMembership | None:
    """The user's membership (with its team), or None."""
    if not getattr(user, "is_authenticated", False):
        return None
    return TeamMembership.objects.filter(user=user).select_related("team").first()


def team_get(*, slug: str) -> Team:
    team = Team.objects.filter(slug=slug).first()
    if team is None:
        raise Http404("no team has this address")
    return team


def team_members(*, team: Team) -> QuerySet[TeamMembership]:
    """Owners first, then by when they joined."""
    return (
        TeamMembership.objects.filter(team=team)
        .select_related("user")
        .order_by("-role", "joined_at", "id")  # "owner" > "member"
    )


def can_see_members(*, team: Team, viewer: Any) -> bool:
    """A team's members (user names and roles) are shown to its members and the organizers;
    others see its name, description and published entries."""
    if not getattr(viewer, "is_authenticated", False):
        return False
    return bool(viewer.is_staff or TeamMembership.objects.filter(team=team, user=viewer).exists())


def _open(qs: QuerySet[TeamInvitation]) -> QuerySet[TeamInvitation]:
    return qs.filter(
        accepted_at__isnull=True, declined_at__isnull=True, expires_at__gt=timezone.now()
    )


def invitation_list_for_user(*, user: Any) -> QuerySet[TeamInvitation]:
    """The open invitations meant for ``user``: by user name, or by e-mail address when it
    is the user's confirmed address."""
    account = account_for(user)
    mine = Q(invited_user=user)
    if account is not None and account.is_confirmed:
        mine |= Q(invited_user__isnull=True, email__iexact=account.email)
    return _open(TeamInvitation.objects.filter(mine)).select_related("team", "invited_by")


def invitation_list_for_team(*, team: Team) -> QuerySet[TeamInvitation]:
    """A team's open invitations (for its owners)."""
    return _open(TeamInvitation.objects.filter(team=team)).select_related(
        "invited_user", "invited_by"
    )


def team_published_entries(*, team: Team) -> QuerySet[Submission]:
    """The team's entries on the boards, newest first (no private or hidden ones)."""
    return (
        Submission.objects.filter(
            team=team,
            status=Submission.Status.PUBLISHED,
            visibility=Submission.Visibility.PUBLIC,
        )
        .select_related("task__benchmark__suite", "track")
        .order_by("-published_at", "-id")
    )
