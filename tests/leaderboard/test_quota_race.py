"""The daily limit holds under concurrency: clients racing for the last place get one
success between them, never two."""

import threading

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import override_settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from leaderboard.board.models import Submission


@pytest.mark.django_db(transaction=True)
@override_settings(SUBMISSIONS_PER_DAY=1)
def test_concurrent_clients_cannot_both_take_the_last_place(user, benchmark):
    token, _ = Token.objects.get_or_create(user=user)
    n = 4
    barrier = threading.Barrier(n)
    results: list[int] = []
    errors: list[BaseException] = []

    def submit(i: int) -> None:
        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
            data = {
                "task": "in-hospital-mortality",
                "method_name": f"racer {i}",
                "modalities": "ehr",
                "training_data": "train and validation splits only",
                "file": SimpleUploadedFile(f"p{i}.csv", f"stay_id,prediction\n1,0.{i}\n".encode()),
            }
            barrier.wait(timeout=30)
            results.append(client.post("/api/submissions/", data, format="multipart").status_code)
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
    assert sorted(results) == [201] + [429] * (n - 1)
    assert Submission.objects.filter(owner=user).count() == 1
