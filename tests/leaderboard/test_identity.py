"""Sybil resistance: sign-up confirms an e-mail address before an account can submit, the
daily quota is shared by the accounts of one verified identity and by a team, and logins
(web form and API token endpoint) are locked out after repeated wrong passwords."""

from __future__ import annotations

import re
import time
from unittest import mock

import pytest
from django.core import mail, signing
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, override_settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from leaderboard.board.models import Account, Submission, Team, TeamMembership
from leaderboard.board.services.baselines import reference_user
from leaderboard.board.services.identity import (
    CONFIRM_SALT,
    email_identity,
    is_verified,
    quota_holder_ids,
)
from tests.leaderboard.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "a-Strong-pass-42"


def _signup(client: Client, username: str, email: str):
    return client.post(
        "/accounts/signup/",
        {"username": username, "email": email, "password1": PASSWORD, "password2": PASSWORD},
    )


def _link(message) -> str:
    match = re.search(r"https?://\S+/accounts/confirm/(\S+)/", message.body)
    assert match, message.body
    return match.group(0)


def _api_form(name: str, content: bytes = b"stay_id,prediction\n1,0.5\n") -> dict:
    return {
        "task": "in-hospital-mortality",
        "method_name": name,
        "modalities": "ehr",
        "training_data": "train and validation splits only",
        "file": SimpleUploadedFile(f"{abs(hash(content))}.csv", content),
    }


