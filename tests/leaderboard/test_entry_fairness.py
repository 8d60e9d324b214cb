"""The entry page and the report API show the intersections, the per-group error rates and
calibration and the gap/missing-image correlation, in their disclosed form only; a report
of the previous schema still renders."""

from __future__ import annotations

import copy
import json

import pytest

from tests.leaderboard.factories import EvaluationFactory
from tests.scoring.test_fairness_groups import _report, _scores, _truth

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def stored_report() -> dict:
    truth = _truth()
    return _report(truth, _scores(truth), replicates=100)


def _entry(report: dict):
    return EvaluationFactory(report=report).submission


def test_the_entry_page_shows_intersections_rates_and_missing_images(client, stored_report):
    sub = _entry(stored_report)
    html = client.get(f"/entries/{sub.public_id}/").content.decode()
    assert 'id="fairness-rates"' in html and "<th>TPR</th>" in html and "<th>ECE</th>" in html
    assert "race × gender" in html and "age_group × gender" in html
    assert "WHITE / F" in html
    assert 'id="missing-image-correlation"' in html and 'id="missing-image-groups"' in html
    assert "has_cxr" in html and "(natural: all test units)" in html
    assert 'data-figure="reliability_by_group"' in html
    # Stored-only figures never reach the page: label counts, replicates, full precision.
    assert "label_counts" not in html and "positives" not in html
    tpr = stored_report["fairness"]["attributes"]["gender"]["groups"]["F"]["tpr"]["value"]
    assert f"{tpr:.6f}"[:6] not in html


def _intersection_table(client, report) -> str:
    html = client.get(f"/entries/{_entry(report).public_id}/").content.decode()
    return html.split("Intersections", 1)[1].split("</table>", 1)[0]


def test_small_intersection_cells_are_not_on_the_page(client, stored_report):
    report = copy.deepcopy(stored_report)
    cell = report["fairness"]["intersections"]["race x gender"]
    name, group = next(iter(cell["groups"].items()))
    assert f"<td>{name}</td>" in _intersection_table(client, report)
    group["n_units"] = 35  # one unit would move its figure by more than 0.1
    assert f"<td>{name}</td>" not in _intersection_table(client, report)


def test_the_report_api_carries_the_disclosed_fairness_sections(anon, stored_report):
    sub = _entry(stored_report)
    r = anon.get(f"/api/submissions/{sub.public_id}/report/")
    assert r.status_code == 200
    fair = r.json()["report"]["fairness"]
    assert fair["scenario"] == "paired"
    assert set(fair["intersections"]) == {"race x gender", "age_group x gender"}
    group = fair["attributes"]["race"]["groups"]["WHITE"]
    assert {"tpr", "fpr", "selection_rate", "ece", "reliability"} <= set(group)
    assert fair["attributes"]["has_cxr"]["scenario"] == "natural"
    assert fair["missing_images"]["method"] == "pearson"
    text = json.dumps(fair)
    assert "label_counts" not in text and '"replicates"' not in text and '"seed"' not in text
    stored = stored_report["fairness"]["attributes"]["race"]["groups"]["WHITE"]
    assert group["tpr"]["value"] != stored["tpr"]["value"]  # rounded
    assert abs(group["tpr"]["value"] - stored["tpr"]["value"]) < 0.05


def test_a_report_of_the_previous_schema_still_renders(client, anon, stored_report):
    old = copy.deepcopy(stored_report)
    old["schema"] = 1
    for key in ("intersections", "missing_images", "scenario"):
        old["fairness"].pop(key)
    old["fairness"]["attributes"].pop("has_cxr")
    for entry in old["fairness"]["attributes"].values():
        for ge in entry["groups"].values():
            for key in ("tpr", "fpr", "selection_rate", "ece", "reliability", "label_counts"):
                ge.pop(key)
    old["plots"].pop("reliability_by_group")
    sub = _entry(old)
    r = client.get(f"/entries/{sub.public_id}/")
    html = r.content.decode()
    assert r.status_code == 200 and "Fairness by subgroup" in html
    assert 'id="fairness-rates"' not in html and "Intersections" not in html
    assert anon.get(f"/api/submissions/{sub.public_id}/report/").status_code == 200
