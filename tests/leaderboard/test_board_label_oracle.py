"""The board against a participant who reads it as a label oracle: two published entries
that differ only in one unit's prediction, scored under both labels of that unit on a main
scenario with few positives. Everything the board's API, CSV and page show about them -
rows, figures, ranks, rank intervals, tiers, the order, the differences to the leader with
their CIs and p-values, the tie marks - is the same whichever that label."""

from __future__ import annotations

import dataclasses
import io
import re

import numpy as np
import pandas as pd
import pytest
from django.core.cache import cache
from django.test import Client

from leaderboard.board.models import Evaluation, Submission
from leaderboard.board.selectors.benchmarks import task_truth
from leaderboard.board.services import evaluations
from tests.leaderboard.factories import UserFactory
from tests.leaderboard.test_compare import _scored

pytestmark = pytest.mark.django_db

API = "/api/tasks/in-hospital-mortality/leaderboard/"
PAGE = "/tasks/in-hospital-mortality/"
POSITIVES = 15  # positives left on the main (paired) scenario


def _few_positives(real):
    """The labels with all but ``POSITIVES`` of the paired units' positives made negative
    (seeded): a main scenario with few positives."""
    rng = np.random.default_rng(0)
    y = real.y.copy()
    paired_pos = np.flatnonzero(real.paired & (y == 1))
    drop = rng.choice(paired_pos, paired_pos.size - POSITIVES, replace=False)
    y[drop] = 0
    return y


def _board_under_each_label(ihm_task, sample_ihm_csv, monkeypatch):
    """Per label of the oracle's unit: the board's API rows, CSV and page, with the two
    entries ("High": 0.999 for that unit, "Low": 0.001) published by two participants."""
    from leaderboard.board.selectors import significance as sel

    real = task_truth(task=ihm_task)
    base_y = _few_positives(real)
    df = pd.read_csv(io.BytesIO(sample_ihm_csv))
    stays = real.keys["stay_id"].to_numpy()
    paired_ids = set(stays[real.paired & (base_y == 0)])
    unit = next(i for i, stay in enumerate(df["stay_id"]) if stay in paired_ids)
    row = int(np.flatnonzero(stays == df["stay_id"][unit])[0])
    files = {}
    for name, value in (("High", 0.999), ("Low", 0.001)):
        crafted = df.copy()
        crafted.loc[unit, "prediction"] = value
        files[name] = crafted.to_csv(index=False).encode()
    out = []
    for label in (0, 1):
        y = base_y.copy()
        y[row] = label
        truth = dataclasses.replace(real, y=y)
        assert int(y[real.paired].sum()) in (POSITIVES, POSITIVES + 1)
        monkeypatch.setattr(evaluations, "task_truth", lambda task, truth=truth: truth)
        monkeypatch.setattr(sel, "task_truth", lambda task, truth=truth: truth)
        cache.clear()
        # Each label's board is a fresh one: the other label's entries leave it.
        Evaluation.objects.filter(submission__task=ihm_task).delete()
        Submission.objects.filter(task=ihm_task).delete()
        subs = [_scored(ihm_task, UserFactory(), files[n], n) for n in ("High", "Low")]
        ids = {s.public_id: s.method_name for s in subs}
        anon = Client()
        body = anon.get(API).json()
        csv = anon.get(API, {"format": "csv"}).content.decode()
        html = anon.get(PAGE).content.decode()
        out.append((_named(body, ids), _named_text(csv, ids), _named_text(html, ids)))
    return out


VOLATILE = ("evaluation_id", "evaluated_at", "entry_id", "team", "team_slug")


def _named(obj, ids):
    """A board payload with each entry's public id replaced by its method name and the
    fields that differ between the two runs anyway (ids, times, owners) dropped."""
    if isinstance(obj, dict):
        return {k: _named(v, ids) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [_named(v, ids) for v in obj]
    if isinstance(obj, str):
        return ids.get(obj, obj)
    return obj


def _named_text(text, ids):
    for public_id, name in ids.items():
        text = text.replace(public_id, name)
    text = re.sub(r"\d{4}-\d\d-\d\d[T ][\d:.+]+(Z|[+-]\d\d:\d\d)?", "<time>", text)
    text = re.sub(r"user\w*|team-\w+", "<owner>", text)
    text = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", text)
    return re.sub(r'nonce="[^"]+"', "", text)


def _rows(body):
    rows = body.get("rows") or body.get("results") or body.get("entries")
    assert rows, body
    return rows


@pytest.mark.slow  # four entries scored by the real scorer
@pytest.mark.xfail(
    strict=True,
    reason="with 15 positives one unit moves an AUROC by up to 1/15, two thirds of the "
    "0.1 step the board rounds it to: here the entries' own published AUROCs cross a "
    "rounding boundary with the label (High 0.6 / 0.7, Low 0.6 / 0.6), and the order "
    "(by full-precision value), the rank intervals (from the replicates) and the "
    "difference to the leader (0.0 / -0.1, with a CI) follow it. Bounding these needs "
    "a policy for small scenarios (figures one unit moves by more than a small fraction "
    "of a step withheld, the order and rank intervals from the published figures), "
    "not a finer rounding rule",
)
def test_the_board_tells_nothing_of_the_label_where_two_entries_differ(
    ihm_task, sample_ihm_csv, monkeypatch
):
    (api0, csv0, html0), (api1, csv1, html1) = _board_under_each_label(
        ihm_task, sample_ihm_csv, monkeypatch
    )
    rows0, rows1 = _rows(api0), _rows(api1)
    by_name = {r["method_name"]: r for r in rows1}
    for a in rows0:
        b = by_name[a["method_name"]]
        assert a["primary"] == b["primary"], (a["method_name"], a["primary"], b["primary"])
    assert [r["method_name"] for r in rows0] == [r["method_name"] for r in rows1]
    for a, b in zip(rows0, rows1, strict=True):
        for key in ("rank", "tier", "position", "rank_interval", "primary", "metrics",
                    "vs_leader", "vs_baseline", "robustness", "fairness"):  # fmt: skip
            assert a.get(key) == b.get(key), (key, a.get(key), b.get(key))
    assert api0 == api1
    assert csv0 == csv1
    assert html0 == html1
