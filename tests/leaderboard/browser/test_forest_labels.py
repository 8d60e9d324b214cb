"""In a real browser, Plotly draws a participant's markup in the forest plot as text: no
live link to a phishing page, no styled span."""

from __future__ import annotations

import pytest

from tests.leaderboard.factories import EvaluationFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

PHISH_URL = "https://evil.example/phish"
PHISH = f'<a href="{PHISH_URL}">Official baseline</a>'
BIG = '<span style="font-size:80px">Top</span>'


def test_forest_plot_draws_markup_in_names_as_plain_text(live_server, page, shoot):
    EvaluationFactory(value=0.9, submission__method_name=PHISH, submission__team_name=BIG)
    EvaluationFactory(value=0.7, submission__method_name="Honest model")

    page.goto(f"{live_server.url}/tasks/in-hospital-mortality/")
    plot = page.locator('.plot[data-figure="forest-figure"]')
    plot.locator("svg.main-svg").first.wait_for()
    shoot(page, "forest-markup-as-text")

    assert page.locator(f'a[href="{PHISH_URL}"]').count() == 0
    assert plot.locator("svg a").count() == 0
    ticks = plot.locator("g.ytick text").all_text_contents()
    # The name is cut on the axis (scoring.plots.FOREST_LABEL_CHARS), and drawn as typed.
    assert any(t.startswith(PHISH[:30]) for t in ticks), ticks
    box = plot.locator("g.trace .point").first.bounding_box()
    plot.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    hover = plot.page.locator("g.hoverlayer text").first
    hover.wait_for()
    assert PHISH in hover.text_content() and BIG in hover.text_content()
    # No tick label is drawn at the 80 px the span asks for.
    styles = plot.locator("g.ytick text, g.ytick tspan").evaluate_all(
        "els => els.map(e => e.getAttribute('style') || '')"
    )
    assert not any("80px" in s for s in styles), styles
    assert not page.js_errors, page.js_errors
