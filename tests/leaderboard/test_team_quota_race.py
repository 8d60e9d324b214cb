"""A team's daily limit holds under concurrency: members of one team uploading at the same
moment get exactly the team's quota of successes, and the others a 429 naming the team's
limit."""

import pytest
from django.test import override_settings
from rest_framework.authtoken.models import Token

from leaderboard.board.models import Submission
from leaderboard.board.services.teams import invitation_accept, team_create, team_invite
from tests.leaderboard.factories import UserFactory
from tests.leaderboard.racing import race_uploads


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
    results = race_uploads(tokens)
    assert sorted(code for code, _ in results) == [201] * 2 + [429] * (n - 2)
    for code, body in results:
        if code == 429:
            assert body["code"] == "quota_exceeded"
            assert body["detail"].startswith("Your team Racing team has (its daily limit")
            assert "made 2 submissions" in body["detail"] and "limit of 2" in body["detail"]
    assert Submission.objects.filter(team=team).count() == 2
