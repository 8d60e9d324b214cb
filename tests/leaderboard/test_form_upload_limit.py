"""The web form's answer to a file over the upload limit: one error beside the file field,
the limit and what to do, and nothing recorded."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from leaderboard.board.models import Submission

pytestmark = pytest.mark.django_db


def test_an_oversize_file_gets_one_error_on_the_form(client, user, benchmark, settings):
    settings.MAX_UPLOAD_BYTES = 1000
    client.force_login(user)
    big = b"stay_id,prediction\n" + b"1,0.5\n" * 300  # 1.8 kB, streamed past the limit
    r = client.post("/submit/", {
        "task": "in-hospital-mortality", "track": "prediction-file", "method_name": "Big file",
        "uses_ehr": "on", "training_data": "train and val splits only", "visibility": "public",
        "file": SimpleUploadedFile("p.csv", big),
    })  # fmt: skip
    assert r.status_code == 400
    errors = r.context["form"].errors
    assert list(errors) == ["file"]
    assert len(errors["file"]) == 1
    assert "larger than the 1000 bytes limit" in errors["file"][0]
    assert "Compress it with gzip" in errors["file"][0]
    assert "This field is required." not in r.content.decode()
    assert not Submission.objects.exists()
