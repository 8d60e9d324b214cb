"""Teams run by their members: creating one, invitations, roles, leaving and removing.

A user is in one team at most (its entries and the team's daily quota have one holder).
The creator of a team is its owner; owners invite (by user name or e-mail address), remove
members and change roles; a team always keeps an owner while it has members.

Locks: a service changing who is in a team locks the user rows concerned (in id order)
before the team's row, as :func:`~leaderboard.board.services.submissions.submission_create`
does, so a submission and a change of membership never deadlock and a submission sees the
membership as it is when it counts the team's quota.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from leaderboard.board.errors import InvalidState, NotAllowed, ServiceError
from leaderboard.board.labels import check_participant_text
from leaderboard.board.models import (
    Submission,
    Team,
    TeamInvitation,
    TeamMembership,
    TeamRole,
    team_slug_for,
)
from leaderboard.board.services.identity import account_for

log = logging.getLogger(__name__)

# Open invitations a team may have at once: invitations send e-mail, and a team is not a
# mailing list.
MAX_OPEN_INVITATIONS = 20


class TeamError(ServiceError):
    code = "team_invalid"


class AlreadyInTeam(ServiceError):
    status_code = 409
    code = "already_in_team"


class TeamNameTaken(ServiceError):
    status_code = 409
    code = "team_name_taken"


class NotTeamOwner(NotAllowed):
    code = "not_team_owner"


class NotTeamMember(NotAllowed):
    code = "not_team_member"


class LastOwner(InvalidState):
    code = "last_owner"


class TeamHasEntries(InvalidState):
    code = "team_has_entries"


class InvitationNotFound(ServiceError):
    status_code = 404
    code = "not_found"


class InvitationClosed(InvalidState):
    code = "invitation_closed"


class InvitationExpired(ServiceError):
    status_code = 410
    code = "invitation_expired"


class InvitationTaken(ServiceError):
    status_code = 409
    code = "invitation_exists"


ERR_NOT_FOUND = (
    "No open invitation of yours has this token: it may be meant for another account, or "
    "the team may have withdrawn it. Open your Team page (or GET /api/invitations/) for the "
    "invitations you have."
)


def _lock_users(*users: Any) -> None:
    ids = sorted({u.pk for u in users})
    list(get_user_model().objects.select_for_update().filter(pk__in=ids).order_by("pk"))


def _lock_team(team: Team) -> Team:
    locked = Team.objects.select_for_update().filter(pk=team.pk).first()
    if locked is None:
        raise InvalidState("This team no longer exists.")
    return locked


def _membership(*, user: Any, team: Team) -> TeamMembership | None:
    return TeamMembership.objects.filter(user=user, team=team).first()


def _check_owner(*, actor: Any, team: Team, doing: str) -> TeamMembership:
    membership = _membership(user=actor, team=team)
    if membership is None or not membership.is_owner:
        raise NotTeamOwner(f"Only an owner of {team.name} can {doing}.")
    return membership


def _check_not_in_team(user: Any, *, doing: str) -> None:
    current = TeamMembership.objects.filter(user=user).select_related("team").first()
    if current is not None:
        raise AlreadyInTeam(
            f"You are in team {current.team.name} already, and a user is in one team at a "
            f"time: leave it first to {doing}."
        )


def check_team_fields(*, name: str, description: str = "") -> str:
    """The team name as stored (spaces collapsed), or a 400 saying what to change."""
    name = " ".join(name.split())
    if not name:
        raise TeamError("Give the team a name.", field="name")
    if len(name) > 120:
        raise TeamError("A team name has at most 120 characters.", field="name")
    if len(description) > 2000:
        raise TeamError("A team description has at most 2,000 characters.", field="description")
    check_participant_text({"team_name": name, "description": description})
    return name


def team_create(*, creator: Any, name: str, description: str = "") -> Team:
    """A new team with ``creator`` as its owner; refused if the creator is in a team."""
    name = check_team_fields(name=name, description=description)
    try:
        with transaction.atomic():
            _lock_users(creator)
            _check_not_in_team(creator, doing="create another")
            if Team.objects.filter(name__iexact=name).exists():
                raise TeamNameTaken(
                    f'A team named "{name}" exists already (names are compared without '
                    "regard to case). Choose another name.",
                    field="name",
                )
            taken = Team.objects.filter
            team = Team.objects.create(
                name=name,
                slug=team_slug_for(name, lambda s: taken(slug=s).exists()),
                description=description.strip(),
                created_by=creator,
            )
            TeamMembership.objects.create(team=team, user=creator, role=TeamRole.OWNER)
    except IntegrityError as exc:
        # A team of that name (or slug) was made at the same moment.
        raise TeamNameTaken(
            f'A team named "{name}" was just created by someone else. Choose another name.',
            field="name",
        ) from exc
    return team


def team_update(*, actor: Any, team: Team, description: str) -> Team:
    """Change the team's description (owners)."""
    check_team_fields(name=team.name, description=description)
    with transaction.atomic():
        team = _lock_team(team)
        _check_owner(actor=actor, team=team, doing="change its description")
        team.description = description.strip()
        team.save(update_fields=["description"])
    return team


