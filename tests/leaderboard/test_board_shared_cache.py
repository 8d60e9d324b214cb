"""The boards with a cache shared by the web processes and the worker (Redis), as in
production: readers keep each board's key instead of running the key query, every write to
an entry or a run makes them read it again, and the worker rebuilds a board after it
changes so that no reader builds it."""

from __future__ import annotations

import os
import uuid

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from leaderboard.board.board_cache import (
    board_generation,
    board_key,
    board_key_remember,
    json_params,
    page_params,
)
from leaderboard.board.models import Submission
from leaderboard.board.selectors.leaderboard import board_state
from leaderboard.board.services.boards import board_refresh
from leaderboard.board.services.submissions import submission_hide
from tests.leaderboard.conftest import file_entry, wait_for
from tests.leaderboard.factories import EvaluationFactory, SubmissionFactory

REDIS_CACHE = "redis://127.0.0.1:6379/14"


@pytest.fixture
def shared_cache(settings, monkeypatch):
    """Django's Redis cache under a prefix of this test's own, and the settings that go with
    a shared cache; a worker started after this fixture uses the same cache."""
    prefix = f"t{uuid.uuid4().hex[:12]}"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_CACHE,
            "KEY_PREFIX": prefix,
        }
    }
    settings.BOARD_CACHE_SHARED = True
    settings.BOARD_KEY_SECONDS = 30
    monkeypatch.setenv("CACHE_URL", f"{REDIS_CACHE}?key_prefix={prefix}")
    yield
    import redis

    client = redis.Redis.from_url(REDIS_CACHE)
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)


def _board(n: int):
    first = EvaluationFactory(value=0.9)
    task = first.submission.task
    for i in range(n - 1):
        EvaluationFactory(submission=SubmissionFactory(task=task), value=0.6 + 0.01 * i)
    return task


def _sql(queries) -> str:
    return "\n".join(q["sql"] for q in queries.captured_queries)


@pytest.mark.django_db
def test_readers_keep_the_board_key_instead_of_querying_it(shared_cache, client):
    task = _board(3)
    first = board_key(task=task)
    assert first.state is not None and first.key == board_state(task=task).key
    with CaptureQueriesContext(connection) as queries:
        again = board_key(task=task)
    assert again.key == first.key and again.state is None
    assert not queries.captured_queries
    client.get(f"/tasks/{task.slug}/")  # builds and caches the page content
    with CaptureQueriesContext(connection) as page:
        r = client.get(f"/tasks/{task.slug}/")
    assert r.status_code == 200
    assert "board_submission" not in _sql(page)  # neither the key query nor the rows
    assert "replicate_values" not in _sql(page)


@pytest.mark.django_db
def test_every_write_makes_readers_read_the_key_again(
    shared_cache, client, staff, django_capture_on_commit_callbacks
):
    task = _board(3)
    before = board_key(task=task).key
    with django_capture_on_commit_callbacks(execute=True):
        new = EvaluationFactory(
            submission=SubmissionFactory(task=task, method_name="Newcomer"), value=0.99
        )
    after = board_key(task=task)
    assert after.key != before and after.state is not None
    rows = client.get(f"/api/tasks/{task.slug}/leaderboard/").json()["rows"]
    assert rows[0]["entry_id"] == new.submission.public_id
    assert "Newcomer" in client.get(f"/tasks/{task.slug}/").content.decode()

    # A hidden entry: the worker is asked to rebuild the board and holds its builds; until
    # it has, readers get the previous board rather than building it themselves.
    with django_capture_on_commit_callbacks(execute=True):
        submission_hide(actor=staff, submission=new.submission, reason="duplicate entry")
    assert "Newcomer" in client.get(f"/tasks/{task.slug}/").content.decode()
    board_refresh(task_id=task.pk)  # what the worker does
    assert "Newcomer" not in client.get(f"/tasks/{task.slug}/").content.decode()
    ids = [r["entry_id"] for r in client.get(f"/api/tasks/{task.slug}/leaderboard/").json()["rows"]]
    assert new.submission.public_id not in ids and len(ids) == 3


@pytest.mark.django_db
def test_a_key_read_before_a_write_does_not_outlive_it(
    shared_cache, django_capture_on_commit_callbacks
):
    task = _board(2)
    generation = board_generation()  # a reader reads the generation, then the old key ...
    old = board_state(task=task).key
    with django_capture_on_commit_callbacks(execute=True):  # ... a write commits ...
        EvaluationFactory(submission=SubmissionFactory(task=task), value=0.7)
    board_key_remember(task=task, generation=generation, key=old)  # ... and it keeps the key
    assert board_key(task=task).key == board_state(task=task).key != old


