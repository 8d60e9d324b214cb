"""Every page under the Content-Security-Policy, in a real browser: the header is sent, the
browser reports no violation (neither in the console nor as a ``securitypolicyviolation``
event), and the pages that draw plots or load a viewer still do."""

from __future__ import annotations

import pytest

from leaderboard.board.csp import HEADER
from leaderboard.board.services.benchmarks import benchmark_register
from tests.leaderboard.browser.conftest import log_in, scored_entry
from tests.leaderboard.factories import UserFactory
from tests.tiny_suite import build_tiny_suite_benchmark

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# Collects the violations the page reports to itself, from before its first script runs.
LISTEN = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__cspViolations.push(e.violatedDirective + " " + (e.blockedURI || "inline") +
    " at " + e.sourceFile + ":" + e.lineNumber);
});
"""


@pytest.fixture
def site(benchmark, sample_ihm_csv, tmp_path):
    """A scored entry with its report's plots, a second entry for the board's forest plot, a
    second suite, and an organizer (a superuser, for the admin)."""
    build_tiny_suite_benchmark(tmp_path / "tiny")
    benchmark_register(uri=str(tmp_path / "tiny"), verify=False)
    entry = scored_entry(benchmark, sample_ihm_csv, method_name="Logistic regression",
                         training_data="train split only", uses_ehr=True, uses_cxr=False)  # fmt: skip
    UserFactory(username="organizer", is_staff=True, is_superuser=True)
    return entry


def _visit(page, url: str, *, status: int = 200) -> list[str]:
    """Open ``url``, check its status and header, wait until nothing more loads, and return
    the violations the browser reported."""
    page.console_violations.clear()
    response = page.goto(url)
    assert response is not None and response.status == status, (url, response and response.status)
    header = response.headers.get(HEADER.lower(), "")
    assert "script-src 'self' 'nonce-" in header and "frame-ancestors 'none'" in header, url
    page.wait_for_load_state("networkidle")
    return page.console_violations + page.evaluate("window.__cspViolations")


@pytest.fixture
def csp_page(page):
    page.context.add_init_script(LISTEN)
    page.console_violations = []

    def on_console(msg):
        text = msg.text
        if "Content Security Policy" in text or "Refused to" in text:
            page.console_violations.append(f"{msg.type}: {text}")

    page.on("console", on_console)
    return page


def test_every_page_sends_the_policy_and_breaks_none_of_it(live_server, site, csp_page, shoot):
    base, page = live_server.url, csp_page
    entry = site
    seen: dict[str, list[str]] = {}

    def visit(name: str, path: str, status: int = 200) -> None:
        seen[name] = _visit(page, f"{base}{path}", status=status)

    # Anonymous pages.
    visit("home", "/")
    visit("MedMod board", "/tasks/in-hospital-mortality/")
    forest = page.locator('.plot[data-figure="forest-figure"] svg.main-svg')
    assert forest.count() >= 1, "the board's forest plot was not drawn"
    visit("second suite's board", "/suites/tiny-notes/tasks/mortality-24h/")
    visit("entry with plots", f"/entries/{entry.public_id}/")
    figures = page.locator(".plot[data-figure]")
    assert figures.count() >= 3
    for i in range(figures.count()):
        figures.nth(i).scroll_into_view_if_needed()
        assert figures.nth(i).locator("svg.main-svg").count() >= 1, "a plot was not drawn"
    # Plotly's own style rules (its mode bar's) were added to the nonced element.
    assert (
        page.evaluate("document.getElementById('plotly.js-style-global').sheet.cssRules.length") > 0
    )
    shoot(page, "csp-entry")
    visit("metrics help", "/metrics/")
    visit("login", "/accounts/login/")
    visit("signup", "/accounts/signup/")
    visit("404", "/no-such-page/", status=404)
    visit("API docs (Swagger UI)", "/api/docs/")
    page.locator(".swagger-ui .opblock").first.wait_for()
    shoot(page, "csp-swagger")

    # The owner's pages.
    log_in(page, base, "ada")
    visit("submit", "/submit/")
    visit("my submissions", "/me/submissions/")
    visit("API token", "/accounts/token/")
    # The token page asks before making a new token, from a script file.
    page.once("dialog", lambda dialog: dialog.dismiss())
    old = page.inner_text("#token")
    page.click("main form button")
    assert page.inner_text("#token") == old  # dismissed: nothing was sent

    # The organizer's: the admin.
    page.context.clear_cookies()
    log_in(page, base, "organizer")
    visit("admin index", "/admin/")
    visit("admin change list", "/admin/board/submission/")
    assert page.locator("#result_list tbody tr").count() == 2
    visit("admin change form", f"/admin/board/submission/{entry.pk}/change/")
    shoot(page, "csp-admin")

    broken = {name: v for name, v in seen.items() if v}
    assert not broken, broken
    assert not page.js_errors, page.js_errors
