"""The board at a glance, in a real browser: a realistic in-hospital mortality board (every
secondary metric, the robustness columns and the fairness gap, long entry and team names,
reference baselines and a container entry) fits a 1,280 px screen without scrolling
sideways, draws each entry's rank interval beside its rank, keeps the secondary metrics in a
detail row each entry opens, sets the reference rows apart and explains its marks under the
table; on a 390 px phone the page does not scroll sideways either."""

from __future__ import annotations

import numpy as np
import pytest

from leaderboard.board.models import Track
from tests.leaderboard.conftest import ensure_tracks
from tests.leaderboard.factories import EvaluationFactory, SubmissionFactory, TaskFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

BOARD = "/tasks/in-hospital-mortality/"
REPLICATES = 1000
SECONDARY = ["AUPRC", "Brier", "ECE", "F1", "Precision", "Recall", "Specificity"]

# (method name, team, reference, track, uses CXR, AUROC): close enough that rank intervals
# overlap, with names as long as people give them.
ENTRIES = [
    ("Multimodal late-fusion transformer over 48-h EHR time series and the last chest X-ray",
     "Clinical Machine Learning Group, University Hospital of a Rather Long City Name",
     False, Track.CONTAINER, True, 0.871),
    ("MedFuse (LSTM + ResNet-34)", "MedMod reference baselines", True, Track.PREDICTION_FILE, True, 0.866),
    ("Gradient-boosted trees on hourly aggregates with missingness indicators", "Independent researcher",
     False, Track.PREDICTION_FILE, False, 0.862),
    ("Logistic regression on 48-h EHR summaries", "MedMod reference baselines",
     True, Track.PREDICTION_FILE, False, 0.851),
    ("A_very_long_model_name_without_any_spaces_at_all_v2_final_final", "team-with-no-spaces-either-1234567890",
     False, Track.PREDICTION_FILE, True, 0.848),
    ("Temporal convolution network", "Department of Biomedical Informatics and Data Science",
     False, Track.PREDICTION_FILE, True, 0.839),
    ("Unimodal CXR DenseNet-121 baseline", "MedMod reference baselines", True, Track.PREDICTION_FILE, True, 0.792),
]  # fmt: skip


def _figure(rng, value: float, half: float) -> dict:
    value = float(value + rng.uniform(-0.004, 0.004))
    return {"value": value, "ci": [value - half, value + half]}


def _summary(auroc: float, rng) -> dict:
    """A run's summary as the scorer writes it for a MIMIC-sized paired test set: every
    metric of the task with its CI, the robustness figures and the fairness gaps."""
    metrics = {
        "auroc": {"value": auroc, "ci": [auroc - 0.008, auroc + 0.008]},
        "auprc": _figure(rng, auroc - 0.35, 0.009),
        "brier": _figure(rng, 0.083, 0.003),
        "ece": _figure(rng, 0.021, 0.004),
        "f1": _figure(rng, 0.472, 0.008),
        "precision": _figure(rng, 0.531, 0.009),
        "recall": _figure(rng, 0.426, 0.009),
        "specificity": _figure(rng, 0.951, 0.004),
    }
    gap = _figure(rng, 0.061, 0.03)
    return {
        "primary_metric": "auroc",
        "scenario": "paired",
        "value": auroc,
        "ci": metrics["auroc"]["ci"],
        "counts": {"n": 20000, "positives": 2600, "predicted_positive": 2100},
        "metrics": metrics,
        "robustness": {
            "audc": _figure(rng, auroc - 0.02, 0.01),
            "drops": {"cxr_missing_100": {**_figure(rng, -0.031, 0.012), "p": 0.004}},
            "drop_cxr_missing_100": _figure(rng, -0.031, 0.012),
            "ablations": {},
        },
        "fairness": {"max_gap": gap["value"], "attributes": {"age_group": {"gap": gap, "worst_group": "80+"}}},
    }  # fmt: skip


@pytest.fixture
def board():
    """Seven entries on MedMod's in-hospital mortality board, paired on one set of bootstrap
    replicates (a shift every entry shares, plus its own noise)."""
    ensure_tracks()
    rng = np.random.default_rng(7)
    shared = rng.normal(0, 0.012, REPLICATES)
    task = TaskFactory(slug="in-hospital-mortality")
    for name, team, reference, track, cxr, auroc in ENTRIES:
        summary = _summary(auroc, rng)
        replicates = np.clip(auroc + shared + rng.normal(0, 0.006, REPLICATES), 0, 1)
        EvaluationFactory(
            submission=SubmissionFactory(
                task=task,
                method_name=name,
                team_name=team,
                is_reference=reference,
                track=Track.objects.get(slug=track),
                uses_cxr=cxr,
            ),
            value=auroc,
            summary=summary,
            replicate_values=[round(float(v), 7) for v in replicates],
            primary_ci_low=summary["ci"][0],
            primary_ci_high=summary["ci"][1],
        )
    return task


def _widths(page) -> dict:
    return page.evaluate(
        """() => {
        const table = document.getElementById("board");
        return {page: document.documentElement.scrollWidth, screen: window.innerWidth,
                table: table.scrollWidth, box: table.parentElement.clientWidth};
    }"""
    )


