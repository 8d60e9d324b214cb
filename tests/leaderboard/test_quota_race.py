"""The daily limit holds under concurrency: clients racing for the last place get one
success between them, never two."""

import pytest
from django.test import override_settings
from rest_framework.authtoken.models import Token

from leaderboard.board.models import Submission
from tests.leaderboard.racing import race_uploads


@pytest.mark.django_db(transaction=True)
@override_settings(SUBMISSIONS_PER_DAY=1)
def test_concurrent_clients_cannot_both_take_the_last_place(user, benchmark):
    token, _ = Token.objects.get_or_create(user=user)
    n = 4
    results = race_uploads([token.key] * n)
    assert sorted(code for code, _ in results) == [201] + [429] * (n - 1)
    assert Submission.objects.filter(owner=user).count() == 1
