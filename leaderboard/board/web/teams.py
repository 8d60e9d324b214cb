"""The Team page (create a team, members, invitations, leaving) and each team's public page."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from leaderboard.board.errors import ServiceError
from leaderboard.board.models import TeamRole
from leaderboard.board.selectors.teams import (
    can_see_members,
    invitation_list_for_team,
    invitation_list_for_user,
    team_get,
    team_members,
    team_membership_for,
    team_published_entries,
)
from leaderboard.board.services.teams import (
    invitation_accept,
    invitation_decline,
    invitation_withdraw,
    member_remove,
    member_role_change,
    team_create,
    team_delete,
    team_invite,
    team_leave,
)


class TeamCreateForm(forms.Form):
    name = forms.CharField(max_length=120, label="Team name")
    description = forms.CharField(
        max_length=2000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Who you are and what you work on; shown on the team's public page.",
    )


class InviteForm(forms.Form):
    invitee = forms.CharField(
        max_length=254,
        label="Invite",
        help_text="A user name, or an e-mail address (whoever accepts must have confirmed it).",
    )


def _act(request: HttpRequest, action: str) -> str:
    """Run one action of the Team page's forms; the message to show."""
    post = request.POST
    user = request.user
    membership = team_membership_for(user=user)
    team = membership.team if membership else None
    if action == "accept":
        joined = invitation_accept(user=user, token=post.get("token", ""))
        return f"You joined {joined.team.name}."
    if action == "decline":
        declined = invitation_decline(user=user, token=post.get("token", ""))
        return f"You declined the invitation to {declined.team.name}."
    if team is None:
        raise ServiceError("You are not in a team: create one, or accept an invitation.")
    if action == "invite":
        form = InviteForm(post)
        if not form.is_valid():
            raise ServiceError("Say whom to invite: a user name or an e-mail address.")
        invitee = form.cleaned_data["invitee"]
        team_invite(
            actor=user,
            team=team,
            invitee=invitee,
            team_page_url=request.build_absolute_uri(reverse("team")),
        )
        return f"{invitee.strip()} was invited to {team.name}."
    if action == "withdraw":
        raw = post.get("invitation", "")
        if not raw.isdigit():
            raise ServiceError("Choose an invitation to withdraw.")
        invitation_withdraw(actor=user, team=team, invitation_id=int(raw))
        return "The invitation was withdrawn."
    if action == "role":
        username, role = post.get("username", ""), post.get("role", "")
        member_role_change(actor=user, team=team, username=username, role=role)
        return f"{username} is now {'an owner' if role == TeamRole.OWNER else 'a member'}."
    if action == "remove":
        username = post.get("username", "")
        member_remove(actor=user, team=team, username=username)
        return f"{username} was removed from {team.name}."
    if action == "leave":
        team_leave(user=user)
        return f"You left {team.name}."
    if action == "delete":
        team_delete(actor=user, team=team)
        return f"Team {team.name} was deleted."
    raise ServiceError(
        "Unknown action: the Team page's buttons send accept, decline, invite, withdraw, "
        "role, remove, leave or delete."
    )


@login_required
def team_page(request: HttpRequest) -> HttpResponse:
    """Your team: create one or accept an invitation; members, invitations and leaving."""
    create_form = TeamCreateForm()
    status = 200
    if request.method == "POST":
        action = request.POST.get("action", "")
        try:
            if action == "create":
                create_form = TeamCreateForm(request.POST)
                if create_form.is_valid():
                    created = team_create(creator=request.user, **create_form.cleaned_data)
                    messages.success(request, f"Team {created.name} was created; you own it.")
                    return redirect("team")
                status = 400
            else:
                messages.success(request, _act(request, action))
                return redirect("team")
        except ServiceError as exc:
            if action == "create":
                field = exc.field if exc.field in create_form.fields else None
                create_form.add_error(field, exc.message)
            else:
                messages.error(request, exc.message)
            status = exc.status_code if exc.status_code < 500 else 400
    membership = team_membership_for(user=request.user)
    team = membership.team if membership else None
    is_owner = bool(membership and membership.is_owner)
    return render(
        request,
        "board/team.html",
        {
            "membership": membership,
            "team": team,
            "is_owner": is_owner,
            "members": list(team_members(team=team)) if team else [],
            "team_invitations": list(invitation_list_for_team(team=team))
            if team and is_owner
            else [],
            "my_invitations": list(invitation_list_for_user(user=request.user)),
            "entries": list(team_published_entries(team=team)[:50]) if team else [],
            "has_entries": bool(team and team.submissions.exists()),
            "create_form": create_form,
            "invite_form": InviteForm(),
            "roles": TeamRole.choices,
        },
        status=status,
    )


def team_public(request: HttpRequest, slug: str) -> HttpResponse:
    """A team's public page: its name, description and published entries. Its members are
    listed for its members and the organizers only."""
    team = team_get(slug=slug)
    show_members = can_see_members(team=team, viewer=request.user)
    return render(
        request,
        "board/team_public.html",
        {
            "team": team,
            "entries": list(team_published_entries(team=team)[:200]),
            "members": list(team_members(team=team)) if show_members else None,
        },
    )