def _find_invitee(text: str) -> tuple[Any | None, str]:
    """(user, "") for a user name, (None, address) for an e-mail address."""
    text = text.strip()
    if not text:
        raise TeamError("Say whom to invite: a user name or an e-mail address.", field="invitee")
    if "@" in text:
        try:
            validate_email(text)
        except ValidationError as exc:
            raise TeamError(
                f'"{text}" is not a valid e-mail address; give an address or a user name.',
                field="invitee",
            ) from exc
        return None, text.lower()
    user = get_user_model().objects.filter(username=text, is_active=True).first()
    if user is None:
        raise InvitationNotFound(
            f'No user is named "{text}". Check the spelling (user names are case-sensitive), '
            "or invite them by e-mail address.",
            field="invitee",
        )
    return user, ""


def team_invite(*, actor: Any, team: Team, invitee: str, team_page_url: str = "") -> TeamInvitation:
    """Invite a user, by user name or e-mail address, to ``team`` (owners only). The
    invitation expires after ``TEAM_INVITATION_DAYS``; it is e-mailed to the person invited.

    An address is not looked up: the answer is the same whether or not an account has it,
    and whoever accepts must have it as their confirmed address."""
    now = timezone.now()
    with transaction.atomic():
        team = _lock_team(team)
        _check_owner(actor=actor, team=team, doing="invite people")
        user, email = _find_invitee(invitee)
        if user is not None and (user.pk == actor.pk or _membership(user=user, team=team)):
            raise TeamError(f"{user.get_username()} is a member of {team.name} already.")
        own = account_for(actor)
        if email and own is not None and own.email.lower() == email:
            raise TeamError("That is your own address: you are a member already.")
        open_invitations = TeamInvitation.objects.filter(
            team=team, accepted_at__isnull=True, declined_at__isnull=True
        )
        same = (
            open_invitations.filter(invited_user=user)
            if user
            else open_invitations.filter(email__iexact=email)
        )
        # An expired invitation makes way for a new one.
        same.filter(expires_at__lte=now).delete()
        if same.exists():
            raise InvitationTaken(
                f"{invitee.strip()} has an open invitation to {team.name} already.",
                field="invitee",
            )
        if open_invitations.filter(expires_at__gt=now).count() >= MAX_OPEN_INVITATIONS:
            raise TeamError(
                f"{team.name} has {MAX_OPEN_INVITATIONS} open invitations, the most a team may "
                "have: withdraw some, or wait until they are answered."
            )
        invitation = TeamInvitation.objects.create(
            team=team,
            invited_user=user,
            email=email,
            invited_by=actor,
            expires_at=now + timedelta(days=settings.TEAM_INVITATION_DAYS),
        )
        transaction.on_commit(lambda: _send_invitation(invitation, team_page_url))
    return invitation


def _send_invitation(invitation: TeamInvitation, team_page_url: str) -> None:
    to = invitation.email
    if not to and invitation.invited_user is not None:
        account = account_for(invitation.invited_user)
        to = account.email if account else invitation.invited_user.email
    if not to:
        return
    who = invitation.invited_by.get_username() if invitation.invited_by else "An owner"
    where = f"on your Team page:\n\n{team_page_url}\n\n" if team_page_url else "on your Team page. "
    try:
        send_mail(
            subject=f"An invitation to join team {invitation.team.name} on the MedMod leaderboard",
            message=(
                f"{who} invited you to join team {invitation.team.name} on the MedMod "
                f"leaderboard. Log in to accept or decline it {where}"
                f"The invitation is open until {invitation.expires_at:%Y-%m-%d %H:%M} UTC. "
                "If you do not know this team, ignore this message.\n"
            ),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[to],
        )
    except Exception:
        log.warning("could not send the invitation %s by e-mail", invitation.pk)


def invitation_is_for(invitation: TeamInvitation, user: Any) -> bool:
    """Whether ``user`` is the person invited: by user name, or by e-mail address when it
    is the user's confirmed address."""
    if invitation.invited_user_id is not None:
        return bool(invitation.invited_user_id == user.pk)
    account = account_for(user)
    return (
        account is not None
        and account.is_confirmed
        and account.email.lower() == invitation.email.lower()
    )


def _open_invitation_for(*, user: Any, token: str) -> TeamInvitation:
    """``user``'s open invitation of this token, its team's row and its own locked (in that
    order, as the owners' services lock them)."""
    found = TeamInvitation.objects.filter(token=token).first() if token else None
    # Another person's invitation is answered as if there were none.
    if found is None or not invitation_is_for(found, user):
        raise InvitationNotFound(ERR_NOT_FOUND)
    _lock_team(found.team)
    invitation = TeamInvitation.objects.select_for_update().filter(pk=found.pk).first()
    if invitation is None:
        raise InvitationNotFound(ERR_NOT_FOUND)
    if not invitation.is_open:
        state = "accepted" if invitation.accepted_at else "declined"
        raise InvitationClosed(f"This invitation to {invitation.team.name} was {state} already.")
    if invitation.is_expired():
        raise InvitationExpired(
            f"This invitation to {invitation.team.name} expired on "
            f"{invitation.expires_at:%Y-%m-%d %H:%M} UTC. Ask an owner of the team for a "
            "new one."
        )
    return invitation