@pytest.mark.django_db
def test_after_the_refresh_readers_build_nothing(shared_cache, client):
    task = _board(4)
    result = board_refresh(task_id=task.pk)
    assert result["key"] == board_state(task=task).key and result["fresh"]
    with CaptureQueriesContext(connection) as page:
        r = client.get(f"/tasks/{task.slug}/")
    assert r.status_code == 200 and "Method" in r.content.decode()
    with CaptureQueriesContext(connection) as api:
        rows = client.get(f"/api/tasks/{task.slug}/leaderboard/").json()["rows"]
    assert len(rows) == 4
    for queries in (page, api):
        assert "replicate_values" not in _sql(queries)
        assert "board_submission" not in _sql(queries)


@pytest.mark.django_db
def test_a_board_page_reads_the_cache_in_three_round_trips(shared_cache, client, monkeypatch):
    """A reader of an unchanged board page asks the cache three times: for the board's key
    (with the generation), for the page's parts (the board's content, the downloads and the
    training-missingness curve, together), and for the menu's tasks."""
    import redis

    task = _board(3)
    board_refresh(task_id=task.pk)
    assert client.get(f"/tasks/{task.slug}/").status_code == 200  # builds the other parts
    commands: list[str] = []
    sent = redis.Redis.execute_command

    def counted(self, *args, **options):
        commands.append(str(args[0]))
        return sent(self, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", counted)
    with CaptureQueriesContext(connection) as page:
        r = client.get(f"/tasks/{task.slug}/")
    assert r.status_code == 200 and "Method" in r.content.decode()
    assert commands == ["MGET", "MGET", "GET"]
    assert "board_submission" not in _sql(page)


@pytest.mark.django_db
def test_an_entry_page_renders_its_report_once(shared_cache, client):
    ev = EvaluationFactory(value=0.8)
    url = f"/entries/{ev.submission.public_id}/"
    first = client.get(url)
    assert first.status_code == 200
    with CaptureQueriesContext(connection) as again:
        second = client.get(url)
    assert second.content == first.content
    assert '"report"' not in _sql(again)


@pytest.mark.django_db
def test_a_run_renders_its_results_part_when_it_is_recorded(
    shared_cache, client, ihm_task, sample_ihm_csv, django_capture_on_commit_callbacks
):
    """The worker renders a scored run's results into the shared cache as it records the
    run, so the entry page's first visit reads no report and renders no results."""
    from leaderboard.board.services.evaluations import evaluation_run

    sub = file_entry(ihm_task, sample_ihm_csv, "scored")
    with django_capture_on_commit_callbacks(execute=True):
        ev = evaluation_run(evaluation_id=sub.evaluations.get().pk, worker="test")
    assert ev is not None and ev.status == "succeeded"
    with CaptureQueriesContext(connection) as first:
        page = client.get(f"/entries/{sub.public_id}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="report-unreadable"' not in html and "Fairness" in html
    assert '"report"' not in _sql(first)


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_the_worker_rebuilds_the_board_when_a_run_publishes_an_entry(
    shared_cache, task_runner, api, client, benchmark, sample_ihm_csv
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    assert os.environ["CACHE_URL"].startswith(REDIS_CACHE)
    r = api.post(
        "/api/submissions/",
        {
            "task": "in-hospital-mortality",
            "method_name": "Logistic regression",
            "modalities": "ehr",
            "training_data": "the benchmark's train split only",
            "file": SimpleUploadedFile("p.csv", sample_ihm_csv, content_type="text/csv"),
        },
        format="multipart",
    )
    assert r.status_code == 201, r.content
    pk = r.json()["id"]
    wait_for(
        lambda: Submission.objects.get(public_id=pk).status in ("published", "failed"),
        timeout=60,
        what="publication",
    )
    sub = Submission.objects.get(public_id=pk)
    assert sub.status == "published", sub.failure_reason

    # No reader has asked for the board: the worker built it, and the default renderings.
    # The generation is read again on each look: the run may move it more than once after
    # the entry shows as published (its board refresh comes after the commit).
    def built() -> tuple[str, list[str]] | None:
        key = board_state(task=sub.task).key
        renderings = [f"{key}:{page_params()}", f"{key}:{json_params()}"]
        return (key, renderings) if all(cache.get(k) is not None for k in renderings) else None

    key, renderings = wait_for(built, timeout=30, what="the worker's rebuild")
    ranked = cache.get(key)
    assert [row.entry_id for row in ranked["rows"]] == [pk]
    assert str(pk).encode() in cache.get(renderings[1])

    # It also rendered the run's results part: the entry page's first visit reads no report.
    with CaptureQueriesContext(connection) as entry:
        assert client.get(f"/entries/{pk}/").status_code == 200
    assert '"report"' not in _sql(entry)
