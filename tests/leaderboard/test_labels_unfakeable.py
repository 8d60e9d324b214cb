"""Labels a participant cannot fake: names reach Plotly as plain text (no live link, no
styled span), the platform's reserved words are refused in participant fields, and the
leaderboard CSV export cannot run a spreadsheet formula."""

from __future__ import annotations

import csv
import io
import json
import re
from html import unescape

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from leaderboard.board.api.views import CSVRenderer
from leaderboard.board.labels import normalise_label, reserved_phrase_in, spreadsheet_safe
from leaderboard.board.models import Submission, Team, Track
from leaderboard.board.selectors.submissions import task_get
from leaderboard.board.services.baselines import REFERENCE_TEAM, reference_user
from leaderboard.board.services.submissions import SubmissionMeta, submission_create
from scoring.plots import forest, plain_text
from tests.leaderboard.factories import EvaluationFactory

pytestmark = pytest.mark.django_db

PHISH = '<a href="https://evil.example/phish">Official baseline</a>'
BIG = '<span style="font-size:80px">Top</span>'
FORMULA = '=HYPERLINK("http://x","y")'


def _strings(obj):
    """Every string in a JSON document."""
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def _no_markup(figure) -> None:
    for s in _strings(figure):
        assert not re.search(r"<\s*(a|span|br|b|i|sub|sup|em)\b", s, re.I), s


# --- Plotly's pseudo-HTML ----------------------------------------------------------------


def test_plain_text_makes_plotly_markup_inert():
    assert plain_text(PHISH) == (
        '&lt;a href="https://evil.example/phish"&gt;Official baseline&lt;/a&gt;'
    )
    assert plain_text("A&B <br> &lt;") == "A&amp;B &lt;br&gt; &amp;lt;"
    assert plain_text("Late fusion (Platform reference)") == "Late fusion (Platform reference)"


def test_the_forest_plot_shows_names_as_typed_not_as_markup():
    fig = forest(
        [
            {"label": f"{PHISH} (x)", "value": 0.9, "ci": [0.85, 0.95]},
            {"label": f"{BIG} (<b>team</b>)", "value": 0.8, "ci": [0.7, 0.9]},
        ],
        metric="auroc",
    )
    _no_markup(fig)
    labels = fig["data"][0]["text"]
    # Plotly decodes the entities back: the reader sees exactly what was typed.
    assert [unescape(x) for x in labels] == [f"{PHISH} (x)", f"{BIG} (<b>team</b>)"]
    assert all(unescape(t).rstrip("\u2026") in unescape(x)
               for t, x in zip(fig["layout"]["yaxis"]["ticktext"], labels, strict=True))  # fmt: skip


def test_the_board_pages_forest_figure_carries_no_link_and_no_styled_span(client):
    EvaluationFactory(value=0.9, submission__method_name=PHISH, submission__team_name=BIG)
    EvaluationFactory(value=0.7, submission__method_name="Honest model")
    r = client.get("/tasks/in-hospital-mortality/")
    assert r.status_code == 200
    html = r.content.decode()
    match = re.search(r'<script id="forest-figure" type="application/json">(.*?)</script>', html)
    assert match, "the forest figure is on the page"
    figure = json.loads(match.group(1))
    _no_markup(figure)
    labels = [unescape(y) for y in figure["data"][0]["text"]]
    assert f"{PHISH} ({BIG})" in labels
    # The page's own HTML escapes the name too: no anchor to the phishing site anywhere.
    assert 'href="https://evil.example/phish"' not in html


# --- reserved words ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("Platform reference", "platform reference"),
        ("PLATFORM   REFERENCE", "platform reference"),
        ("platform\u00a0reference", "platform reference"),  # no-break space
        ("Ｐｌａｔｆｏｒｍ ｒｅｆｅｒｅｎｃｅ", "platform reference"),  # full-width forms
        ("Baseline (reference)", "baseline reference"),
        ("reference-baseline v2", "reference baseline"),
        ("The official model", "official"),
        ("offi\u200bcial", "official"),  # a zero-width space inside
        ("Verified fusion", "verified"),
    ],
)
def test_reserved_phrases_are_found_after_normalisation(text, phrase):
    assert reserved_phrase_in(text) == phrase


def test_names_also_refuse_the_boards_tags_but_prose_may_use_them():
    assert reserved_phrase_in("LR reference", is_name=True) == "reference"
    assert reserved_phrase_in("See the reference implementation") is None
    assert reserved_phrase_in("Referenced fusion", is_name=True) is None  # whole words only
    assert normalise_label("  A--b__C  ") == " a b c "


