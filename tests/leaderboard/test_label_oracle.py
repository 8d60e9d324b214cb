"""The disclosure budget against a participant who wants the hidden labels.

The attack suite (``scripts/label_oracle_attacks.py``) plays one identity's daily quota on
the demo benchmark against the real scoring engine, reading the report as the API serves it
to the entry's owner; every participant-facing endpoint and page is scanned for figures
beyond their published precision, per-replicate values and the seed.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from leaderboard.board.models import Evaluation, Submission
from leaderboard.board.services.evaluations import evaluation_run
from scoring.disclosure import MAX_DECIMALS

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "label_oracle_attacks", ROOT / "scripts" / "label_oracle_attacks.py"
)
attacks = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = attacks
_spec.loader.exec_module(attacks)


@pytest.fixture(scope="module")
def attack_results(demo_benchmark_dir):
    oracle, units, y, score = attacks.engine_setup(demo_benchmark_dir, "participant")
    honest = attacks.honest_predictions(demo_benchmark_dir, units)
    return attacks.run_all(
        oracle, units, y, quota=settings.SUBMISSIONS_PER_DAY, honest=honest, score=score
    )


@pytest.mark.slow
def test_a_days_quota_of_attacks_recovers_labels_no_better_than_chance(attack_results):
    """Every attack's accuracy on the labels it claims has a 95% CI covering chance."""
    for name, res in attack_results.items():
        if res["labels"]:
            lo, hi = res["ci"]
            assert lo <= res["chance"] <= hi, (name, res)
            assert not res["above_chance"], (name, res)
    assert attack_results["combined"]["submissions"] == settings.SUBMISSIONS_PER_DAY
    assert attack_results["combined"]["labels"] > 100


def test_a_submission_built_from_the_attacks_scores_no_better_than_the_honest_model(
    attack_results,
):
    res = attack_results["combined"]
    assert res["built_score"] <= res["honest_score"], res


def test_the_stored_report_is_the_oracle_the_budget_closes(demo_benchmark_dir):
    """Against the full stored report, one submission's curve decodes every paired label:
    the attack works, so its failure above is the budget's doing."""
    oracle, units, y, _ = attacks.engine_setup(demo_benchmark_dir, "stored")
    k = attacks.attack_curve_rank(oracle, units, np.random.default_rng(0))
    res = attacks.outcome(k.guesses, y, k.submissions, base_rate=float(y.mean()))
    assert res["accuracy"] == 1.0 and res["above_chance"], res


# --- the scan -------------------------------------------------------------------------------

FLOAT = re.compile(r"(?<![\w.])-?\d+\.(\d+)(?:[eE][-+]?\d+)?(?![\w.])")


def _floats_too_fine(text: str) -> list[str]:
    """Numbers with a non-zero digit past the published precision (zero padding says nothing)."""
    text = re.sub(r"\d{2}:\d{2}:\d{2}\.\d+", "", text)  # times of day are not figures
    return [m.group(0) for m in FLOAT.finditer(text) if len(m.group(1).rstrip("0")) > MAX_DECIMALS]


