"""Notifications: e-mails to an entry's owner when it is scored (published), fails, or moves
on its board after a re-score; once per event, to a confirmed address, as the owner's
switches allow; unsubscribe links; the settings page and API."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from leaderboard.board.models import Evaluation, Notification, NotificationSettings, Track
from leaderboard.board.services import notifications
from leaderboard.board.services.evaluations import (
    evaluation_claim,
    evaluation_fail,
    evaluation_finish,
    evaluation_run,
)
from leaderboard.board.services.notifications import (
    REFERENCE_USERNAME,
    notification_send,
    notification_settings_update,
)
from leaderboard.board.services.rescoring import submission_rescore
from leaderboard.board.services.submissions import SubmissionMeta, submission_create
from tests.leaderboard.conftest import wait_for
from tests.leaderboard.factories import (
    EvaluationFactory,
    SubmissionFactory,
    TaskFactory,
    UserFactory,
    fake_report,
    fake_scores,
)

pytestmark = pytest.mark.django_db

SITE = "https://board.example.org"
META = SubmissionMeta(
    method_name="Late fusion", training_data="train split only", uses_ehr=True, uses_cxr=False
)
FAILURE = "3 test units are missing, first: 30091958"


@pytest.fixture(autouse=True)
def _locmem_mail(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.SITE_URL = SITE


def _enter(owner, task, visibility="public"):
    """An entry as a participant makes it, its run claimed by a worker."""
    meta = SubmissionMeta(**{**META.__dict__, "visibility": visibility})
    sub = submission_create(
        owner=owner,
        task=task,
        track=Track.objects.get(slug=Track.PREDICTION_FILE),
        upload=SimpleUploadedFile(
            "p.csv", f"stay_id,prediction\n{uuid.uuid4().int},0.5\n".encode()
        ),
        meta=meta,
    )
    run = evaluation_claim(evaluation_id=sub.evaluations.get().pk, worker="w")
    return sub, run


def _report(task, value: float, seed: int = 1) -> dict:
    scores = fake_scores(value, seed=seed)
    return fake_report(value, seed=seed, benchmark_hash=task.benchmark.manifest_hash,
                       summary=scores["summary"])  # fmt: skip


def _finish(run, report, capture):
    with capture(execute=True):
        return evaluation_finish(
            evaluation_id=run.pk, run_token=run.run_token, report=report, duration=1.0
        )


def _links(body: str) -> list[str]:
    return re.findall(r"https?://\S+", body)


def test_a_published_entry_mails_its_owner_once_with_a_link_to_its_page(
    user, ihm_task, django_capture_on_commit_callbacks
):
    sub, run = _enter(user, ihm_task)
    _finish(run, _report(ihm_task, 0.81), django_capture_on_commit_callbacks)
    assert len(mail.outbox) == 1
    msg = mail.outbox[0]
    assert msg.to == [user.account.email]
    assert msg.subject == 'Your entry "Late fusion" is published on the In-hospital mortality board'
    assert f"{SITE}/entries/{sub.public_id}/" in _links(msg.body)
    assert "AUROC 0.81 (95% CI" in msg.body
    unsubscribe = [u for u in _links(msg.body) if "/unsubscribe/" in u]
    assert len(unsubscribe) == 1
    note = Notification.objects.get()
    assert (note.kind, note.status, note.email) == ("published", "sent", user.account.email)
    assert note.submission == sub and note.evaluation_id == run.pk and note.sent_at


def test_the_mail_holds_no_per_replicate_value_and_no_seed(
    user, ihm_task, django_capture_on_commit_callbacks
):
    """What the mail says is what the entry's page says: the bounded summary, no replicate
    values (equations in the labels) and no seed."""
    sub, run = _enter(user, ihm_task)
    report = _report(ihm_task, 0.81)
    _finish(run, report, django_capture_on_commit_callbacks)
    body = mail.outbox[0].body
    for value in report["scenarios"]["paired"]["replicates"][:50]:
        assert str(value) not in body
    assert "seed" not in body.lower()
    assert str(report["summary"]["ci"][0]) not in body  # the full-precision CI is not shown


def test_a_private_entry_is_told_it_is_scored_and_not_on_the_board(
    user, ihm_task, django_capture_on_commit_callbacks
):
    sub, run = _enter(user, ihm_task, visibility="private")
    _finish(run, _report(ihm_task, 0.8), django_capture_on_commit_callbacks)
    (msg,) = mail.outbox
    assert msg.subject == 'Your entry "Late fusion" for In-hospital mortality is scored'
    assert "only you see it until you publish it" in msg.body


def test_a_failed_entry_mails_the_reason_shown_on_its_page(
    user, ihm_task, django_capture_on_commit_callbacks
):
    sub, run = _enter(user, ihm_task)
    with django_capture_on_commit_callbacks(execute=True):
        evaluation_fail(evaluation_id=run.pk, run_token=run.run_token, kind="input",
                        code="missing_units", message=FAILURE)  # fmt: skip
    (msg,) = mail.outbox
    assert msg.subject == 'Your entry "Late fusion" for In-hospital mortality failed'
    assert f"Why it failed:\n{FAILURE}\n" in msg.body
    assert f"{SITE}/entries/{sub.public_id}/" in _links(msg.body)
    assert Notification.objects.get().kind == "failed"


def test_a_failed_rescore_of_a_scored_entry_mails_nothing(
    staff, django_capture_on_commit_callbacks
):
    """The entry did not fail: it keeps its result (the failed run stays in its history)."""
    sub = EvaluationFactory(value=0.7).submission
    submission_rescore(actor=staff, submission=sub)
    run = evaluation_claim(evaluation_id=sub.evaluations.get(status="queued").pk)
    with django_capture_on_commit_callbacks(execute=True):
        evaluation_fail(evaluation_id=run.pk, run_token=run.run_token, kind="system",
                        code="internal_error", message="a platform problem")  # fmt: skip
    assert mail.outbox == []


def test_a_kind_turned_off_sends_nothing_and_the_others_still_go(
    user, ihm_task, django_capture_on_commit_callbacks
):
    notification_settings_update(user=user, published=False)
    sub, run = _enter(user, ihm_task)
    _finish(run, _report(ihm_task, 0.8), django_capture_on_commit_callbacks)
    assert mail.outbox == [] and not Notification.objects.exists()
    sub2, run2 = _enter(user, ihm_task)
    with django_capture_on_commit_callbacks(execute=True):
        evaluation_fail(evaluation_id=run2.pk, run_token=run2.run_token, kind="input",
                        code="missing_units", message=FAILURE)  # fmt: skip
    assert [m.subject for m in mail.outbox] == [
        'Your entry "Late fusion" for In-hospital mortality failed'
    ]


def test_an_unconfirmed_address_gets_no_mail(ihm_task, django_capture_on_commit_callbacks):
    owner = UserFactory(email_confirmed=False, is_staff=True)  # staff may submit unconfirmed
    sub, run = _enter(owner, ihm_task)
    _finish(run, _report(ihm_task, 0.8), django_capture_on_commit_callbacks)
    assert mail.outbox == [] and not Notification.objects.exists()


def test_the_platforms_reference_entries_never_mail(django_capture_on_commit_callbacks):
    reference = UserFactory(username=REFERENCE_USERNAME)
    flagged = SubmissionFactory(is_reference=True, status="queued")
    by_reference = SubmissionFactory(owner=reference, status="queued")
    for sub in (flagged, by_reference):
        ev = EvaluationFactory(submission=sub, status="succeeded")
        notification_send(kind="published", submission_id=sub.pk, evaluation_id=ev.pk)
    assert mail.outbox == []


def test_a_redelivered_run_sends_no_second_mail(user, ihm_task, django_capture_on_commit_callbacks):
    sub, run = _enter(user, ihm_task)
    report = _report(ihm_task, 0.8)
    _finish(run, report, django_capture_on_commit_callbacks)
    # The same result delivered again, and the message run again: nothing more.
    assert _finish(run, report, django_capture_on_commit_callbacks) is None
    with django_capture_on_commit_callbacks(execute=True):
        assert evaluation_run(evaluation_id=run.pk, worker="w2") is None
    # The event itself sent again (a callback run twice): the record stops it.
    assert notification_send(kind="published", submission_id=sub.pk, evaluation_id=run.pk) is None
    assert len(mail.outbox) == 1
    assert Notification.objects.count() == 1


def test_a_mail_backend_failure_is_recorded_and_the_run_still_succeeds(
    user, ihm_task, django_capture_on_commit_callbacks, monkeypatch
):
    def refuse(**kwargs):
        raise ConnectionRefusedError("the SMTP server is down")

    monkeypatch.setattr(notifications, "send_mail", refuse)
    sub, run = _enter(user, ihm_task)
    done = _finish(run, _report(ihm_task, 0.8), django_capture_on_commit_callbacks)
    assert done.status == "succeeded"
    sub.refresh_from_db()
    assert sub.status == "published"
    note = Notification.objects.get()
    assert note.status == "failed" and "SMTP server is down" in note.error and note.sent_at is None


# Re-scores that move an entry on its board --------------------------------------------------
@pytest.fixture
def board():
    """Three published entries of one board, far enough apart to rank 1, 2, 3."""
    task = TaskFactory()
    entries = {
        value: EvaluationFactory(value=value, submission__task=task).submission
        for value in (0.9, 0.75, 0.6)
    }
    return task, entries


def _rescore(staff, sub, value, capture):
    submission_rescore(actor=staff, submission=sub)
    run = evaluation_claim(evaluation_id=sub.evaluations.get(status="queued").pk)
    return _finish(run, _report(sub.task, value, seed=99), capture)


def test_a_rescore_that_changes_the_rank_mails_both_ranks(
    staff, board, django_capture_on_commit_callbacks
):
    task, entries = board
    last = entries[0.6]
    run = _rescore(staff, last, 0.95, django_capture_on_commit_callbacks)
    (msg,) = mail.outbox
    assert msg.to == [last.owner.account.email]
    assert msg.subject == (
        f'Your entry "{last.method_name}" moved from rank 3 to rank 1 on the In-hospital '
        "mortality board"
    )
    assert "rank 3 before, rank 1 now" in msg.body
    assert f"{SITE}/tasks/in-hospital-mortality/" in _links(msg.body)
    note = Notification.objects.get()
    assert note.kind == "rank_changed" and note.evaluation == run
    assert note.details == {"rank_before": 3, "rank_after": 1}


def test_a_rescore_that_keeps_the_rank_mails_nothing(
    staff, board, django_capture_on_commit_callbacks
):
    task, entries = board
    _rescore(staff, entries[0.6], 0.61, django_capture_on_commit_callbacks)
    assert mail.outbox == [] and not Notification.objects.exists()


def test_a_rescore_rank_mail_respects_its_switch(staff, board, django_capture_on_commit_callbacks):
    task, entries = board
    notification_settings_update(user=entries[0.6].owner, rank_changed=False)
    _rescore(staff, entries[0.6], 0.95, django_capture_on_commit_callbacks)
    assert mail.outbox == []


# Unsubscribe links --------------------------------------------------------------------------
def _unsubscribe_path(body: str) -> str:
    (url,) = [u for u in _links(body) if "/unsubscribe/" in u]
    assert url.startswith(SITE)
    return url[len(SITE) :]


def test_the_unsubscribe_link_turns_that_kind_off_without_logging_in(
    user, ihm_task, client, django_capture_on_commit_callbacks
):
    sub, run = _enter(user, ihm_task)
    with django_capture_on_commit_callbacks(execute=True):
        evaluation_fail(evaluation_id=run.pk, run_token=run.run_token, kind="input",
                        code="missing_units", message=FAILURE)  # fmt: skip
    path = _unsubscribe_path(mail.outbox[0].body)
    page = client.get(path)  # opening the link changes nothing (mail scanners open links)
    assert page.status_code == 200 and b"Stop these e-mails" in page.content
    assert not NotificationSettings.objects.exists()
    done = client.post(path)
    assert done.status_code == 200 and b"Unsubscribed" in done.content
    switches = NotificationSettings.objects.get(user=user)
    assert (switches.failed, switches.published, switches.rank_changed) == (False, True, True)
    mail.outbox.clear()
    sub2, run2 = _enter(user, ihm_task)
    with django_capture_on_commit_callbacks(execute=True):
        evaluation_fail(evaluation_id=run2.pk, run_token=run2.run_token, kind="input",
                        code="missing_units", message=FAILURE)  # fmt: skip
    assert mail.outbox == []


def test_a_tampered_unsubscribe_link_is_refused_with_a_400_page(
    user, ihm_task, client, django_capture_on_commit_callbacks
):
    sub, run = _enter(user, ihm_task)
    _finish(run, _report(ihm_task, 0.8), django_capture_on_commit_callbacks)
    path = _unsubscribe_path(mail.outbox[0].body)
    token = path.rstrip("/").rsplit("/", 1)[1]
    other = UserFactory()
    forged = notifications.unsubscribe_token(user=other, kind="published")
    # Another user's id with this link's signature, and a cut signature.
    tampered = [forged.split(":", 1)[0] + ":" + token.split(":", 1)[1], token[:-3]]
    for bad in tampered:
        url = reverse("notifications-unsubscribe", args=[bad])
        for answer in (client.get(url), client.post(url)):
            assert answer.status_code == 400
            assert b"This unsubscribe link is not valid" in answer.content
    assert not NotificationSettings.objects.exists()


# The settings page and the API ----------------------------------------------------------------
def test_the_settings_page_shows_and_changes_the_switches(user, client):
    client.force_login(user)
    page = client.get(reverse("notifications"))
    assert page.status_code == 200
    html = page.content.decode()
    assert user.account.email in html and html.count('type="checkbox"') == 3
    assert html.count("checked") == 3
    answer = client.post(reverse("notifications"), {"published": "on", "rank_changed": "on"})
    assert answer.status_code == 302
    switches = NotificationSettings.objects.get(user=user)
    assert (switches.published, switches.failed, switches.rank_changed) == (True, False, True)


def test_the_settings_page_needs_a_login(client):
    answer = client.get(reverse("notifications"))
    assert answer.status_code == 302 and "/accounts/login/" in answer["Location"]


def test_the_api_reads_and_changes_ones_own_switches(user, api):
    url = reverse("api-my-notifications")
    answer = api.get(url)
    assert answer.status_code == 200
    assert answer.json() == {
        "email": user.account.email, "email_confirmed": True,
        "published": True, "failed": True, "rank_changed": True,
    }  # fmt: skip
    answer = api.patch(url, {"rank_changed": False}, format="json")
    assert answer.status_code == 200 and answer.json()["rank_changed"] is False
    assert answer.json()["published"] is True
    assert api.get(url).json()["rank_changed"] is False


def test_the_api_refuses_unknown_fields_and_non_booleans_with_the_names_to_use(user, api):
    url = reverse("api-my-notifications")
    for body, words in (
        ({"publishd": False}, "Unknown or read-only field: publishd"),
        ({"email": "x@example.org"}, "Unknown or read-only field: email"),
        ({"failed": "perhaps"}, "failed: Must be a valid boolean."),
        ({}, "Nothing to change"),
    ):
        answer = api.patch(url, body, format="json")
        assert answer.status_code == 400, body
        assert words in answer.json()["detail"]
        assert answer.json()["code"] == "invalid"
    assert api.patch(url, [1], format="json").status_code == 400
    assert not NotificationSettings.objects.exists()


def test_no_one_reaches_another_users_switches(user, api, anon):
    other = UserFactory()
    notification_settings_update(user=other, published=False)
    url = reverse("api-my-notifications")
    mine = api.get(url).json()
    assert mine["email"] == user.account.email and mine["published"] is True
    api.patch(url, {"failed": False}, format="json")
    theirs = NotificationSettings.objects.get(user=other)
    assert (theirs.published, theirs.failed) == (False, True)
    assert anon.get(url).status_code in (401, 403)
    assert anon.patch(url, {"failed": False}, format="json").status_code in (401, 403)


def test_the_schema_documents_the_endpoint(anon):
    schema = anon.get(reverse("api-schema"), HTTP_ACCEPT="application/json").json()
    ops = schema["paths"]["/api/me/notifications/"]
    assert set(ops) >= {"get", "patch"}


# A real worker ------------------------------------------------------------------------------
@pytest.fixture
def file_mail(monkeypatch, tmp_path, settings) -> Path:
    """The file-based mail backend for the worker (through its environment) and here."""
    folder = tmp_path / "mail"
    monkeypatch.setenv("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
    monkeypatch.setenv("EMAIL_FILE_PATH", str(folder))
    monkeypatch.setenv("SITE_URL", SITE)
    return folder


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_worker_mails_the_publication_of_an_entry_it_scored(
    file_mail, celery_worker, ihm_task, sample_ihm_csv
):
    owner = UserFactory()
    sub = submission_create(
        owner=owner,
        task=ihm_task,
        track=Track.objects.get(slug=Track.PREDICTION_FILE),
        upload=SimpleUploadedFile("ihm.csv", sample_ihm_csv, content_type="text/csv"),
        meta=META,
    )
    # The notification is marked sent once the backend has written and closed the file; a
    # file seen before that may still be empty.
    wait_for(
        lambda: Notification.objects.filter(submission=sub, status="sent").exists(),
        timeout=180,
        what="the worker's mail",
    )
    (written,) = list(file_mail.glob("*.log"))
    text = written.read_text()
    assert f"To: {owner.account.email}" in text
    assert 'Subject: Your entry "Late fusion" is published on the In-hospital mortality' in text
    assert f"{SITE}/entries/{sub.public_id}/" in text
    sub.refresh_from_db()
    assert sub.status == "published"
    note = Notification.objects.get(submission=sub)
    assert note.status == "sent" and note.evaluation == Evaluation.objects.get(submission=sub)


def test_the_api_docs_show_what_the_server_answers(user, api):
    """docs/api.md's Notifications examples: each request's shown answer is the server's
    (the fields shown, and the detail of the refusal up to its '...')."""
    import json

    doc = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    block = doc[doc.index("## Notifications") :].split("```bash\n", 1)[1].split("\n```", 1)[0]
    requests = re.findall(r"(?:-d '(\{.*?\})')?\n# (\{.*\})", block.replace("\\\n", ""))
    assert len(requests) == 3
    url = reverse("api-my-notifications")
    for body, shown in requests:
        answer = api.patch(url, json.loads(body), format="json") if body else api.get(url)
        shown = shown.replace("demo@example.org", user.account.email)
        if shown.endswith(", ...}"):
            expected = json.loads(shown[: -len(", ...}")] + "}")
            assert {k: answer.json()[k] for k in expected} == expected
        else:
            assert answer.json() == json.loads(shown)


def test_the_header_links_the_settings_page_for_a_logged_in_user(user, client):
    assert 'href="/accounts/notifications/"' not in client.get(reverse("home")).content.decode()
    client.force_login(user)
    assert 'href="/accounts/notifications/"' in client.get(reverse("home")).content.decode()
