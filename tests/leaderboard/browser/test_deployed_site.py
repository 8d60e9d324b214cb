"""The site as the demo and production serve it, in a real browser: gunicorn with DEBUG off
and the static files collected (hashed names, gzip and brotli copies, far-future cache
headers). A board page weighs kilobytes on a warm cache; no page overflows at 1,280 px or on a
390 px phone, and every link of the header is in view at both; a missing page and a server error get the site's own pages, with no URL list
or traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.bench_page_weight import cold_and_warm
from tests.leaderboard import servers
from tests.leaderboard.browser.conftest import log_in, scored_entry
from tests.leaderboard.factories import UserFactory
from tests.leaderboard.test_compare import _noisy, _scored

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
RESULTS = ROOT / "var" / "test-results"
BOARD = "/tasks/in-hospital-mortality/"
KIB = 1024


@pytest.fixture(scope="module")
def deployed(django_db_setup, django_db_blocker, tmp_path_factory):
    """gunicorn on the test database with DEBUG off and COLLECTED_STATIC: the static files
    collected by `collectstatic` into a folder of this module's own (about 20 s)."""
    static_root = tmp_path_factory.mktemp("static")
    with django_db_blocker.unblock():
        # Each test makes its own tasks: the server reads the menu's on every page.
        env = servers.app_env(COLLECTED_STATIC="1", STATIC_ROOT=str(static_root), DEBUG="0",
                              NAV_TASKS_SECONDS="0")  # fmt: skip
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
                   cwd=ROOT, env=env, check=True, timeout=600)  # fmt: skip
    server, base = servers.start_gunicorn(env, workers=2)
    yield base, server, env
    server.stop()


@pytest.fixture
def entry(benchmark, sample_ihm_csv):
    """A scored entry with its report (plots, wide tables), and a second one on the board."""
    return scored_entry(benchmark, sample_ihm_csv,
                        method_name="Logistic regression on 48-h EHR summaries",
                        team_name="A team with a rather long name, as teams have",
                        training_data="train split only", uses_ehr=True, uses_cxr=False)  # fmt: skip


def test_a_board_page_weighs_under_100_kib_on_a_warm_cache_and_1_5_mib_on_a_cold_one(
    deployed, entry, chromium
):
    base, _, _ = deployed
    cold, warm = cold_and_warm(chromium, base + BOARD)
    figures = {
        "page": BOARD,
        "cold": {"bytes": cold["bytes"], "load_ms": round(cold["load_ms"]), "drawn_ms": round(cold["drawn_ms"])},
        "warm": {"bytes": warm["bytes"], "load_ms": round(warm["load_ms"]), "drawn_ms": round(warm["drawn_ms"])},
    }  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "page-weight.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\n{BOARD}: cold {cold['bytes'] / KIB:.1f} KiB in {cold['load_ms']:.0f} ms, "
          f"warm {warm['bytes'] / KIB:.1f} KiB in {warm['load_ms']:.0f} ms")  # fmt: skip

    assert cold["bytes"] < 1.5 * 1024 * KIB, figures
    assert warm["bytes"] < 100 * KIB, figures
    # plotly.js: the basic bundle, compressed, under a hashed name cached for good.
    [(url, plotly)] = [(u, r) for u, r in cold["requests"].items() if "/vendor/plotly" in u]
    assert "/static/vendor/plotly.min." in url and url.endswith(".js") and url.count(".") > 3
    assert plotly["headers"]["content-encoding"] in ("br", "gzip")
    assert "immutable" in plotly["headers"]["cache-control"]
    assert "max-age=315360000" in plotly["headers"]["cache-control"]
    assert plotly["bytes"] < 450 * KIB
    # On the warm visit only the page itself comes over the wire.
    assert not [u for u, r in warm["requests"].items() if "/static/" in u and r["bytes"] > 0]
    for visit in (cold, warm):
        assert visit["requests"][base + BOARD]["status"] == 200


def test_static_files_are_served_compressed_and_long_cached_under_hashed_names(deployed):
    import urllib.request

    base, _, _ = deployed
    html = urllib.request.urlopen(base + "/").read().decode()
    css = html.split('<link rel="stylesheet" href="')[1].split('"')[0]
    assert (
        css.startswith("/static/board/site.")
        and css.endswith(".css")
        and css != "/static/board/site.css"
    )
    for encoding in ("br", "gzip"):
        request = urllib.request.Request(base + css, headers={"Accept-Encoding": encoding})
        with urllib.request.urlopen(request) as response:
            assert response.headers["Content-Encoding"] == encoding
            assert "immutable" in response.headers["Cache-Control"]


