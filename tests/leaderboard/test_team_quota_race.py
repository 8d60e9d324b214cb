"""A team's daily limit holds under concurrency: members of one team uploading at the same
moment get exactly the team's quota of successes, and the others a 429 naming the team's
limit."""

import threading

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import override_settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from leaderboard.board.models import Submission
from leaderboard.board.services.teams import invitation_accept, team_create, team_invite
from tests.leaderboard.factories import UserFactory


@pytest.mark.django_db(transaction=True)
@override_settings(SUBMISSIONS_PER_DAY=5, TEAM_SUBMISSIONS_PER_DAY=2)
def test_concurrent_members_take_exactly_the_teams_quota(benchmark):
    n = 5
    members = [UserFactory(username=f"racer{i}") for i in range(n)]
    team = team_create(creator=members[0], name="Racing team")
    for user in members[1:]:
        invitation_accept(
            user=user,
            token=team_invite(actor=members[0], team=team, invitee=user.username).token,
        )
    tokens = [Token.objects.get_or_create(user=u)[0].key for u in members]
    barrier = threading.Barrier(n)
    results: list[tuple[int, dict]] = []
    errors: list[BaseException] = []

    def submit(i: int) -> None:
        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Token {tokens[i]}")
            data = {
                "task": "in-hospital-mortality",
                "method_name": f"racer {i}",
                "modalities": "ehr",
                "training_data": "train and validation splits only",
                "file": SimpleUploadedFile(f"p{i}.csv", f"stay_id,prediction\n1,0.{i}\n".encode()),
            }
            barrier.wait(timeout=30)
            r = client.post("/api/submissions/", data, format="multipart")
            results.append((r.status_code, r.json()))
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert sorted(code for code, _ in results) == [201] * 2 + [429] * (n - 2)
    for code, body in results:
        if code == 429:
            assert body["code"] == "quota_exceeded"
            assert body["detail"].startswith("Your team Racing team has (its daily limit")
            assert "made 2 submissions" in body["detail"] and "limit of 2" in body["detail"]
    assert Submission.objects.filter(team=team).count() == 2
