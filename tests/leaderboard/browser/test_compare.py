"""Comparing entries in a real browser: tick two rows of the board, press Compare selected,
and the compare page shows the metrics table with the paired differences and the entries'
curves overlaid; at 1,280 px and at 390 px the page does not scroll sideways (screenshots of
both under var/test-results/screenshots/)."""

from __future__ import annotations

import pytest

from tests.leaderboard.factories import UserFactory
from tests.leaderboard.test_compare import _noisy, _scored

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

BOARD = "/tasks/in-hospital-mortality/"
NAMES = [
    "Logistic regression on 48-h EHR summaries with missingness indicators",
    "A_very_long_model_name_without_any_spaces_at_all_v2_final_final",
    "Noisy copy",
]


@pytest.fixture
def entries(benchmark, sample_ihm_csv):
    task = benchmark.tasks.get(slug="in-hospital-mortality")
    files = [
        sample_ihm_csv,
        _noisy(sample_ihm_csv, scale=0.05, seed=1),
        _noisy(sample_ihm_csv, scale=0.3, seed=2),
    ]
    return [_scored(task, UserFactory(), f, name) for f, name in zip(files, NAMES, strict=True)]


def _overflow(page) -> tuple[int, int]:
    return page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")


def test_tick_two_rows_compare_and_see_the_table_and_overlaid_curves(
    live_server, entries, page, chromium, shoot
):
    page.goto(live_server.url + BOARD)
    first, second = entries[0], entries[2]
    page.check(f'#board input.pick[value="{first.public_id}"]')
    page.check(f'#board input.pick[value="{second.public_id}"]')
    page.click("#compare-form button")
    page.wait_for_url(lambda url: "/compare/" in url)
    assert first.public_id in page.url and second.public_id in page.url

    table = page.locator("#compare-metrics")
    assert table.is_visible()
    heads = table.locator("thead th.entry").all_inner_texts()
    assert len(heads) == 2 and NAMES[0] in heads[0] and NAMES[2] in heads[1]
    primary = table.locator("tbody tr.primary td.cmp").nth(1)
    assert "Δ" in primary.inner_text() and " p " in f" {primary.inner_text()} "
    # The noisy copy is significantly worse than the model it was made from.
    assert primary.locator("abbr.sig").count() == 1
    assert page.locator("#compare-scenarios tbody tr").count() >= 2

    roc = page.locator('.plot[data-figure="compare-roc"]')
    roc.locator(".main-svg").first.wait_for()
    legend = roc.locator("g.legend .traces").all_text_contents()
    assert sum(NAMES[0][:20] in t for t in legend) == 1, legend
    assert sum(NAMES[2] in t for t in legend) == 1, legend
    assert roc.locator("g.scatterlayer g.trace").count() >= 5  # 2 lines, 2 bands, chance
    assert page.locator('.plot[data-figure="compare-pr"] .main-svg').count() >= 1

    width, screen = _overflow(page)
    assert width <= screen, (width, screen)
    shoot(page, "compare-1280")
    assert not page.js_errors, page.js_errors

    url = page.url
    context = chromium.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                   has_touch=True, device_scale_factor=2)  # fmt: skip
    try:
        phone = context.new_page()
        phone.goto(url)
        phone.locator('.plot[data-figure="compare-roc"] .main-svg').first.wait_for()
        width, screen = _overflow(phone)
        assert width <= screen == 390, (width, screen)
        shoot(phone, "compare-390")
    finally:
        context.close()
