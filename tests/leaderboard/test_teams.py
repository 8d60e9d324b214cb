"""Teams: the services and each of their refusals, the API's permissions (and that it names
members by user name only), entries made by a team, the board's team cell, and the pages."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import ProtectedError
from django.test import Client, override_settings
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from leaderboard.board.labels import ReservedWord
from leaderboard.board.models import Submission, Team, TeamInvitation, TeamMembership
from leaderboard.board.services.teams import (
    AlreadyInTeam,
    InvitationClosed,
    InvitationExpired,
    InvitationNotFound,
    InvitationTaken,
    LastOwner,
    NotTeamMember,
    NotTeamOwner,
    TeamError,
    TeamHasEntries,
    TeamNameTaken,
    invitation_accept,
    invitation_decline,
    member_remove,
    member_role_change,
    team_create,
    team_delete,
    team_invite,
    team_leave,
)
from tests.leaderboard.factories import EvaluationFactory, SubmissionFactory, UserFactory

pytestmark = pytest.mark.django_db


def _api_for(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def _entry_form(name: str, content: bytes, **extra) -> dict:
    return {
        "task": "in-hospital-mortality",
        "method_name": name,
        "modalities": "ehr",
        "training_data": "train and validation splits only",
        "file": SimpleUploadedFile("p.csv", content),
        **extra,
    }


@pytest.fixture
def owner():
    return UserFactory(username="olga", email="olga@uni.example")


@pytest.fixture
def team(owner):
    return team_create(creator=owner, name="Fusion Lab", description="Late fusion people.")


def _join(team, username: str, **kwargs):
    user = UserFactory(username=username, **kwargs)
    owner = team.memberships.get(role="owner").user
    invitation = team_invite(actor=owner, team=team, invitee=username)
    invitation_accept(user=user, token=invitation.token)
    return user


# --- services ------------------------------------------------------------------------------


def test_the_creator_owns_the_new_team(owner, team):
    assert team.slug == "fusion-lab" and team.created_by == owner
    assert TeamMembership.objects.get(user=owner).role == "owner"


def test_a_user_in_a_team_cannot_create_another(owner, team):
    with pytest.raises(AlreadyInTeam, match="You are in team Fusion Lab already"):
        team_create(creator=owner, name="Second")


def test_team_names_are_unique_without_regard_to_case(team):
    with pytest.raises(TeamNameTaken, match="exists already"):
        team_create(creator=UserFactory(), name="  fusion   LAB ")


@pytest.mark.parametrize(
    ("name", "error"),
    [("", TeamError), ("Platform Reference", ReservedWord), ("x" * 121, TeamError)],
)
def test_a_team_name_must_be_given_short_and_not_reserved(name, error):
    with pytest.raises(error) as info:
        team_create(creator=UserFactory(), name=name)
    assert info.value.field in ("name", "team_name")


def test_only_an_owner_invites(team):
    member = _join(team, "mia")
    with pytest.raises(NotTeamOwner, match="Only an owner of Fusion Lab can invite"):
        team_invite(actor=member, team=team, invitee="someone@example.org")


def test_invitations_name_an_existing_user_once_and_not_a_member(owner, team):
    with pytest.raises(InvitationNotFound, match='No user is named "ghost"'):
        team_invite(actor=owner, team=team, invitee="ghost")
    with pytest.raises(TeamError, match="not a valid e-mail address"):
        team_invite(actor=owner, team=team, invitee="bad@address@x")
    UserFactory(username="nia")
    team_invite(actor=owner, team=team, invitee="nia")
    with pytest.raises(InvitationTaken, match="open invitation"):
        team_invite(actor=owner, team=team, invitee="nia")
    with pytest.raises(TeamError, match="member of Fusion Lab already"):
        team_invite(actor=owner, team=team, invitee="olga")


def test_an_invitation_is_e_mailed_and_accepted_by_the_invited_user_only(owner, team):
    invited = UserFactory(username="ivy")
    stranger = UserFactory(username="sam")
    with pytest.raises(InvitationNotFound):
        invitation_accept(user=stranger, token="not-a-token")
    mail.outbox.clear()
    invitation = team_invite(actor=owner, team=team, invitee="ivy", team_page_url="http://x/")
    # The e-mail goes out once the invitation is committed (not inside the test's
    # transaction): the invitation is recorded, and only the invited user can use it.
    with pytest.raises(InvitationNotFound, match="No open invitation of yours"):
        invitation_accept(user=stranger, token=invitation.token)
    membership = invitation_accept(user=invited, token=invitation.token)
    assert membership.team == team and membership.role == "member"
    with pytest.raises(InvitationClosed, match="accepted already"):
        invitation_accept(user=invited, token=invitation.token)


def test_an_expired_invitation_is_refused(owner, team):
    invited = UserFactory(username="eli")
    invitation = team_invite(actor=owner, team=team, invitee="eli")
    TeamInvitation.objects.filter(pk=invitation.pk).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    with pytest.raises(InvitationExpired, match="expired on"):
        invitation_accept(user=invited, token=invitation.token)
    # A new invitation replaces the expired one.
    assert team_invite(actor=owner, team=team, invitee="eli").pk != invitation.pk


def test_a_user_in_a_team_cannot_accept_another_teams_invitation(owner, team):
    other_owner = UserFactory(username="otto")
    other = team_create(creator=other_owner, name="Other")
    invitation = team_invite(actor=other_owner, team=other, invitee="olga")
    with pytest.raises(AlreadyInTeam, match="leave it first to join Other"):
        invitation_accept(user=owner, token=invitation.token)


def test_an_invitation_by_address_needs_that_confirmed_address(owner, team):
    unconfirmed = UserFactory(username="una", email="una@lab.example", email_confirmed=False)
    confirmed = UserFactory(username="una2", email="Una2@Lab.example")
    by_address = team_invite(actor=owner, team=team, invitee="una@lab.example")
    with pytest.raises(InvitationNotFound):
        invitation_accept(user=unconfirmed, token=by_address.token)
    second = team_invite(actor=owner, team=team, invitee="una2@lab.example")
    invitation_accept(user=confirmed, token=second.token)
    assert TeamMembership.objects.get(user=confirmed).team == team


def test_declining_closes_the_invitation(owner, team):
    invited = UserFactory(username="dee")
    invitation = team_invite(actor=owner, team=team, invitee="dee")
    invitation_decline(user=invited, token=invitation.token)
    with pytest.raises(InvitationClosed, match="declined already"):
        invitation_accept(user=invited, token=invitation.token)


def test_the_only_owner_cannot_leave_while_others_remain(owner, team):
    member = _join(team, "max")
    with pytest.raises(LastOwner, match="only owner of Fusion Lab"):
        team_leave(user=owner)
    with pytest.raises(LastOwner):
        member_role_change(actor=owner, team=team, username="olga", role="member")
    member_role_change(actor=owner, team=team, username="max", role="owner")
    team_leave(user=owner)
    assert list(team.memberships.values_list("user__username", "role")) == [("max", "owner")]
    # The last member leaving a team without entries deletes it.
    team_leave(user=member)
    assert not Team.objects.filter(pk=team.pk).exists()
    with pytest.raises(NotTeamMember, match="not in a team"):
        team_leave(user=member)


def test_only_owners_remove_members_and_change_roles(owner, team):
    member = _join(team, "mo")
    _join(team, "ned")
    with pytest.raises(NotTeamOwner, match="remove members"):
        member_remove(actor=member, team=team, username="ned")
    with pytest.raises(NotTeamOwner, match="change roles"):
        member_role_change(actor=member, team=team, username="mo", role="owner")
    with pytest.raises(TeamError, match="is not a role"):
        member_role_change(actor=owner, team=team, username="mo", role="boss")
    with pytest.raises(NotTeamMember, match="ghost is not a member"):
        member_remove(actor=owner, team=team, username="ghost")
    member_remove(actor=owner, team=team, username="ned")
    assert sorted(team.memberships.values_list("user__username", flat=True)) == ["mo", "olga"]
    # A member removing themselves leaves.
    member_remove(actor=member, team=team, username="mo")
    assert list(team.memberships.values_list("user__username", flat=True)) == ["olga"]


def test_a_team_with_entries_is_not_deleted(owner, team):
    SubmissionFactory(owner=owner, team=team)
    with pytest.raises(TeamHasEntries, match="has 1 entry"):
        team_delete(actor=owner, team=team)
    with pytest.raises(ProtectedError):
        team.delete()


def test_only_an_owner_deletes_a_team_without_entries(owner, team):
    member = _join(team, "meg")
    with pytest.raises(NotTeamOwner, match="delete it"):
        team_delete(actor=member, team=team)
    team_delete(actor=owner, team=team)
    assert not TeamMembership.objects.filter(user__in=[owner, member]).exists()


# --- entries by a team ---------------------------------------------------------------------


def test_a_members_entry_is_the_teams_and_a_loners_is_their_own(benchmark, owner, team):
    r = _api_for(owner).post("/api/submissions/", _entry_form("A", b"stay_id,prediction\n1,0.1\n"))
    assert r.status_code == 201, r.json()
    assert r.json()["team"] == "Fusion Lab"
    sub = Submission.objects.get(public_id=r.json()["id"])
    assert sub.team == team and sub.team_name == "Fusion Lab"

    loner = UserFactory(username="lone")
    r = _api_for(loner).post("/api/submissions/", _entry_form("B", b"stay_id,prediction\n1,0.2\n"))
    assert r.status_code == 201 and r.json()["team"] == "lone"
    assert Submission.objects.get(public_id=r.json()["id"]).team is None


def test_a_team_name_sent_with_an_entry_must_be_the_owners_team(benchmark, owner, team):
    api = _api_for(owner)
    form = _entry_form("A", b"stay_id,prediction\n1,0.1\n", team_name="Someone Else")
    r = api.post("/api/submissions/", form)
    assert r.status_code == 400 and list(r.json()["errors"]) == ["team_name"]
    assert 'your team is "Fusion Lab", not "Someone Else"' in r.json()["detail"]
    loner = _api_for(UserFactory(username="solo"))
    r = loner.post(
        "/api/submissions/", _entry_form("B", b"stay_id,prediction\n1,0.2\n", team_name="X")
    )
    assert r.status_code == 400 and "you are in no team" in r.json()["detail"]
    r = api.post(
        "/api/submissions/",
        _entry_form("C", b"stay_id,prediction\n1,0.3\n", team_name="fusion lab"),
    )
    assert r.status_code == 201, r.json()
    assert Submission.objects.count() == 1


@override_settings(SUBMISSIONS_PER_DAY=5, TEAM_SUBMISSIONS_PER_DAY=2)
def test_the_teams_quota_binds_its_members_and_not_others(benchmark, owner, team):
    member = _join(team, "tom")
    for i, user in enumerate((owner, member)):
        body = f"stay_id,prediction\n1,0.{i + 1}\n".encode()
        assert (
            _api_for(user).post("/api/submissions/", _entry_form(f"T{i}", body)).status_code == 201
        )
    r = _api_for(member).post(
        "/api/submissions/", _entry_form("T9", b"stay_id,prediction\n1,0.9\n")
    )
    assert r.status_code == 429 and r.json()["code"] == "quota_exceeded"
    assert "Your team Fusion Lab has" in r.json()["detail"] and "limit of 2" in r.json()["detail"]
    # Leaving the team, tom submits alone against his own quota.
    team_leave(user=member)
    r = _api_for(member).post(
        "/api/submissions/", _entry_form("T9", b"stay_id,prediction\n1,0.9\n")
    )
    assert r.status_code == 201 and r.json()["team"] == "tom"


@override_settings(SUBMISSIONS_PER_DAY=1, TEAM_SUBMISSIONS_PER_DAY=5)
def test_each_member_keeps_their_own_quota_within_the_team(benchmark, owner, team):
    api = _api_for(owner)
    assert (
        api.post("/api/submissions/", _entry_form("A", b"stay_id,prediction\n1,0.1\n")).status_code
        == 201
    )
    r = api.post("/api/submissions/", _entry_form("B", b"stay_id,prediction\n1,0.2\n"))
    assert r.status_code == 429 and r.json()["detail"].startswith("You have made 1 submissions")


def test_the_board_shows_the_team_from_the_entrys_team_and_links_its_page(client, owner, team):
    ev = EvaluationFactory(
        submission__owner=owner, submission__team=team, submission__team_name="Old name"
    )
    task = ev.submission.task
    rows = client.get(f"{task.leaderboard_api_url}?format=json").json()["rows"]
    assert [(r["team"], r["team_slug"]) for r in rows] == [("Fusion Lab", "fusion-lab")]
    page = client.get(task.board_url).content.decode()
    assert '<a href="/teams/fusion-lab/">Fusion Lab</a>' in page


# --- API -----------------------------------------------------------------------------------


def test_the_api_creates_lists_and_shows_a_team(owner):
    api = _api_for(owner)
    assert api.get("/api/teams/").json() == {"results": []}
    r = api.post("/api/teams/", {"name": "Vision Group", "description": "CXR"}, format="json")
    assert r.status_code == 201, r.json()
    assert r.json()["slug"] == "vision-group" and r.json()["my_role"] == "owner"
    assert [m["username"] for m in r.json()["members"]] == ["olga"]
    assert [t["name"] for t in api.get("/api/teams/").json()["results"]] == ["Vision Group"]
    r = api.post("/api/teams/", {"name": "Another"}, format="json")
    assert r.status_code == 409 and r.json()["code"] == "already_in_team"
    r = _api_for(UserFactory()).post("/api/teams/", {"name": "vision GROUP"}, format="json")
    assert r.status_code == 409 and r.json()["code"] == "team_name_taken"
    r = _api_for(UserFactory()).post("/api/teams/", {"name": ""}, format="json")
    assert r.status_code == 400 and "name" in r.json()["errors"]


def test_members_are_named_by_user_name_to_members_only_and_never_by_address(anon, owner, team):
    _join(team, "amy", email="amy@private.example")
    member_view = _api_for(owner).get("/api/teams/fusion-lab/")
    assert {m["username"]: m["role"] for m in member_view.json()["members"]} == {
        "olga": "owner",
        "amy": "member",
    }
    stranger_view = _api_for(UserFactory(username="zed")).get("/api/teams/fusion-lab/")
    anonymous = anon.get("/api/teams/fusion-lab/")
    for r in (member_view, stranger_view, anonymous):
        assert r.status_code == 200 and "@" not in r.content.decode()
    assert stranger_view.json()["members"] is None and anonymous.json()["members"] is None
    assert stranger_view.json()["invitations"] is None
    assert anon.get("/api/teams/no-such-team/").status_code == 404


def test_a_non_owner_cannot_invite_or_see_invitations_through_the_api(owner, team):
    member = _join(team, "ken")
    r = _api_for(member).post("/api/teams/fusion-lab/invitations/", {"invitee": "x@y.example"})
    assert r.status_code == 403 and r.json()["code"] == "not_team_owner"
    assert _api_for(member).get("/api/teams/fusion-lab/invitations/").status_code == 403
    outsider = _api_for(UserFactory(username="out"))
    assert outsider.get("/api/teams/fusion-lab/invitations/").status_code == 403
    assert TeamInvitation.objects.count() == 1  # ken's, accepted


def test_invitations_through_the_api_reach_only_the_person_invited(owner, team):
    api = _api_for(owner)
    ria = UserFactory(username="ria", email="ria@lab.example")
    r = api.post("/api/teams/fusion-lab/invitations/", {"invitee": "ria@lab.example"})
    assert r.status_code == 201 and r.json()["invited"] == "ria@lab.example"
    assert [i["invited"] for i in api.get("/api/teams/fusion-lab/invitations/").json()] == [
        "ria@lab.example"
    ]
    # Someone else sees none of it, and cannot use its token.
    other = _api_for(UserFactory(username="ola"))
    assert other.get("/api/invitations/").json() == []
    token = TeamInvitation.objects.get().token
    r = other.post(f"/api/invitations/{token}/accept/")
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    # Ria sees it (by her confirmed address) and accepts it.
    mine = _api_for(ria).get("/api/invitations/").json()
    assert [(i["team"], i["invited_by"]) for i in mine] == [("Fusion Lab", "olga")]
    assert "@" not in json.dumps(mine)
    r = _api_for(ria).post(mine[0]["accept_url"])
    assert r.status_code == 200 and r.json()["my_role"] == "member"
    r = _api_for(ria).post(f"/api/invitations/{token}/decline/")
    assert r.status_code == 409 and r.json()["code"] == "invitation_closed"


def test_roles_removal_and_leaving_through_the_api(owner, team):
    _join(team, "bea")
    member = _join(team, "cal")
    api = _api_for(owner)
    r = _api_for(member).patch(
        "/api/teams/fusion-lab/members/bea/", {"role": "owner"}, format="json"
    )
    assert r.status_code == 403
    r = api.patch("/api/teams/fusion-lab/members/bea/", {"role": "owner"}, format="json")
    assert r.status_code == 200 and r.json() == {**r.json(), "username": "bea", "role": "owner"}
    r = api.patch("/api/teams/fusion-lab/members/bea/", {"role": "chief"}, format="json")
    assert r.status_code == 400 and "role" in r.json()["errors"]
    assert api.delete("/api/teams/fusion-lab/members/cal/").status_code == 204
    r = _api_for(member).post("/api/teams/fusion-lab/leave/")
    assert r.status_code == 403 and r.json()["code"] == "not_team_member"
    assert api.post("/api/teams/fusion-lab/leave/").status_code == 204
    assert list(team.memberships.values_list("user__username", flat=True)) == ["bea"]
    r = api.delete("/api/teams/fusion-lab/")
    assert r.status_code == 403 and r.json()["code"] == "not_team_owner"


def test_the_team_api_is_in_the_openapi_schema(anon):
    schema = anon.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    for path in (
        "/api/teams/",
        "/api/teams/{slug}/",
        "/api/teams/{slug}/invitations/",
        "/api/teams/{slug}/members/{username}/",
        "/api/teams/{slug}/leave/",
        "/api/invitations/",
        "/api/invitations/{token}/accept/",
        "/api/invitations/{token}/decline/",
    ):
        assert path in schema["paths"], path


# --- pages ---------------------------------------------------------------------------------


def test_the_team_page_creates_a_team_and_refuses_a_reserved_name(owner):
    browser = Client()
    assert browser.get("/me/team/").status_code == 302  # log in first
    browser.force_login(UserFactory(username="pia"))
    page = browser.get("/me/team/").content.decode()
    assert "You are not in a team" in page and 'href="/me/team/"' in page  # in the header
    r = browser.post("/me/team/", {"action": "create", "name": "Platform Reference"})
    assert r.status_code == 400
    assert "team name contains &#x27;platform reference&#x27;" in r.content.decode()
    r = browser.post("/me/team/", {"action": "create", "name": "Pia's Lab"}, follow=True)
    assert r.status_code == 200 and "Team Pia&#x27;s Lab was created" in r.content.decode()
    assert TeamMembership.objects.get(user__username="pia").role == "owner"


def test_the_team_page_invites_accepts_and_leaves(owner, team):
    olga, ivan = Client(), Client()
    olga.force_login(owner)
    ivan_user = UserFactory(username="ivan")
    ivan.force_login(ivan_user)
    r = olga.post("/me/team/", {"action": "invite", "invitee": "ivan"}, follow=True)
    assert "ivan was invited to Fusion Lab" in r.content.decode()
    page = ivan.get("/me/team/").content.decode()
    assert "Invitations for you" in page and "Fusion Lab" in page
    token = TeamInvitation.objects.get().token
    r = ivan.post("/me/team/", {"action": "accept", "token": token}, follow=True)
    assert "You joined Fusion Lab." in r.content.decode()
    r = ivan.post("/me/team/", {"action": "invite", "invitee": "someone"})
    assert r.status_code == 403 and "Only an owner of Fusion Lab can invite" in r.content.decode()
    r = ivan.post("/me/team/", {"action": "leave"}, follow=True)
    assert "You left Fusion Lab." in r.content.decode()
    assert not TeamMembership.objects.filter(user=ivan_user).exists()


def test_a_teams_public_page_lists_its_published_entries_only(anon, owner, team):
    shown = EvaluationFactory(submission__owner=owner, submission__team=team).submission
    private = SubmissionFactory(
        owner=owner, team=team, status="scored", visibility="private", method_name="Secret run"
    )
    page = Client().get("/teams/fusion-lab/").content.decode()
    assert shown.method_name in page and private.method_name not in page
    assert "Late fusion people." in page and "olga" not in page  # members: members only
    member_page = Client()
    member_page.force_login(owner)
    assert "olga" in member_page.get("/teams/fusion-lab/").content.decode()
    assert Client().get("/teams/nobody/").status_code == 404


def test_owners_change_the_description_and_withdraw_invitations(owner, team):
    member = _join(team, "vic")
    r = _api_for(member).patch("/api/teams/fusion-lab/", {"description": "x"}, format="json")
    assert r.status_code == 403 and r.json()["code"] == "not_team_owner"
    r = _api_for(owner).patch("/api/teams/fusion-lab/", {"description": "CXR too"}, format="json")
    assert r.status_code == 200 and r.json()["description"] == "CXR too"
    invitation = team_invite(actor=owner, team=team, invitee="wes@example.org")
    url = f"/api/teams/fusion-lab/invitations/{invitation.pk}/"
    assert _api_for(member).delete(url).status_code == 403
    assert _api_for(owner).delete(url).status_code == 204
    r = _api_for(owner).delete(url)
    assert r.status_code == 404 and "no open invitation" in r.json()["detail"]


@override_settings(TEAM_SUBMISSIONS_PER_DAY=7, TEAM_FAILED_SUBMISSIONS_PER_DAY=9)
def test_the_limits_endpoint_states_the_teams_limits(anon):
    body = anon.get("/api/limits/").json()
    assert body["team_submissions_per_day_per_task"] == 7
    assert body["team_failed_submissions_per_day_per_task"] == 9