@pytest.fixture
def rival(entry, benchmark, sample_ihm_csv):
    """A second entry scored by the real scorer (a noisier copy of Ada's predictions), so
    that the compare page has two entries with their replicates to pair."""
    task = benchmark.tasks.get(slug="in-hospital-mortality")
    return _scored(task, UserFactory(username="grace"), _noisy(sample_ihm_csv, scale=0.2, seed=3),
                   "A noisier copy of the logistic regression")  # fmt: skip


# (name, path, what to wait for); ENTRY, COMPARE and TEAM stand for the fixtures' pages.
# The pages after "submit" are seen logged in as Ada, the owner of the entry's team.
PAGES = [
    ("home", "/", None),
    ("board", BOARD, '.plot[data-figure="forest-figure"] svg.main-svg'),
    ("entry", "ENTRY", ".plot[data-figure] svg.main-svg"),
    ("compare", "COMPARE", '.plot[data-figure="compare-roc"] svg.main-svg'),
    ("team-public", "TEAM", None),
    ("metrics", "/metrics/", None),
    ("api-docs", "/api/docs/", ".swagger-ui .opblock"),
    ("login", "/accounts/login/", None),
    ("signup", "/accounts/signup/", None),
    ("404", "/no-such-page/", None),
    ("submit", "/submit/", None),
    ("my-submissions", "/me/submissions/", None),
    ("team", "/me/team/", None),
    ("token", "/accounts/token/", None),
    ("notifications", "/accounts/notifications/", None),
    ("queue", "/queue/", None),
]

# What overflows a page: the page itself, a table wider than its box at desktop width, and
# a plot's tick label that starts left of its plot (cut by the plot's edge).
OVERFLOW = """() => {
  const out = [];
  if (document.documentElement.scrollWidth > innerWidth) out.push("page " + document.documentElement.scrollWidth);
  if (innerWidth >= 1280) document.querySelectorAll("table").forEach((t) => {
    if (t.scrollWidth > t.parentElement.clientWidth + 1) out.push("table " + (t.id || t.className));
  });
  document.querySelectorAll(".plot[data-figure]").forEach((p) => {
    const left = p.getBoundingClientRect().left;
    p.querySelectorAll("g.ytick text").forEach((t) => {
      if (t.getBoundingClientRect().left < left - 1) out.push("cut label " + t.textContent);
    });
  });
  return out;
}"""

# What hides a link of the header: a navigation box that scrolls sideways (its content wider
# than its visible width), and a shown link, button or menu button that lies outside the
# viewport or outside the visible area of a box around it that clips (overflow not visible).
# Links inside a closed menu are not shown; they are checked with the menu open.
HEADER_CLIPPED = """() => {
  const out = [];
  const header = document.querySelector("header.top");
  if (!header) return out;
  const width = document.documentElement.clientWidth;
  header.querySelectorAll("nav").forEach((nav) => {
    // An open menu's panel hangs out of its nav on purpose (overflow visible: nothing scrolls).
    const clips = getComputedStyle(nav).overflowX !== "visible";
    if ((clips || !nav.querySelector("details[open]")) && nav.scrollWidth > nav.clientWidth)
      out.push("nav scrolls " + nav.scrollWidth + " > " + nav.clientWidth);
  });
  header.querySelectorAll("a, button, summary").forEach((el) => {
    if (!el.checkVisibility()) return;
    const name = el.textContent.trim(), r = el.getBoundingClientRect();
    if (r.width < 1 || r.height < 1) out.push("no size: " + name);
    if (r.left < -0.5 || r.right > width + 0.5 || r.top < -0.5) out.push("off screen: " + name);
    for (let box = el.parentElement; box && box !== document.body; box = box.parentElement) {
      const style = getComputedStyle(box);
      if (style.overflowX === "visible" && style.overflowY === "visible") continue;
      const b = box.getBoundingClientRect();
      if (r.left < b.left - 0.5 || r.right > b.right + 0.5 || r.top < b.top - 0.5 || r.bottom > b.bottom + 0.5)
        out.push("clipped by " + box.tagName.toLowerCase() + "." + box.className + ": " + name);
    }
  });
  return out;
}"""


