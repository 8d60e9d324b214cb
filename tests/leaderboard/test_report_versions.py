"""Stored reports of every version render: a version-1 report in an Evaluation row shows on
the entry page and through the report API (read and upgraded by scoring.report_reader); a
report the platform cannot read says so instead of failing the page."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scoring.report_types import REPORT_SCHEMA
from tests.leaderboard.factories import EvaluationFactory

pytestmark = pytest.mark.django_db

DATA = Path(__file__).parents[1] / "scoring" / "data"


def _stored(name: str) -> dict:
    return json.loads((DATA / name).read_text())


@pytest.mark.parametrize("name", ["report_schema1_first.json", "report_schema1_last.json"])
def test_a_version_1_report_renders_on_the_entry_page_and_the_api(client, anon, name):
    stored = _stored(name)
    sub = EvaluationFactory(report=stored).submission
    r = client.get(f"/entries/{sub.public_id}/")
    html = r.content.decode()
    assert r.status_code == 200 and 'id="report-unreadable"' not in html
    assert "Fairness by subgroup" in html and "Missing chest X-rays (robustness)" in html
    assert "Intersections" not in html and 'id="fairness-rates"' not in html
    for scenario in stored["scenarios"]:
        assert f"<td>{scenario}</td>" in html or scenario in html
    r = anon.get(f"/api/submissions/{sub.public_id}/report/")
    assert r.status_code == 200
    report = r.json()["report"]
    assert report["schema"] == REPORT_SCHEMA and report["upgraded_from"] == 1
    assert report["fairness"]["intersections"] == {}
    main = stored["scenarios"]["paired"]["metrics"]["auroc"]
    shown = report["scenarios"]["paired"]["metrics"]["auroc"]
    assert abs(shown["value"] - main["value"]) < 0.05 and shown["value"] != main["value"]
    assert report["summary"]["counts"]["n"] == stored["scenarios"]["paired"]["n_units"]
    text = json.dumps(report)
    assert '"seed"' not in text and '"replicates": [' not in text


def test_a_report_of_a_newer_version_is_not_shown_and_says_why(client, anon):
    stored = _stored("report_schema1_last.json")
    stored["schema"] = REPORT_SCHEMA + 1
    sub = EvaluationFactory(report=stored).submission
    r = client.get(f"/entries/{sub.public_id}/")
    assert r.status_code == 200
    html = r.content.decode()
    assert 'id="report-unreadable"' in html
    assert f"report version {REPORT_SCHEMA + 1} is newer than this scorer reads" in html
    r = anon.get(f"/api/submissions/{sub.public_id}/report/")
    assert r.status_code == 503
    assert "ask the organizers to re-score the entry" in r.json()["detail"]


def test_a_malformed_report_names_its_key_on_the_page(client):
    stored = _stored("report_schema1_last.json")
    del stored["scenarios"]["paired"]["n_units"]
    sub = EvaluationFactory(report=stored).submission
    html = client.get(f"/entries/{sub.public_id}/").content.decode()
    assert "report.scenarios.paired: the key &#x27;n_units&#x27; is missing" in html