def _api_for(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


# --- e-mail confirmation ----------------------------------------------------------------


def test_sign_up_sends_a_link_and_the_account_submits_only_once_it_is_confirmed(benchmark):
    client = Client()
    r = _signup(client, "carol", "Carol@Example.org")
    assert r.status_code == 302 and r["Location"] == "/submit/"
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["Carol@Example.org"]
    account = Account.objects.get(user__username="carol")
    assert account.confirmed_at is None and not is_verified(account.user)

    page = client.get("/submit/")
    assert b'id="confirm-notice"' in page.content and b"Carol@Example.org" in page.content

    api = _api_for(account.user)
    r = api.post("/api/submissions/", _api_form("First try"), format="multipart")
    assert r.status_code == 403 and r.json()["code"] == "email_not_confirmed"
    assert "Confirm your e-mail address" in r.json()["detail"]
    assert not Submission.objects.filter(owner=account.user).exists()

    r = client.get(_link(mail.outbox[0]))
    assert r.status_code == 200 and b"Address confirmed" in r.content
    account.refresh_from_db()
    assert account.confirmed_at is not None and account.identity == "carol@example.org"
    assert b'id="confirm-notice"' not in client.get("/submit/").content

    r = api.post("/api/submissions/", _api_form("Second try"), format="multipart")
    assert r.status_code == 201, r.json()


def test_the_web_form_of_an_unconfirmed_account_says_to_confirm_first(benchmark):
    user = UserFactory(email_confirmed=False)
    client = Client()
    client.force_login(user)
    r = client.post(
        "/submit/",
        {
            "task": "in-hospital-mortality",
            "track": "prediction-file",
            "file": SimpleUploadedFile("p.csv", b"stay_id,prediction\n1,0.5\n"),
            "method_name": "Mine",
            "uses_ehr": "on",
            "training_data": "train and validation splits only",
            "visibility": "public",
        },
    )
    assert r.status_code == 400
    assert b"Confirm your e-mail address before submitting" in r.content


def test_an_expired_link_and_a_forged_link_get_a_clear_page(client):
    user = UserFactory(email_confirmed=False)
    account = user.account
    payload = {"a": account.pk, "e": account.email.lower()}
    with mock.patch("django.core.signing.time.time", return_value=time.time() - 4 * 86400):
        old = signing.dumps(payload, salt=CONFIRM_SALT)
    r = client.get(f"/accounts/confirm/{old}/")
    assert r.status_code == 400
    assert b"This link has expired" in r.content and b"more than 3 days old" in r.content

    forged = signing.dumps({"a": account.pk, "e": account.email.lower()}, salt="another-salt")
    r = client.get(f"/accounts/confirm/{forged}/")
    assert r.status_code == 400 and b"This link is not valid" in r.content
    good = signing.dumps(payload, salt=CONFIRM_SALT)
    r = client.get(f"/accounts/confirm/{good[:-3]}xyz/")
    assert r.status_code == 400 and b"cut short or altered" in r.content
    account.refresh_from_db()
    assert account.confirmed_at is None


def test_a_link_for_an_address_the_account_no_longer_has_is_refused(client):
    user = UserFactory(email_confirmed=False)
    token = signing.dumps({"a": user.account.pk, "e": user.account.email}, salt=CONFIRM_SALT)
    Account.objects.filter(pk=user.account.pk).update(email="new@example.org")
    r = client.get(f"/accounts/confirm/{token}/")
    assert r.status_code == 400 and b"no longer has" in r.content


def test_resend_sends_a_new_link_at_most_once_a_minute(client):
    user = UserFactory(email_confirmed=False)
    client.force_login(user)
    r = client.post("/accounts/confirm/resend/", follow=True)
    assert len(mail.outbox) == 1 and b"A new confirmation link was sent" in r.content
    r = client.post("/accounts/confirm/resend/", follow=True)
    assert len(mail.outbox) == 1 and b"less than 60 seconds ago" in r.content
    assert client.get(_link(mail.outbox[0])).status_code == 200
    r = client.post("/accounts/confirm/resend/", follow=True)
    assert b"is confirmed already" in r.content


def test_one_address_one_account_whatever_its_case(client):
    assert _signup(client, "ada", "ada@example.org").status_code == 302
    r = _signup(Client(), "ada2", "ADA@Example.ORG")
    assert r.status_code == 400
    assert b"An account with the address ADA@Example.ORG exists already" in r.content
    assert not Account.objects.filter(user__username="ada2").exists()


def test_the_platforms_own_accounts_have_a_confirmed_address():
    assert is_verified(reference_user())
    assert is_verified(UserFactory())


# --- quotas per verified identity and team ----------------------------------------------


def test_addresses_normalise_to_one_identity():
    assert email_identity("Ada+leaderboard@Example.org") == "ada@example.org"
    assert email_identity("a.d.a+x@googlemail.com") == "ada@gmail.com"
    assert email_identity("A.Da@Gmail.com") == "ada@gmail.com"
    # Dots matter outside Gmail; an address that is all tag keeps its local part.
    assert email_identity("a.da@example.org") == "a.da@example.org"
    assert email_identity("+x@example.org") == "+x@example.org"


@override_settings(SUBMISSIONS_PER_DAY=1)
def test_two_accounts_of_one_identity_share_one_quota(benchmark):
    first = UserFactory(username="ada1", email="ada+one@gmail.com")
    second = UserFactory(username="ada2", email="A.da+two@googlemail.com")
    stranger = UserFactory(username="bob", email="bob@example.org")
    assert quota_holder_ids(owner=first) == sorted([first.pk, second.pk])

    r = _api_for(first).post("/api/submissions/", _api_form("A", b"stay_id,prediction\n1,0.1\n"))
    assert r.status_code == 201, r.json()
    r = _api_for(second).post("/api/submissions/", _api_form("B", b"stay_id,prediction\n1,0.2\n"))
    assert r.status_code == 429 and r.json()["code"] == "quota_exceeded"
    assert "your other accounts" in r.json()["detail"]
    r = _api_for(stranger).post("/api/submissions/", _api_form("C", b"stay_id,prediction\n1,3\n"))
    assert r.status_code == 201, r.json()


@override_settings(SUBMISSIONS_PER_DAY=2, TEAM_SUBMISSIONS_PER_DAY=2)
def test_the_members_of_a_team_share_the_teams_quota_besides_their_own(benchmark):
    a = UserFactory(username="ann", email="ann@uni-a.example")
    b = UserFactory(username="ben", email="ben@uni-b.example")
    team = Team.objects.create(name="Fusion lab")
    TeamMembership.objects.create(team=team, user=a, role="owner")
    TeamMembership.objects.create(team=team, user=b)
    # Each one's own quota is their identity's; the team's is counted by the team.
    assert quota_holder_ids(owner=b) == [b.pk]

    for i, user in enumerate((a, b)):
        body = f"stay_id,prediction\n1,0.{i + 1}\n".encode()
        r = _api_for(user).post("/api/submissions/", _api_form(f"T{i}", body))
        assert r.status_code == 201, r.json()
        assert r.json()["team"] == "Fusion lab"
    r = _api_for(a).post("/api/submissions/", _api_form("T9", b"stay_id,prediction\n1,0.9\n"))
    assert r.status_code == 429 and "Your team Fusion lab has" in r.json()["detail"]
    assert "made 2 submissions" in r.json()["detail"]


def test_an_unconfirmed_account_shares_no_identity():
    confirmed = UserFactory(username="eve1", email="eve@example.org")
    pending = UserFactory(username="eve2", email="EVE+2@example.org", email_confirmed=False)
    assert quota_holder_ids(owner=confirmed) == [confirmed.pk]
    assert quota_holder_ids(owner=pending) == [pending.pk]


# --- login lockout ----------------------------------------------------------------------


def _web_login(client: Client, username: str, password: str):
    return client.post("/accounts/login/", {"username": username, "password": password})


@override_settings(LOGIN_MAX_FAILURES=5, LOGIN_LOCKOUT_SECONDS=2)
@pytest.mark.slow
def test_thirty_wrong_passwords_lock_the_web_login_even_for_the_right_one():
    user = UserFactory(username="victim")
    client = Client()
    statuses = [_web_login(client, "victim", f"guess-{i}").status_code for i in range(30)]
    assert statuses[:4] == [200] * 4  # the form again, with "enter a correct password"
    assert set(statuses[4:]) == {429}
    r = _web_login(client, "victim", "a-long-test-password")
    assert r.status_code == 429 and int(r["Retry-After"]) >= 1
    assert b"Too many failed logins for this user name" in r.content
    assert "_auth_user_id" not in client.session

    time.sleep(2.2)  # the lockout (2 s in this test) is over
    r = _web_login(client, "victim", "a-long-test-password")
    assert r.status_code == 302 and client.session["_auth_user_id"] == str(user.pk)


@override_settings(LOGIN_MAX_FAILURES=5, LOGIN_LOCKOUT_SECONDS=2)
@pytest.mark.slow
def test_the_token_endpoint_locks_out_the_same_way(anon):
    """(Past 20 requests a minute the endpoint's rate throttle answers 429 as well; 15
    attempts stay under it, so the lockout is what refuses them.)"""
    UserFactory(username="bob")
    codes = [
        anon.post("/api/auth/token/", {"username": "bob", "password": f"no-{i}"}).status_code
        for i in range(15)
    ]
    assert codes[:4] == [400] * 4 and set(codes[4:]) == {429}
    r = anon.post("/api/auth/token/", {"username": "bob", "password": "a-long-test-password"})
    assert r.status_code == 429 and r.json()["code"] == "login_locked"
    assert "even with the right password" in r.json()["detail"] and r["Retry-After"]
    # The web login shares the count: the user name is locked there too.
    assert _web_login(Client(), "bob", "a-long-test-password").status_code == 429

    time.sleep(2.2)
    r = anon.post("/api/auth/token/", {"username": "bob", "password": "a-long-test-password"})
    assert r.status_code == 200 and len(r.json()["token"]) == 40


@override_settings(LOGIN_MAX_FAILURES=5, LOGIN_MAX_FAILURES_PER_CLIENT=8)
def test_one_address_guessing_many_user_names_is_locked_out():
    UserFactory(username="carl")
    client = Client(REMOTE_ADDR="203.0.113.9")
    statuses = [_web_login(client, f"name{i}", "guess").status_code for i in range(10)]
    assert statuses[:7] == [200] * 7 and statuses[7:] == [429] * 3
    r = _web_login(client, "carl", "a-long-test-password")
    assert r.status_code == 429 and b"from your address" in r.content
    # Another address is not affected.
    r = _web_login(Client(REMOTE_ADDR="198.51.100.4"), "carl", "a-long-test-password")
    assert r.status_code == 302


@override_settings(LOGIN_MAX_FAILURES=3)
def test_a_right_password_before_the_limit_forgets_the_failures():
    UserFactory(username="dora")
    client = Client()
    for _ in range(2):
        assert _web_login(client, "dora", "wrong").status_code == 200
    assert _web_login(client, "dora", "a-long-test-password").status_code == 302
    client.logout()
    for _ in range(2):
        assert _web_login(client, "dora", "wrong").status_code == 200
    assert _web_login(client, "dora", "a-long-test-password").status_code == 302


def test_staff_set_teams_and_confirm_addresses_in_the_admin(client):
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    a = UserFactory(username="amy", email="amy@example.org")
    b = UserFactory(username="abe", email="abe@example.org", email_confirmed=False)
    client.force_login(root)
    for url in ("/admin/board/team/", "/admin/board/team/add/", "/admin/board/account/"):
        assert client.get(url).status_code == 200, url
    joined = {"memberships-0-joined_at_0": "2026-01-02", "memberships-0-joined_at_1": "10:00"}
    joined |= {"memberships-1-joined_at_0": "2026-01-02", "memberships-1-joined_at_1": "10:00"}
    r = client.post(
        "/admin/board/team/add/",
        {
            "name": "Fusion lab",
            "slug": "",
            "description": "",
            "memberships-TOTAL_FORMS": "2",
            "memberships-INITIAL_FORMS": "0",
            "memberships-MIN_NUM_FORMS": "0",
            "memberships-MAX_NUM_FORMS": "1000",
            "memberships-0-user": str(a.pk),
            "memberships-0-role": "owner",
            "memberships-1-user": str(b.pk),
            "memberships-1-role": "member",
            "invitations-TOTAL_FORMS": "0",
            "invitations-INITIAL_FORMS": "0",
            "invitations-MIN_NUM_FORMS": "0",
            "invitations-MAX_NUM_FORMS": "1000",
            **joined,
        },
    )
    assert r.status_code == 302, r.content.decode()[:2000]
    team = Team.objects.get(name="Fusion lab")
    assert team.slug == "fusion-lab"  # made from the name
    assert dict(team.memberships.values_list("user__username", "role")) == {
        "amy": "owner",
        "abe": "member",
    }
    r = client.post(
        "/admin/board/account/",
        {"action": "confirm", "_selected_action": [str(b.account.pk)]},
        follow=True,
    )
    assert b"1 address(es) confirmed." in r.content
    b.account.refresh_from_db()
    assert b.account.is_confirmed