def _header_problems(page, width: int, name: str, shoot) -> list[str]:
    """The header's links on this page: all in view with the Tasks menu closed, and with it
    open (its every board link in view; on the home page a screenshot of it open), and
    Escape closes it again. At 1,280 px the header is one line."""
    found = page.evaluate(HEADER_CLIPPED)
    menu = page.locator("header details.menu")
    menu.locator("summary").click()
    links = menu.locator(".menu-panel a")
    if links.count() == 0 or not links.first.is_visible():
        found.append("the Tasks menu shows no board links when opened")
    found += [f"menu open: {p}" for p in page.evaluate(HEADER_CLIPPED)]
    if page.evaluate("document.documentElement.scrollWidth > innerWidth"):
        found.append("the open menu makes the page scroll sideways")
    if name == "home":
        shoot(page, f"{width}-menu-open")
    page.keyboard.press("Escape")
    if menu.get_attribute("open") is not None:
        found.append("Escape does not close the Tasks menu")
    height = page.locator("header.top").bounding_box()["height"]
    if width >= 1280 and height > 60:
        found.append(f"the header takes more than one line at {width} px ({height:.0f} px)")
    return found


@pytest.mark.parametrize(
    ("width", "height", "phone"), [(1280, 900, False), (390, 844, True)], ids=["1280", "390"]
)
def test_no_page_overflows_at_1280_px_or_on_a_390_px_phone(
    deployed, entry, rival, chromium, shoot, width, height, phone
):
    """At 1,280 px and at 390 x 844 (a phone held upright) every page fits its width: no
    sideways scroll, no table wider than its box at 1,280 (on a phone wide tables scroll
    inside their own box), and no plot label cut by the plot's edge. Every link of the
    header is in view, none behind a sideways scroll, with the Tasks menu closed and open;
    at 1,280 px the header is one line. Each page's screenshot is saved
    (``{width}-{page}.png``)."""
    base, _, _ = deployed
    context = chromium.new_context(viewport={"width": width, "height": height}, is_mobile=phone,
                                   has_touch=phone, device_scale_factor=1)  # fmt: skip
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    paths = {
        "ENTRY": entry.get_absolute_url(),
        "COMPARE": f"{BOARD}compare/?entries={entry.public_id},{rival.public_id}",
        "TEAM": entry.team.get_absolute_url(),
    }
    overflows, headers = {}, {}
    try:
        for name, path, drawn in PAGES:
            if name == "submit":
                log_in(page, base, "ada")
            response = page.goto(base + paths.get(path, path))
            assert response is not None and response.status == (404 if name == "404" else 200), name
            if drawn:
                page.locator(drawn).first.wait_for()
            page.wait_for_load_state("networkidle")
            shoot(page, f"{width}-{name}")
            found = page.evaluate(OVERFLOW)
            if found:
                overflows[name] = found
            if name != "api-docs":  # Swagger UI's page has no site header
                found = _header_problems(page, width, name, shoot)
                if found:
                    headers[name] = found
    finally:
        context.close()
    assert not overflows, overflows
    assert not headers, headers
    assert not errors, errors


def test_a_missing_page_gets_the_sites_own_404_with_no_url_list(deployed):
    import urllib.error
    import urllib.request

    base, server, _ = deployed
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(base + "/no-such-page/")
    assert caught.value.code == 404
    body = caught.value.read().decode()
    assert "<h1>Not found</h1>" in body and "MedMod leaderboard" in body
    for debug_text in ("URLconf", "URL patterns", "Request URL", "DEBUG = True", "Django"):
        assert debug_text not in body, debug_text
    assert "Traceback" not in server.log()


def test_a_server_error_gets_the_sites_own_500_with_no_traceback(deployed):
    """A database that cannot be reached makes every page fail: the visitor sees the
    site's 500 page, and the traceback goes to the server's log only."""
    import urllib.error
    import urllib.request

    _, _, env = deployed
    broken = {**env, "DATABASE_URL": env["DATABASE_URL"].rsplit("/", 1)[0] + "/no_such_database"}
    server, base = servers.start_gunicorn(broken, workers=1)
    try:
        for path in ("/", BOARD):
            with pytest.raises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(base + path)
            assert caught.value.code == 500
            body = caught.value.read().decode()
            assert "Something went wrong on our side" in body
            for debug_text in ("Traceback", "OperationalError", "no_such_database", "settings"):
                assert debug_text not in body, debug_text
    finally:
        server.stop()
    assert "OperationalError" in server.log()