def test_the_board_fits_1280_px_with_rank_bars_details_and_a_legend(
    live_server, board, page, shoot
):
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(live_server.url + BOARD)
    page.wait_for_load_state("networkidle")
    rows = page.locator("#board tbody tr.entry")
    assert rows.count() == len(ENTRIES)

    # Nothing runs past the screen: neither the page nor the table inside its box.
    widths = _widths(page)
    assert widths["page"] <= widths["screen"], widths
    assert widths["table"] <= widths["box"], widths
    # The fairness gap and the p-value are on screen without scrolling.
    for header in ("Fairness gap", "p vs leader", "Δ no CXR"):
        box = page.locator("#board thead th", has_text=header).bounding_box()
        assert box is not None and box["x"] + box["width"] <= 1280, (header, box)

    # Each row draws its rank interval beside its rank, and keeps it as text.
    bars = page.locator("#board tbody tr.entry td.rank svg.rank-bar")
    assert bars.count() == len(ENTRIES)
    for i in range(len(ENTRIES)):
        cell = rows.nth(i).locator("td.rank")
        low, high = cell.locator(".rank-range").inner_text().split("–")
        interval = cell.locator("rect.rank-interval")
        x, width = float(interval.get_attribute("x")), float(interval.get_attribute("width"))
        slot = 60 / len(ENTRIES)
        assert x == pytest.approx((int(low) - 1) * slot, abs=0.01)
        assert width == pytest.approx(max((int(high) - int(low) + 1) * slot, 3), abs=0.01)
        drawn = interval.bounding_box()
        assert drawn is not None and drawn["width"] >= 3
    # Close entries share ranks: some interval spans more than one rank.
    ranges = page.locator("#board .rank-range").all_inner_texts()
    assert any(a != b for a, b in (r.split("–") for r in ranges)), ranges

    # The secondary metrics are in each entry's detail row, hidden until it is opened.
    header = page.locator("#board thead").inner_text()
    assert not [m for m in SECONDARY if m in header.split()], header
    detail = page.locator("#board tbody tr.detail").first
    assert not detail.is_visible()
    rows.first.locator("td.more summary").click()
    assert detail.is_visible()
    figures = detail.locator("dl.figures")
    assert figures.locator("dt").all_inner_texts()[: len(SECONDARY)] == SECONDARY
    assert "Robustness AUDC" in figures.inner_text()
    first = figures.locator("div", has_text="AUPRC").locator("dd").inner_text()
    assert first.startswith("0.5") and "[" in first, first  # the value and its CI
    widths = _widths(page)
    assert widths["page"] <= widths["screen"] and widths["table"] <= widths["box"], widths
    # A metric's name in the detail row sorts the board by it: its column joins the row.
    figures.locator("dt a", has_text="Brier").click()
    page.wait_for_url("**sort=brier")
    assert page.locator("#board thead th.sorted").inner_text() == "Brier"
    values = [float(v) for v in page.locator("#board tbody td.sorted").all_inner_texts()]
    assert values == sorted(values)  # lower is better
    page.go_back()
    page.wait_for_load_state("networkidle")

    # Reference rows are set apart (a border on the left), and the marks explained in text.
    reference = page.locator("#board tbody tr.entry.reference")
    assert reference.count() == 3
    shadow = reference.first.locator("td").first.evaluate("td => getComputedStyle(td).boxShadow")
    assert "inset" in shadow, shadow
    plain = page.locator("#board tbody tr.entry:not(.reference) td").first
    assert plain.evaluate("td => getComputedStyle(td).boxShadow") == "none"
    legend = page.locator("dl.legend")
    assert legend.is_visible()
    text = legend.inner_text()
    for mark in (
        "verified · causal",
        "self-reported · not run causally",
        "reference",
        "not run causally",
    ):
        assert mark in text, (mark, text)
    assert "nothing vouches" in text and "streaming gateway" in text
    rows.first.locator("td.more summary").click()
    shoot(page, "board-1280")
    assert not page.js_errors, page.js_errors


def test_the_board_does_not_scroll_sideways_on_a_390_px_phone(live_server, board, chromium, shoot):
    context = chromium.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                   has_touch=True, device_scale_factor=1)  # fmt: skip
    page = context.new_page()
    try:
        page.goto(live_server.url + BOARD)
        page.wait_for_load_state("networkidle")
        page.locator("#board tbody tr.entry td.more summary").first.click()
        detail = page.locator("#board tbody tr.detail dl.figures").first
        assert detail.is_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        # The figures stay within the screen, though the table scrolls sideways in its box.
        box = detail.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
        assert page.locator("#board svg.rank-bar").count() == len(ENTRIES)
        assert page.locator("dl.legend").is_visible()
        # The forest plot's names are cut shorter on a phone, so each fits beside the plot
        # (none runs past the screen's left edge), and there is no mode bar over the title.
        forest = page.locator('.plot[data-figure="forest-figure"]')
        forest.scroll_into_view_if_needed()
        ticks = forest.locator("g.ytick text")
        assert ticks.count() == len(ENTRIES)
        for i in range(ticks.count()):
            tick = ticks.nth(i).bounding_box()
            assert tick is not None and tick["x"] >= 0, (ticks.nth(i).text_content(), tick)
        assert any(t.endswith("\u2026") for t in ticks.all_text_contents())
        assert forest.locator(".modebar").count() == 0
        shoot(page, "board-390")
    finally:
        context.close()
