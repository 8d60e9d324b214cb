"""Entries are named by an opaque public id in every address and API field: ids are random,
not derived from the order of entries; the old integer addresses lead staff to the entry and
tell anyone else nothing; a private entry and a missing one answer alike."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from leaderboard.board.models import PUBLIC_ID_PATTERN, Submission, new_public_id
from tests.leaderboard.factories import EvaluationFactory, SubmissionFactory, UserFactory

pytestmark = pytest.mark.django_db

MISSING = "abcdefghijkm"  # of the public id's form; no entry has it


def test_two_entries_made_one_after_another_have_unrelated_ids():
    first, second = SubmissionFactory(), SubmissionFactory()
    assert second.pk == first.pk + 1
    for sub in (first, second):
        assert re.fullmatch(PUBLIC_ID_PATTERN, sub.public_id)
        assert str(sub.pk) not in sub.public_id
    # Unrelated: about 12/32 positions agree by chance between two random ids; consecutive
    # or counter-derived ids would share most of them.
    same = sum(a == b for a, b in zip(first.public_id, second.public_id, strict=True))
    assert same <= 6, (first.public_id, second.public_id)
    ids = [SubmissionFactory().public_id for _ in range(12)]
    assert ids != sorted(ids)  # not in the order the entries were made (1 chance in 12!)


def test_public_ids_use_the_whole_alphabet_and_do_not_repeat():
    ids = [new_public_id() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    assert set("".join(ids)) == set("abcdefghijklmnopqrstuvwxyz234567")
    assert all(i[0].isalpha() for i in ids)  # never read as an old integer address


def test_the_api_and_the_board_name_entries_by_public_id(api, user, anon):
    own = SubmissionFactory(owner=user, status="scored", visibility="private")
    top = EvaluationFactory(value=0.9).submission
    other = EvaluationFactory(value=0.7).submission
    body = api.get("/api/submissions/").json()["results"][0]
    assert body["id"] == own.public_id
    assert body["url"].endswith(f"/entries/{own.public_id}/")
    detail = anon.get(f"/api/submissions/{top.public_id}/").json()
    assert detail["id"] == top.public_id
    report = anon.get(f"/api/submissions/{top.public_id}/report/").json()
    assert report["entry_id"] == top.public_id
    rows = anon.get("/api/tasks/in-hospital-mortality/leaderboard/").json()["rows"]
    assert [r["entry_id"] for r in rows] == [top.public_id, other.public_id]
    assert rows[1]["vs_leader"]["entry_id"] == top.public_id
    csv = anon.get("/api/tasks/in-hospital-mortality/leaderboard/?format=csv").content.decode()
    header, *lines = csv.strip().splitlines()
    column = header.split(",").index("entry_id")
    assert [line.split(",")[column] for line in lines] == [top.public_id, other.public_id]
    page = Client().get("/tasks/in-hospital-mortality/").content.decode()
    assert f'href="/entries/{top.public_id}/"' in page
    assert f'href="/entries/{top.pk}/"' not in page


def test_an_integer_address_is_a_404_for_anyone_but_staff(client, user):
    mine = EvaluationFactory(submission__owner=user).submission  # published, and the user's
    paths = [f"/entries/{mine.pk}/", f"/api/submissions/{mine.pk}/"]
    for path in paths:
        assert Client().get(path).status_code == 404
        assert APIClient().get(path).status_code == 404
    client.force_login(user)
    for path in paths:
        assert client.get(path).status_code == 404
    assert client.post(f"/entries/{mine.pk}/publish/", {"action": "publish"}).status_code == 404


def test_an_integer_address_leads_staff_to_the_entry(client, staff):
    ev = EvaluationFactory()
    sub = ev.submission
    client.force_login(staff)
    cases = {
        f"/entries/{sub.pk}/": f"/entries/{sub.public_id}/",
        f"/entries/{sub.pk}/evaluations/{ev.pk}/": f"/entries/{sub.public_id}/evaluations/{ev.pk}/",
        f"/api/submissions/{sub.pk}/": f"/api/submissions/{sub.public_id}/",
        f"/api/submissions/{sub.pk}/report/?evaluation={ev.pk}":
            f"/api/submissions/{sub.public_id}/report/?evaluation={ev.pk}",
    }  # fmt: skip
    for old, new in cases.items():
        r = client.get(old)
        assert r.status_code == 302 and r["Location"] == new, old
        assert client.get(new).status_code == 200
    # A write keeps its method and body on the way (307).
    r = client.post(f"/api/submissions/{sub.pk}/hide/", {"reason": "x"})
    assert r.status_code == 307 and r["Location"] == f"/api/submissions/{sub.public_id}/hide/"
    # An integer that is no entry is a 404 for staff too.
    assert client.get(f"/entries/{sub.pk + 1000}/").status_code == 404


def _strip_csrf(html: bytes) -> bytes:
    return re.sub(rb'name="csrfmiddlewaretoken" value="[^"]*"', b"", html)


@pytest.mark.parametrize("who", ["anonymous", "another user", "the owner"])
def test_a_private_entry_and_a_missing_one_answer_alike(who):
    owner = UserFactory()
    private = SubmissionFactory(owner=owner, status="scored", visibility="private")
    web, api = Client(), APIClient()
    if who == "another user":
        web.force_login(UserFactory())
        api.force_authenticate(UserFactory())
    if who == "the owner":  # the owner asking by the entry's old integer address
        web.force_login(owner)
        api.force_authenticate(owner)
    hidden = private.pk if who == "the owner" else private.public_id
    missing = MISSING if who != "the owner" else private.pk + 1000
    web.get(f"/entries/{missing}/")  # the menu and the session, cached for what follows
    answers = {}
    for name, entry in (("missing", missing), ("private", hidden)):
        with CaptureQueriesContext(connection) as queries:
            page = web.get(f"/entries/{entry}/")
            detail = api.get(f"/api/submissions/{entry}/")
            report = api.get(f"/api/submissions/{entry}/report/")
        answers[name] = (
            page.status_code, _strip_csrf(page.content),
            detail.status_code, detail.content, report.status_code, report.content,
            len(queries),  # the same work on the database, so the same time
        )  # fmt: skip
    assert answers["missing"] == answers["private"]
    assert answers["private"][0] == 404 and answers["private"][2] == 404
    assert answers["private"][3] == b'{"detail":"no such entry","code":"not_found"}'


def test_an_evaluation_is_found_only_under_its_own_entry(client):
    public = EvaluationFactory().submission
    private_run = EvaluationFactory(submission__status="scored", submission__visibility="private")
    for path in (
        f"/entries/{public.public_id}/evaluations/{private_run.pk}/",
        f"/api/submissions/{public.public_id}/report/?evaluation={private_run.pk}",
    ):
        assert client.get(path).status_code == 404
    assert Submission.objects.filter(public_id=private_run.submission.public_id).exists()


@pytest.mark.django_db(transaction=True)
def test_the_migration_gives_each_stored_entry_its_own_public_id():
    from django.db.migrations.executor import MigrationExecutor

    before, after = (
        [("board", "0009_submission_modalities")],
        [("board", "0010_submission_public_id")],
    )
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    owner = old.get_model("auth", "User").objects.create(username="early")
    suite = old.get_model("board", "Suite").objects.create(slug="medmod", title="MedMod")
    bench = old.get_model("board", "Benchmark").objects.create(
        suite=suite, name="b", version="1", manifest_hash="h" * 64, uri="/x"
    )
    task = old.get_model("board", "Task").objects.create(
        benchmark=bench, slug="in-hospital-mortality"
    )
    track, _ = old.get_model("board", "Track").objects.get_or_create(
        slug="prediction-file", defaults={"title": "Prediction file"}
    )
    pks = [
        old.get_model("board", "Submission").objects.create(
            owner=owner, task=task, track=track, method_name=f"m{i}", modalities=["ehr"],
            uses_ehr=True, uses_cxr=False, training_data="train split", file="f.csv",
            sha256=f"{i}" * 64, size=1,
        ).pk
        for i in range(3)
    ]  # fmt: skip
    executor = MigrationExecutor(connection)
    executor.migrate(after)
    new = executor.loader.project_state(after).apps.get_model("board", "Submission")
    ids = list(new.objects.filter(pk__in=pks).values_list("public_id", flat=True))
    assert len(set(ids)) == 3 and all(re.fullmatch(PUBLIC_ID_PATTERN, i) for i in ids)
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
