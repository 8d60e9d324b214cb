"""Comparing entries side by side: the paired differences are the ranking module's (and the
board's) on the stored replicates; refusals say what to change; someone else's private
entry is a missing one; no per-replicate value leaves the platform."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pandas as pd
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from leaderboard.board.board_cache import leaderboard_rows
from leaderboard.board.models import Evaluation, Submission, Track
from leaderboard.board.services.evaluations import evaluation_run
from leaderboard.board.services.submissions import SubmissionMeta, submission_create
from scoring.compare import as_replicates
from scoring.disclosure import participant_report, round_figure, scenario_counts, unit_effect
from scoring.ranking import paired_difference
from tests.leaderboard.factories import EvaluationFactory, SubmissionFactory, UserFactory

pytestmark = pytest.mark.django_db

API = "/api/tasks/in-hospital-mortality/compare/"
PAGE = "/tasks/in-hospital-mortality/compare/"


def _noisy(csv: bytes, *, scale: float, seed: int) -> bytes:
    df = pd.read_csv(io.BytesIO(csv))
    rng = np.random.default_rng(seed)
    df["prediction"] = np.clip(df["prediction"] + rng.normal(0, scale, len(df)), 0, 1).round(6)
    return df.to_csv(index=False).encode()


def _scored(task, owner, csv: bytes, name: str, visibility: str = "public") -> Submission:
    sub = submission_create(
        owner=owner,
        task=task,
        track=Track.objects.get(slug=Track.PREDICTION_FILE),
        upload=SimpleUploadedFile(f"{name}.csv", csv),
        meta=SubmissionMeta(
            method_name=name,
            training_data="The benchmark's train split only.",
            uses_ehr=True,
            uses_cxr=False,
            visibility=visibility,
        ),
    )
    run = evaluation_run(evaluation_id=sub.evaluations.get().pk, worker="test")
    assert run.status == "succeeded", run.error_message
    sub.refresh_from_db()
    return sub


@pytest.fixture
def entries(ihm_task, sample_ihm_csv, user):
    """Three published entries of in-hospital mortality, scored by the real scorer: the
    sample model and two noisier copies of it."""
    owners = [user, UserFactory(), UserFactory()]
    files = [
        sample_ihm_csv,
        _noisy(sample_ihm_csv, scale=0.05, seed=1),
        _noisy(sample_ihm_csv, scale=0.3, seed=2),
    ]
    return [
        _scored(ihm_task, o, f, n)
        for o, f, n in zip(owners, files, ["Sample", "Slightly noisy", "Very noisy"], strict=True)
    ]


def _report(sub: Submission) -> dict:
    return Evaluation.objects.filter(submission=sub, status="succeeded").latest("id").report


def _expected(value_a, reps_a, value_ref, reps_ref, effect):
    """A difference as published: the ranking's paired_difference on the stored replicates,
    rounded by its CI and twice the unit effect; under one rounding step, no CI or p."""
    d = paired_difference(as_replicates(reps_a), as_replicates(reps_ref))
    diff, ci = round_figure(
        value_a - value_ref, d["diff_ci"], effect=2 * effect if effect else None
    )
    if diff == 0:
        return {"diff": 0.0, "diff_ci": [None, None], "p": None, "significant": None}
    return {"diff": diff, "diff_ci": ci, "p": round(d["p"], 3), "significant": d["p"] < 0.05}


def test_differences_equal_the_ranking_modules_on_the_stored_replicates(anon, entries):
    """Per scenario and per group, each entry's difference to the reference is
    ``scoring.ranking.paired_difference`` of the replicates stored in the two reports
    (rounded as published), and the groups shown are those the reports show."""
    a, b, c = entries
    res = anon.get(API, {"entries": f"{b.public_id},{a.public_id},{c.public_id}"})
    assert res.status_code == 200, res.content
    body = res.json()
    assert body["reference"] == b.public_id  # the first by default
    assert [e["entry_id"] for e in body["entries"]] == [b.public_id, a.public_id, c.public_id]
    ref = _report(b)
    primary = ref["primary_metric"]
    n_groups = 0
    for sub, shown in zip((a, c), body["entries"][1:], strict=True):
        rep = _report(sub)
        diff = shown["difference"]
        assert set(diff["scenarios"]) == set(rep["scenarios"]) & set(ref["scenarios"])
        for s, got in diff["scenarios"].items():
            sec, rsec = rep["scenarios"][s], ref["scenarios"][s]
            effect = unit_effect(primary, scenario_counts(rsec))
            want = _expected(
                sec["metrics"][primary]["value"], sec["replicates"],
                rsec["metrics"][primary]["value"], rsec["replicates"], effect,
            )  # fmt: skip
            assert {k: got[k] for k in want} == want, s
        assert diff["primary"] == diff["scenarios"][ref["main_scenario"]]
        assert diff["groups"] == {}  # withheld: each entry's own group figures only
        view = participant_report(rep)["fairness"]["attributes"]
        for attr, shown_by_group in shown["groups"].items():
            assert set(shown_by_group) == set(view[attr]["groups"])  # suppressed stay so
            n_groups += len(shown_by_group)
    assert n_groups >= 4
    # The very noisy entry is significantly worse than the slightly noisy one.
    assert body["entries"][2]["difference"]["primary"]["significant"] is True


def test_against_the_leader_the_differences_are_the_boards(anon, client, entries, ihm_task):
    """With the board's leader as reference, every entry's p-value and difference CI are
    the board's vs-leader ones, and the compare page shows the board's p-values."""
    board = leaderboard_rows(task=ihm_task)
    leader = board.rows[0]
    others = board.rows[1:]
    ids = ",".join([leader.entry_id, *(r.entry_id for r in others)])
    body = anon.get(API, {"entries": ids}).json()
    counts = scenario_counts(
        _report(Submission.objects.get(public_id=leader.entry_id))["scenarios"]["paired"]
    )
    effect = unit_effect(board.primary_metric, counts)
    page = client.get(PAGE, {"entries": ids}).content.decode()
    board_page = client.get("/tasks/in-hospital-mortality/").content.decode()
    from leaderboard.board.templatetags.board_tags import pvalue

    for row, shown in zip(others, body["entries"][1:], strict=True):
        got = shown["difference"]["primary"]
        if got["diff"] == 0:  # under one rounding step: no CI or p
            assert got["p"] is None and "withheld" in got
            continue
        assert got["p"] == round(row.vs_leader["p"], 3)
        _, ci = round_figure(row.vs_leader["diff"], row.vs_leader["diff_ci"], effect=2 * effect)
        assert got["diff_ci"] == ci
        assert f"p {pvalue(row.vs_leader['p'])}" in page
        assert pvalue(row.vs_leader["p"]) in board_page


def test_no_replicate_vector_in_any_response(anon, client, entries):
    """Neither the API nor the page holds a list as long as the replicates, nor any stored
    replicate value."""
    a, b, c = entries
    ids = f"{a.public_id},{b.public_id},{c.public_id}"
    api_text = anon.get(API, {"entries": ids}).content.decode()
    page = client.get(PAGE, {"entries": ids}).content.decode()

    def lengths(node, out):
        if isinstance(node, dict):
            for v in node.values():
                lengths(v, out)
        elif isinstance(node, list):
            out.add(len(node))
            for v in node:
                lengths(v, out)
        return out

    assert max(lengths(json.loads(api_text), set())) < 100
    assert 'replicates":[' not in api_text.replace(" ", "")
    for sub in entries:
        rep = _report(sub)
        stored = [v for v in rep["scenarios"]["paired"]["replicates"][:50] if v is not None]
        for attr in rep["fairness"]["attributes"].values():
            for g in attr["groups"].values():
                stored += [v for v in g["replicates"][:20] if v is not None]
        for v in stored:
            if len(repr(v)) >= 8:  # a value with at least six decimals
                assert repr(v) not in api_text and repr(v) not in page, v


def test_page_shows_each_section_and_the_overlaid_curves(client, entries):
    a, b, _ = entries
    res = client.get(PAGE, {"entries": [a.public_id, b.public_id], "reference": b.public_id})
    assert res.status_code == 200
    html = res.content.decode()
    for part in ('id="compare-metrics"', 'id="compare-scenarios"', "compare-groups-",
                 'data-figure="compare-roc"', 'data-figure="compare-pr"', "Δ", "compared with"):  # fmt: skip
        assert part in html, part
    roc = json.loads(html.split('id="compare-roc"', 1)[1].split(">", 1)[1].split("</script>")[0])
    names = {t.get("name") for t in roc["data"]}
    assert {f"{a.method_name} ({a.team_label})", f"{b.method_name} ({b.team_label})"} <= names


def test_own_private_entry_compares_and_someone_elses_is_missing(
    api, anon, entries, ihm_task, sample_ihm_csv, user
):
    """An owner compares their private entry with published ones; to anyone else it is the
    404 of an entry that does not exist, word for word apart from the id."""
    mine = _scored(
        ihm_task, user, _noisy(sample_ihm_csv, scale=0.1, seed=3), "Mine", visibility="private"
    )
    assert mine.status == Submission.Status.SCORED
    ids = f"{entries[0].public_id},{mine.public_id}"
    assert api.get(API, {"entries": ids}).status_code == 200
    hidden = anon.get(API, {"entries": ids})
    missing = anon.get(API, {"entries": f"{entries[0].public_id},zzzzzzzzzzzz"})
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["detail"].replace(mine.public_id, "X") == missing.json()["detail"].replace(
        "zzzzzzzzzzzz", "X"
    )
    assert Client().get(PAGE, {"entries": ids}).status_code == 404


@pytest.mark.parametrize(("count", "phrase"), [(1, "1 was given"), (6, "6 were given")])
def test_fewer_than_two_or_more_than_five_entries_are_refused(anon, ihm_task, count, phrase):
    subs = [SubmissionFactory(task=ihm_task) for _ in range(count)]
    res = anon.get(API, {"entries": ",".join(s.public_id for s in subs)})
    assert res.status_code == 400
    assert phrase in res.json()["detail"] and "2 to 5" in res.json()["detail"]
    assert res.json()["code"] == "invalid_comparison"
    page = Client().get(PAGE, {"entries": ",".join(s.public_id for s in subs)})
    assert page.status_code == 400 and phrase in page.content.decode()


def test_duplicates_and_a_reference_not_compared_are_refused(anon, ihm_task):
    a, b, c = (SubmissionFactory(task=ihm_task) for _ in range(3))
    res = anon.get(API, {"entries": f"{a.public_id},{a.public_id}"})
    assert res.status_code == 400 and "listed twice" in res.json()["detail"]
    res = anon.get(API, {"entries": f"{a.public_id},{b.public_id}", "reference": c.public_id})
    assert res.status_code == 400 and "reference" in res.json()["detail"]


def test_entries_of_another_task_or_without_a_current_result_are_refused(anon, benchmark, ihm_task):
    """Mixed tasks name the entry and both tasks; an entry scored only under an older
    scorer has no shared replicates and is refused with code not_scored."""
    a = EvaluationFactory(submission__task=ihm_task).submission
    other = EvaluationFactory(
        submission__task=benchmark.tasks.get(slug="decompensation")
    ).submission
    res = anon.get(API, {"entries": f"{a.public_id},{other.public_id}"})
    assert res.status_code == 400
    detail = res.json()["detail"]
    assert other.public_id in detail and "Decompensation" in detail and "one task" in detail
    old = EvaluationFactory(submission__task=ihm_task, scorer_version="0.0.1").submission
    res = anon.get(API, {"entries": f"{a.public_id},{old.public_id}"})
    assert res.status_code == 400 and res.json()["code"] == "not_scored"
    assert old.public_id in res.json()["detail"]


def test_the_board_has_tick_boxes_and_a_compare_button_that_work_without_script(client, entries):
    """The board's rows carry tick boxes of a GET form whose submit lands on the compare
    page with the ticked entries (``entries`` repeated)."""
    html = client.get("/tasks/in-hospital-mortality/").content.decode()
    assert 'id="compare-form"' in html and 'action="/tasks/in-hospital-mortality/compare/"' in html
    for sub in entries:
        assert f'name="entries" value="{sub.public_id}" form="compare-form"' in html
    res = client.get(PAGE + f"?entries={entries[0].public_id}&entries={entries[2].public_id}")
    assert res.status_code == 200


def test_a_comparison_reads_a_bounded_number_of_queries(
    anon, entries, django_assert_max_num_queries
):
    ids = ",".join(s.public_id for s in entries)
    with django_assert_max_num_queries(8):
        assert anon.get(API, {"entries": ids}).status_code == 200


def test_the_schema_documents_the_endpoint(anon):
    schema = anon.get("/api/schema/", HTTP_ACCEPT="application/json").content.decode()
    assert (
        "/api/tasks/{slug}/compare/" in schema
        and "/api/suites/{suite}/tasks/{slug}/compare/" in schema
    )


# --- permutation and DeLong tests -----------------------------------------------------------


def _truth_and_files(task, subs):
    from leaderboard.board.selectors.benchmarks import task_truth
    from leaderboard.board.selectors.significance import _read

    truth = task_truth(task=task)
    return truth, {s.public_id: _read(s, truth) for s in subs}


def test_permutation_and_delong_p_values_beside_the_bootstrap_and_cached(
    anon, client, entries, ihm_task, monkeypatch
):
    """Per scenario, p_permutation and p_delong are the scoring module's tests of the two
    stored files against the truth, rounded to three decimals; a reload reads no file."""
    from leaderboard.board.selectors import significance as sel
    from scoring.significance import compare_predictions, permutation_seed

    a, b, c = entries
    ids = f"{a.public_id},{b.public_id},{c.public_id}"
    body = anon.get(API, {"entries": ids}).json()
    assert "permutation" in body["tests"] and "delong" in body["tests"]
    truth, preds = _truth_and_files(ihm_task, entries)
    seed = permutation_seed(benchmark_hash=ihm_task.benchmark.manifest_hash, task=ihm_task.slug)
    shown = 0
    for sub, got in zip((b, c), body["entries"][1:], strict=True):
        want = compare_predictions(
            truth, preds[sub.public_id], preds[a.public_id], metric="auroc",
            scenarios=truth.scenarios, n_permutations=sel.N_PERMUTATIONS, seed=seed,
        )  # fmt: skip
        for s, d in got["difference"]["scenarios"].items():
            if d.get("withheld"):
                assert d["p_permutation"] is None and d["p_delong"] is None
                continue
            assert d["p_permutation"] == round(want[s]["permutation"]["p"], 3)
            assert d["p_delong"] == round(want[s]["delong"]["p"], 3)
            # The three tests agree on a clear difference.
            shown += 1
    assert shown >= 1
    noisy = body["entries"][2]["difference"]["primary"]
    assert noisy["significant"] and noisy["p_permutation"] < 0.05 and noisy["p_delong"] < 0.05
    page = client.get(PAGE, {"entries": ids}).content.decode()
    assert "perm. p" in page and "DeLong p" in page

    def no_reading(*args, **kwargs):
        raise AssertionError("a cached comparison read a prediction file")

    monkeypatch.setattr(sel, "read_predictions", no_reading)
    assert anon.get(API, {"entries": ids}).json() == body


def _one_unit_apart(ihm_task, sample_ihm_csv, monkeypatch):
    """A participant's two private entries that differ only in one paired unit's prediction
    (0.999 against 0.001), scored and compared under a truth where that unit is negative,
    then under one where it is positive: per label, the API's answer, the page, and the
    unrounded tests of the paired scenario."""
    import dataclasses

    from django.core.cache import cache
    from rest_framework.test import APIClient

    from leaderboard.board.selectors import significance as sel
    from leaderboard.board.selectors.benchmarks import task_truth
    from leaderboard.board.services import evaluations
    from scoring.significance import compare_predictions

    real = task_truth(task=ihm_task)
    df = pd.read_csv(io.BytesIO(sample_ihm_csv))
    paired_ids = set(real.keys.loc[real.paired, "stay_id"])
    unit = next(i for i, stay in enumerate(df["stay_id"]) if stay in paired_ids)
    files = []
    for value in (0.999, 0.001):
        crafted = df.copy()
        crafted.loc[unit, "prediction"] = value
        files.append(crafted.to_csv(index=False).encode())
    row = int(np.flatnonzero(real.keys["stay_id"].to_numpy() == df["stay_id"][unit])[0])
    out = []
    for label in (0, 1):
        y = real.y.copy()
        y[row] = label
        truth = dataclasses.replace(real, y=y)
        monkeypatch.setattr(evaluations, "task_truth", lambda task, truth=truth: truth)
        monkeypatch.setattr(sel, "task_truth", lambda task, truth=truth: truth)
        cache.clear()  # the same two files: the cached tests are the other label's
        owner = UserFactory()
        subs = [
            _scored(ihm_task, owner, f, name, visibility="private")
            for f, name in zip(files, ["High", "Low"], strict=True)
        ]
        api, viewer = APIClient(), Client()
        api.force_authenticate(owner)
        viewer.force_login(owner)
        ids = ",".join(s.public_id for s in subs)
        body = api.get(API, {"entries": ids}).json()
        html = viewer.get(PAGE, {"entries": ids}).content.decode()
        preds = {s.public_id: sel._read(s, truth) for s in subs}
        raw = compare_predictions(
            truth, preds[subs[1].public_id], preds[subs[0].public_id], metric="auroc",
            scenarios=["paired"],
        )["paired"]  # fmt: skip
        out.append((body, html, raw))
    return out


def _scenario_cells(html: str) -> list[str]:
    """The difference cells of the metrics and scenario tables."""
    tables = re.findall(
        r'<table class="board compare" id="compare-(?:metrics|scenarios)".*?</table>', html, re.S
    )
    return [c for t in tables for c in re.findall(r'<div class="diff[^"]*">.*?</div>', t)]


def test_two_entries_differing_in_one_unit_answer_the_same_whichever_its_label(
    ihm_task, sample_ihm_csv, monkeypatch
):
    """The comparison's difference per scenario (value, CI and all three p-values), its
    notes and the page's difference cells are the same whichever the unit's label, though
    the unrounded tests differ with the label."""
    (body0, html0, raw0), (body1, html1, raw1) = _one_unit_apart(
        ihm_task, sample_ihm_csv, monkeypatch
    )
    d0, d1 = body0["entries"][1]["difference"], body1["entries"][1]["difference"]
    assert d0["primary"] == d1["primary"] and d0["scenarios"] == d1["scenarios"]
    assert body0["notes"] == body1["notes"]
    assert _scenario_cells(html0) == _scenario_cells(html1) and _scenario_cells(html0)
    assert d0["primary"]["diff"] == 0.0 and "withheld" in d0["primary"]
    assert d0["primary"]["p_permutation"] is None and d0["primary"]["p_delong"] is None
    # Unrounded, the difference and DeLong's CI would tell the label (its z comes out at 1
    # here whatever the label, so its p-value happens not to).
    assert raw0["delong"]["diff"] != pytest.approx(raw1["delong"]["diff"])
    assert raw0["delong"]["ci"] != pytest.approx(raw1["delong"]["ci"])
    assert raw0["permutation"]["diff"] != pytest.approx(raw1["permutation"]["diff"])


def test_per_group_differences_of_two_entries_one_unit_apart_do_not_tell_its_label(
    ihm_task, sample_ihm_csv, monkeypatch
):
    """Per group, no paired difference is published (the note says why): each entry's own
    group figures stand beside each other, as its entry page discloses them."""
    (body0, html0, _), (body1, html1, _) = _one_unit_apart(ihm_task, sample_ihm_csv, monkeypatch)
    for body, html in ((body0, html0), (body1, html1)):
        assert body["entries"][1]["difference"]["groups"] == {}
        assert any("without a paired difference" in n for n in body["notes"])
        assert 'id="compare-groups-' in html and "without a paired difference" in html
    assert body0["notes"] == body1["notes"]
