"""The cached board: a hit reads no per-replicate values, and every change of the board
(a new published entry, an entry hidden or withdrawn, a rescore) changes its key, so the
next request shows it, on the page and in the API."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from leaderboard.board.board_cache import leaderboard_rows
from leaderboard.board.models import Submission
from leaderboard.board.selectors import leaderboard as leaderboard_selectors
from leaderboard.board.selectors.leaderboard import board_state
from leaderboard.board.services.submissions import submission_hide, submission_unpublish
from tests.leaderboard.factories import EvaluationFactory, SubmissionFactory, fake_report

pytestmark = pytest.mark.django_db


def _board(n: int):
    first = EvaluationFactory(value=0.9)
    task = first.submission.task
    for i in range(n - 1):
        EvaluationFactory(
            submission=SubmissionFactory(task=task, uses_cxr=bool(i % 2)), value=0.6 + 0.01 * i
        )
    return task


def _api_ids(client, task) -> list[str]:
    r = client.get(f"/api/tasks/{task.slug}/leaderboard/")
    assert r.status_code == 200
    return [row["entry_id"] for row in r.json()["rows"]]


def test_a_cached_board_costs_one_query_and_reads_no_replicates():
    task = _board(4)
    with CaptureQueriesContext(connection) as miss:
        cold = leaderboard_rows(task=task)
    assert len(miss.captured_queries) == 2  # the key query, then the runs with replicates
    assert any("replicate_values" in q["sql"] for q in miss.captured_queries)
    with CaptureQueriesContext(connection) as hit:
        warm = leaderboard_rows(task=task)
    assert len(hit.captured_queries) == 1
    assert "replicate_values" not in hit.captured_queries[0]["sql"]
    assert [(r.submission_id, r.rank, r.tier, r.value) for r in warm.rows] == [
        (r.submission_id, r.rank, r.tier, r.value) for r in cold.rows
    ]
    assert warm.key == cold.key


def test_filters_and_sort_apply_to_the_cached_board():
    task = _board(5)
    full = leaderboard_rows(task=task)
    ehr_only = leaderboard_rows(task=task, modality="ehr")
    assert ehr_only.key == full.key
    assert ehr_only.rows and all("cxr" not in r.modalities for r in ehr_only.rows)
    # ranks are those of the whole board, not of the filtered rows
    assert {r.submission_id: r.rank for r in ehr_only.rows} == {
        r.submission_id: r.rank for r in full.rows if "cxr" not in r.modalities
    }
    worst_first = leaderboard_rows(task=task, order="desc")
    assert [r.submission_id for r in worst_first.rows] == [
        r.submission_id for r in reversed(full.rows)
    ]


def test_a_newly_published_entry_is_on_the_next_board(client):
    task = _board(3)
    before = board_state(task=task).key
    assert len(_api_ids(client, task)) == 3
    client.get(f"/tasks/{task.slug}/")
    new = EvaluationFactory(
        submission=SubmissionFactory(task=task, method_name="Newcomer"), value=0.99
    )
    assert board_state(task=task).key != before
    ids = _api_ids(client, task)
    assert ids[0] == new.submission.public_id and len(ids) == 4
    assert "Newcomer" in client.get(f"/tasks/{task.slug}/").content.decode()


def test_a_hidden_or_withdrawn_entry_leaves_the_next_board(client, staff):
    task = _board(4)
    ids = _api_ids(client, task)
    page = client.get(f"/tasks/{task.slug}/").content.decode()
    hidden, withdrawn = ids[0], ids[1]
    sub = Submission.objects.get(public_id=hidden)
    assert sub.method_name in page
    submission_hide(actor=staff, submission=sub, reason="Leaks the test labels.")
    assert hidden not in _api_ids(client, task)
    assert sub.method_name not in client.get(f"/tasks/{task.slug}/").content.decode()

    other = Submission.objects.get(public_id=withdrawn)
    submission_unpublish(actor=other.owner, submission=other)
    assert _api_ids(client, task) == ids[2:]


def test_a_rescore_changes_the_next_board(client):
    task = _board(3)
    ids = _api_ids(client, task)
    last = ids[-1]
    client.get(f"/tasks/{task.slug}/")
    key = board_state(task=task).key
    EvaluationFactory(submission=Submission.objects.get(public_id=last), value=0.97, seed=777)
    assert board_state(task=task).key != key
    assert _api_ids(client, task)[0] == last
    rows = client.get(f"/api/tasks/{task.slug}/leaderboard/").json()["rows"]
    assert rows[0]["primary"]["value"] == pytest.approx(0.97, abs=0.05)


def test_a_deploy_that_changes_the_rendering_code_changes_every_board(
    client, monkeypatch, tmp_path
):
    """The cached page fragment is keyed by the rendering code too: a new template (or
    template tag, view or plot code) is served at once, not after the board next changes."""
    task = _board(2)
    assert client.get(f"/tasks/{task.slug}/").status_code == 200
    key = board_state(task=task).key
    sources = []
    for i, path in enumerate(leaderboard_selectors.RENDERING_SOURCES):
        copy = tmp_path / f"{i}-{path.name}"
        copy.write_bytes(path.read_bytes())
        sources.append(copy)
    monkeypatch.setattr(leaderboard_selectors, "RENDERING_SOURCES", tuple(sources))
    leaderboard_selectors.rendering_fingerprint.cache_clear()
    assert board_state(task=task).key == key  # the same code: the same key
    sources[0].write_bytes(sources[0].read_bytes() + b"<!-- the next release -->")
    leaderboard_selectors.rendering_fingerprint.cache_clear()
    assert board_state(task=task).key != key
    monkeypatch.undo()
    leaderboard_selectors.rendering_fingerprint.cache_clear()


def test_the_page_shows_the_top_rows_and_links_to_all(client, monkeypatch):
    from leaderboard.board import renderings

    monkeypatch.setattr(renderings, "BOARD_PAGE_ROWS", 2)
    task = _board(4)
    page = client.get(f"/tasks/{task.slug}/").content.decode()
    # each entry's row and its detail row
    assert page.count('<tr class="') == 2 * 2 and page.count('<tr class="detail') == 2
    assert "Show all 4 entries" in page and "all=1" in page
    every = client.get(f"/tasks/{task.slug}/?all=1").content.decode()
    assert every.count('<tr class="') == 4 * 2 and "Show all" not in every
    # the exports stay complete
    assert len(_api_ids(client, task)) == 4
    csv = client.get(f"/api/tasks/{task.slug}/leaderboard/?format=csv").content.decode()
    assert len(csv.strip().splitlines()) == 5


def test_the_cached_page_keeps_the_navigation_per_user(client, user):
    task = _board(2)
    anonymous = client.get(f"/tasks/{task.slug}/").content.decode()
    client.force_login(user)
    logged_in = client.get(f"/tasks/{task.slug}/").content.decode()
    assert user.get_username() in logged_in and user.get_username() not in anonymous


def test_a_nul_in_the_task_filter_is_a_404_not_a_500(client, user):
    client.force_login(user)
    r = client.get("/api/submissions/", {"task": "in-hospital\x00mortality"})
    assert r.status_code == 404
    assert client.get("/api/tasks/a%00b/leaderboard/").status_code == 404


def test_while_a_board_is_being_built_other_readers_get_the_previous_one(client):
    from django.core.cache import cache

    task = _board(3)
    old_ids = _api_ids(client, task)
    new = EvaluationFactory(submission=SubmissionFactory(task=task), value=0.99)
    state = board_state(task=task)
    series = f"board:v2:{task.pk}"
    # another process is building the new board: this reader gets the previous one, which
    # is not cached under the new key
    assert cache.add(f"{series}:building", state.key, 60)
    stale = leaderboard_rows(task=task, state=state)
    assert not stale.fresh and [r.entry_id for r in stale.rows] == old_ids
    assert cache.get(state.key) is None
    cache.delete(f"{series}:building")
    fresh = leaderboard_rows(task=task, state=state)
    assert fresh.fresh and fresh.rows[0].submission_id == new.submission_id
    assert _api_ids(client, task)[0] == new.submission.public_id


def test_fairness_summaries_are_not_shown_as_groups():
    from leaderboard.board.renderings import report_sections

    est = {"value": 0.8, "ci": [0.7, 0.9]}
    report = fake_report(0.8, seed=1)
    report["fairness"]["attributes"] = {
        "sex": {
            "groups": {
                "F": {**est, "n_units": 40, "n_patients": 30},
                "M": {**est, "n_units": 50, "n_patients": 35},
            },
            "suppressed_groups": 0,
            "worst_group": "F",
            "gap": {"value": 0.05, "ci": [0.0, 0.1]},
            "demographic_parity_ratio": {"value": 0.9, "ci": [0.8, 1.0]},
            "equalized_odds_ratio": {"value": 0.85, "ci": [0.7, 1.0]},
        }
    }
    (sex,) = report_sections(report)["fairness_attributes"]
    assert list(sex["groups"]) == ["F", "M"]
    assert [s["key"] for s in sex["summaries"]] == [
        "worst_group",
        "gap",
        "demographic_parity_ratio",
        "equalized_odds_ratio",
        "suppressed_groups",
    ]
    assert [s["is_estimate"] for s in sex["summaries"]] == [False, True, True, True, False]


def test_the_entry_page_renders_fairness_groups_and_summaries_apart(client):
    from django.urls import reverse

    ev = EvaluationFactory(value=0.8)
    est = {"value": 0.8, "ci": [0.7, 0.9]}
    report = fake_report(0.8, seed=1)
    report["fairness"]["attributes"] = {
        "sex": {
            "groups": {
                "F": {**est, "n_units": 60, "n_patients": 60},
                "M": {**est, "n_units": 70, "n_patients": 70},
            },
            "suppressed_groups": 0,
            "worst_group": "F",
            "gap": {"value": 0.05, "ci": [0.0, 0.1]},
            "equalized_odds_ratio": {"value": 0.85, "ci": [0.7, 1.0]},
        }
    }
    ev.report = report
    ev.save()
    page = client.get(reverse("entry", args=[ev.submission.public_id])).content.decode()
    assert "Worst group" in page and "Equalized odds ratio" in page
    assert "suppressed_groups" not in page and "equalized_odds_ratio" not in page