def _api_form(**kw):
    data = {
        "task": "in-hospital-mortality",
        "method_name": "My fusion",
        "modalities": "ehr",
        "training_data": "train and validation splits only",
        "file": SimpleUploadedFile("p.csv", b"stay_id,prediction\n1,0.5\n"),
    }
    data.update(kw)
    return data


@pytest.mark.parametrize(
    ("field", "value", "word"),
    [
        ("team_name", "Platform reference", "platform reference"),
        ("method_name", "Late fusion (reference baseline)", "reference baseline"),
        ("method_name", "ＯＦＦＩＣＩＡＬ model", "official"),
        ("description", "The verified baseline (reference) of the organisers.", "verified"),
        ("method_name", "Fusion reference", "reference"),
    ],
)
def test_the_api_refuses_reserved_words_naming_the_field_and_the_word(
    api, benchmark, field, value, word
):
    r = api.post("/api/submissions/", _api_form(**{field: value}), format="multipart")
    assert r.status_code == 400, r.json()
    body = r.json()
    assert body["code"] == "reserved_word" and list(body["errors"]) == [field]
    assert repr(word) in body["detail"] and field.replace("_", " ").split()[0] in body["detail"]
    assert not Submission.objects.exists()


def test_the_team_page_refuses_a_reserved_team_name(user, benchmark):
    """Entries take their team's name; the Team page refuses a name posing as the platform."""
    client = Client()
    client.force_login(user)
    r = client.post("/me/team/", {"action": "create", "name": "Platform Reference"})
    assert r.status_code == 400
    assert "team name contains &#x27;platform reference&#x27;" in r.content.decode()
    assert not Team.objects.exists()


def test_sign_up_refuses_a_reserved_user_name(client):
    r = client.post(
        "/accounts/signup/",
        {"username": "Platform_Reference", "email": "x@example.org",
         "password1": "a-Strong-pass-42", "password2": "a-Strong-pass-42"},
    )  # fmt: skip
    assert r.status_code == 400 and b"user name contains" in r.content


def test_the_platforms_own_reference_entries_keep_their_labels(benchmark):
    sub = submission_create(
        owner=reference_user(),
        task=task_get(slug="in-hospital-mortality"),
        track=Track.objects.get(slug=Track.PREDICTION_FILE),
        upload=SimpleUploadedFile("r.csv", b"stay_id,prediction\n1,0.5\n"),
        meta=SubmissionMeta(
            method_name="Late fusion",
            team_name=REFERENCE_TEAM,
            description="Reference baseline trained by the platform.",
            uses_ehr=True,
            uses_cxr=True,
            training_data="The benchmark's train split only.",
        ),
        is_reference=True,
        enforce_quota=False,
    )
    assert sub.team_name == "Platform reference" and sub.is_reference


# --- CSV formulas --------------------------------------------------------------------------


def test_spreadsheet_safe_prefixes_text_formulas_and_keeps_numbers():
    for cell in ("=1+1", "+1", "-cmd", "@SUM(A1)", "\tx", "\rx"):
        assert spreadsheet_safe(cell) == "'" + cell
    assert spreadsheet_safe(-0.05) == -0.05 and spreadsheet_safe(3) == 3
    assert spreadsheet_safe("Late fusion") == "Late fusion"


def test_the_leaderboard_csv_neutralises_a_formula_in_a_method_name(anon):
    ev = EvaluationFactory(value=0.8, submission__method_name=FORMULA, submission__team_name="+x")
    r = anon.get(f"/api/tasks/{ev.submission.task.slug}/leaderboard/?format=csv")
    assert r.status_code == 200
    rows = list(csv.DictReader(io.StringIO(r.content.decode())))
    row = next(x for x in rows if x["entry_id"] == ev.submission.public_id)
    assert row["method_name"] == "'" + FORMULA and row["team"] == "'+x"
    # Negative numbers stay numbers (the factory's drop without X-rays is -0.05, published
    # at the precision its CI supports): no quote in front.
    drop = row["drop_cxr_missing_100"]
    assert drop.startswith("-") and float(drop) < 0
    for value in row.values():
        assert not value.startswith(("=", "+", "@")) or value == ""


def test_the_csv_renderer_leaves_negative_numbers_numeric():
    out = CSVRenderer().render({"csv_header": ["name", "diff"], "csv_rows": [["-x", -0.25]]})
    assert out.decode().splitlines() == ["name,diff", "'-x,-0.25"]
