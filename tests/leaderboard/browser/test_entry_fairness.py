"""The entry page's fairness section in a real browser: the per-group error rates and
calibration, the intersections, the gaps against missing images and the reliability by
group figure (its attribute menu switches the groups drawn); at 1,280 px and at 390 px the
page does not scroll sideways (screenshots of both under var/test-results/screenshots/)."""

from __future__ import annotations

import pytest

from tests.leaderboard.factories import EvaluationFactory
from tests.scoring.test_fairness_groups import _report, _scores, _truth

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture(scope="module")
def stored_report() -> dict:
    truth = _truth()
    return _report(truth, _scores(truth), replicates=100)


def _overflow(page) -> tuple[int, int]:
    return page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")


def _check_section(page) -> None:
    assert page.locator("#fairness-rates").is_visible()
    assert page.locator("#fairness-rates tbody tr").count() >= 10
    assert page.get_by_text("race × gender", exact=True).is_visible()
    assert page.locator("#missing-image-groups tbody tr").count() >= 4
    assert "Pearson correlation" in page.locator("#missing-image-correlation").inner_text()
    page.locator('.plot[data-figure="reliability_by_group"] .main-svg').first.wait_for()


def test_the_fairness_section_fits_a_desktop_and_a_phone(
    live_server, stored_report, page, chromium, shoot
):
    sub = EvaluationFactory(report=stored_report).submission
    url = f"{live_server.url}/entries/{sub.public_id}/"
    page.goto(url)
    _check_section(page)
    plot = page.locator('.plot[data-figure="reliability_by_group"]')
    drawn = plot.locator("g.scatterlayer g.trace").count()
    assert drawn >= 3  # the diagonal and the first attribute's groups
    # The menu lists the attributes; picking another one draws its groups instead.
    plot.locator("g.updatemenu-header-group").click()
    plot.locator("g.updatemenu-dropdown-button").filter(has_text="gender").click()
    page.wait_for_timeout(300)
    names = plot.locator("g.legend .traces").all_text_contents()
    assert "F" in names and "M" in names and "WHITE" not in names, names
    width, screen = _overflow(page)
    assert width <= screen, (width, screen)
    page.locator("#fairness-rates").scroll_into_view_if_needed()
    shoot(page, "entry-fairness-1280")
    assert not page.js_errors, page.js_errors

    context = chromium.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                   has_touch=True, device_scale_factor=2)  # fmt: skip
    try:
        phone = context.new_page()
        phone.goto(url)
        _check_section(phone)
        width, screen = _overflow(phone)
        assert width <= screen == 390, (width, screen)
        box = phone.locator("#fairness-rates").bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
        shoot(phone, "entry-fairness-390")
    finally:
        context.close()