def _walk(obj, path=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _walk(v, f"{path}[{i}]")
    else:
        yield path, obj


def _check_json(body, seed: int, what: str) -> None:
    for path, v in _walk(body):
        assert not path.endswith(".seed"), f"{what}: a seed at {path}"
        assert not re.search(r"\.replicates\[", path), f"{what}: replicate values at {path}"
        if isinstance(v, float) and not path.endswith(".threshold"):
            assert round(v, MAX_DECIMALS) == v, f"{what}: {v} at {path}"
    assert str(seed) not in json.dumps(body), f"{what}: the resampling seed"


@pytest.fixture
def scored_private_entry(api, user, benchmark, sample_ihm_csv, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        r = api.post(
            "/api/submissions/",
            {"task": "in-hospital-mortality", "method_name": "LR", "modalities": "ehr",
             "training_data": "train split only", "visibility": "private",
             "file": SimpleUploadedFile("p.csv", sample_ihm_csv)},
            format="multipart",
        )  # fmt: skip
    assert r.status_code == 201, r.content
    sub = Submission.objects.get(public_id=r.json()["id"])
    ev = evaluation_run(evaluation_id=sub.evaluations.get().pk, worker="test")
    assert ev.status == "succeeded", ev.error_message
    return sub, ev


def test_no_response_holds_a_fine_float_a_replicate_or_the_seed(
    scored_private_entry, api, anon, staff_api
):
    """The owner's API and pages, another user's and an anonymous reader's, after the entry
    is published too: no float beyond 3 decimals, no replicate array, no seed."""
    sub, ev = scored_private_entry
    assert ev.seed and ev.replicate_values  # kept server-side
    stored = ev.report["scenarios"]["paired"]["metrics"]["auroc"]["value"]
    endpoints = [
        f"/api/submissions/{sub.public_id}/",
        f"/api/submissions/{sub.public_id}/report/",
        f"/api/submissions/{sub.public_id}/evaluations/",
        "/api/submissions/",
    ]
    for path in endpoints:
        r = api.get(path)
        assert r.status_code == 200, (path, r.content[:200])
        _check_json(r.json(), ev.seed, f"owner {path}")
    page = api.get(f"/entries/{sub.public_id}/")
    # The API client's token does not log in the web pages; the owner's session does.
    api.force_login(sub.owner)
    page = api.get(f"/entries/{sub.public_id}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert str(ev.seed) not in html
    assert f"{stored:.3f}" not in html or round(stored, 1) == round(stored, 3)
    assert not _floats_too_fine(html.split("<script", 1)[0])
    assert api.post(f"/api/submissions/{sub.public_id}/publish/").status_code == 200
    for client, who in ((anon, "anonymous"), (staff_api, "staff"), (api, "owner")):
        for path in (
            f"/api/submissions/{sub.public_id}/report/",
            "/api/tasks/in-hospital-mortality/leaderboard/",
        ):
            r = client.get(path)
            assert r.status_code == 200, (who, path)
            _check_json(r.json(), ev.seed, f"{who} {path}")
        csv = client.get("/api/tasks/in-hospital-mortality/leaderboard/?format=csv")
        assert csv.status_code == 200
        assert not _floats_too_fine(csv.content.decode()), who
        for page in (f"/entries/{sub.public_id}/", "/tasks/in-hospital-mortality/"):
            html = client.get(page).content.decode()
            assert str(ev.seed) not in html, (who, page)
            assert f"{stored:.3f}" not in html or round(stored, 1) == round(stored, 3)


def test_the_board_still_ranks_on_the_full_precision_values(scored_private_entry, api):
    """Published figures are rounded, the stored run is not: the ranking reads the stored
    per-replicate values and point estimates."""
    sub, ev = scored_private_entry
    stored = Evaluation.objects.get(pk=ev.pk)
    assert len(stored.replicate_values) == settings.SCORING_REPLICATES
    assert stored.primary_value == ev.report["summary"]["value"]
    assert round(stored.primary_value, 6) != round(stored.primary_value, 1)
    from leaderboard.board.selectors.leaderboard import _row

    entry = {
        "pk": sub.pk, "public_id": sub.public_id, "method_name": "LR", "team_name": "", "team__name": None,
        "team__slug": None, "owner__username": "u",
        "is_reference": False, "streamed": False, "track__slug": "prediction-file",
        "track__title": "",
        "uses_ehr": True, "uses_cxr": False, "modalities": ["ehr"], "paper_url": "", "code_url": "",
    }  # fmt: skip
    row = _row(entry, stored)
    assert row.value == stored.primary_value and len(row.replicates) == len(stored.replicate_values)
    assert row.shown_value == round(stored.primary_value, 1)