def invitation_accept(*, user: Any, token: str) -> TeamMembership:
    """Join the team of an open invitation of ``user``'s; refused when the user is in a
    team already or the invitation expired."""
    with transaction.atomic():
        _lock_users(user)
        invitation = _open_invitation_for(user=user, token=token)
        _check_not_in_team(user, doing=f"join {invitation.team.name}")
        membership = TeamMembership.objects.create(
            team=invitation.team, user=user, role=TeamRole.MEMBER
        )
        invitation.accepted_at = timezone.now()
        invitation.accepted_by = user
        invitation.save(update_fields=["accepted_at", "accepted_by"])
    return membership


def invitation_decline(*, user: Any, token: str) -> TeamInvitation:
    """Turn down an open invitation of ``user``'s."""
    with transaction.atomic():
        invitation = _open_invitation_for(user=user, token=token)
        invitation.declined_at = timezone.now()
        invitation.save(update_fields=["declined_at"])
    return invitation


def invitation_withdraw(*, actor: Any, team: Team, invitation_id: int) -> None:
    """Take back an open invitation of ``team`` (owners)."""
    with transaction.atomic():
        team = _lock_team(team)
        _check_owner(actor=actor, team=team, doing="withdraw its invitations")
        deleted, _ = TeamInvitation.objects.filter(
            pk=invitation_id, team=team, accepted_at__isnull=True, declined_at__isnull=True
        ).delete()
        if not deleted:
            raise InvitationNotFound(f"{team.name} has no open invitation with id {invitation_id}.")


def _leave(*, team: Team, membership: TeamMembership) -> None:
    """Remove a membership, keeping an owner while others remain; a team left empty and
    without entries goes away with its last member."""
    others = TeamMembership.objects.filter(team=team).exclude(pk=membership.pk)
    if membership.is_owner and others.exists() and not others.filter(role=TeamRole.OWNER).exists():
        raise LastOwner(
            f"You are the only owner of {team.name}: make another member an owner before "
            "leaving (a team keeps an owner while it has members)."
        )
    membership.delete()
    if not others.exists() and not Submission.objects.filter(team=team).exists():
        team.delete()


def team_leave(*, user: Any) -> Team:
    """Leave one's team. The team's entries stay the team's."""
    with transaction.atomic():
        _lock_users(user)
        membership = TeamMembership.objects.filter(user=user).select_related("team").first()
        if membership is None:
            raise NotTeamMember("You are not in a team.")
        team = _lock_team(membership.team)
        _leave(team=team, membership=membership)
    return team


def member_remove(*, actor: Any, team: Team, username: str) -> None:
    """Remove a member from ``team`` (owners; a member removing themselves leaves)."""
    target = get_user_model().objects.filter(username=username).first()
    with transaction.atomic():
        _lock_users(actor, *([target] if target else []))
        team = _lock_team(team)
        if target is not None and target.pk == actor.pk:
            membership = _membership(user=actor, team=team)
            if membership is None:
                raise NotTeamMember(f"You are not a member of {team.name}.")
            _leave(team=team, membership=membership)
            return
        _check_owner(actor=actor, team=team, doing="remove members")
        membership = _membership(user=target, team=team) if target else None
        if membership is None:
            raise NotTeamMember(f"{username} is not a member of {team.name}.", field="username")
        membership.delete()


def member_role_change(*, actor: Any, team: Team, username: str, role: str) -> TeamMembership:
    """Make a member an owner or a member (owners); a team keeps at least one owner."""
    if role not in TeamRole.values:
        raise TeamError(
            f'"{role}" is not a role: a member is an "owner" or a "member".', field="role"
        )
    with transaction.atomic():
        team = _lock_team(team)
        _check_owner(actor=actor, team=team, doing="change roles")
        membership = (
            TeamMembership.objects.filter(team=team, user__username=username)
            .select_related("user")
            .first()
        )
        if membership is None:
            raise NotTeamMember(f"{username} is not a member of {team.name}.", field="username")
        if (
            membership.is_owner
            and role != TeamRole.OWNER
            and not TeamMembership.objects.filter(team=team, role=TeamRole.OWNER)
            .exclude(pk=membership.pk)
            .exists()
        ):
            raise LastOwner(
                f"{username} is the only owner of {team.name}: make another member an owner "
                "first (a team keeps an owner while it has members)."
            )
        membership.role = role
        membership.save(update_fields=["role"])
    return membership


def team_delete(*, actor: Any, team: Team) -> None:
    """Delete a team that has no entries (owners); its members are then in no team."""
    with transaction.atomic():
        team = _lock_team(team)
        _check_owner(actor=actor, team=team, doing="delete it")
        n = Submission.objects.filter(team=team).count()
        if n:
            raise TeamHasEntries(
                f"{team.name} has {n} entr{'y' if n == 1 else 'ies'}, which stay under its "
                "name: a team with entries cannot be deleted. Its members may leave it instead."
            )
        team.delete()
