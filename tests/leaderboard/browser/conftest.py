"""A real browser (Debian's Chromium, driven by Playwright) against the live server of the
test run, with a real Celery worker scoring the uploads. scripts/browser-deps.sh installs
Chromium; the tests are skipped with the reason when it is not there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from leaderboard.board.models import Submission, Track
from leaderboard.board.services.evaluations import evaluation_run
from leaderboard.board.services.submissions import SubmissionMeta, submission_create
from leaderboard.board.services.teams import team_create
from tests.leaderboard.factories import EvaluationFactory, UserFactory

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SCREENSHOTS = Path(__file__).resolve().parents[3] / "var" / "test-results" / "screenshots"
PASSWORD = "a-long-test-password"  # every UserFactory user's


@pytest.fixture(scope="module")
def chromium():
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (run scripts/browser-deps.sh)")
    sync_api = pytest.importorskip("playwright.sync_api")
    # Playwright's sync API runs an event loop in the test's thread, which Django takes for
    # async code; the ORM calls of the fixtures are still plain synchronous calls. Only for
    # this module's tests.
    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if before is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before


@pytest.fixture
def page(chromium):
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors  # type: ignore[attr-defined]
    yield page
    context.close()


@pytest.fixture
def shoot():
    """Saves a full-page screenshot under var/test-results/screenshots/ (a CI artifact)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def _shoot(page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return _shoot


def log_in(page, base: str, username: str) -> None:
    """Log in through the site's form and wait until it has left the login page."""
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("main form button")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)


def scored_entry(benchmark, predictions: bytes, **meta) -> Submission:
    """Ada's prediction file on in-hospital mortality, scored (its report has plots), and a
    second entry, "Another model", on the same board."""
    task = benchmark.tasks.get(slug="in-hospital-mortality")
    owner = UserFactory(username="ada")
    # An entry takes its owner's team: a team name given here is Ada's team's.
    team_name = meta.pop("team_name", "")
    if team_name:
        team_create(creator=owner, name=team_name)
    entry = submission_create(
        owner=owner,
        task=task,
        track=Track.objects.get(slug=Track.PREDICTION_FILE),
        upload=SimpleUploadedFile("predictions.csv", predictions),
        meta=SubmissionMeta(**meta),
    )
    run = evaluation_run(evaluation_id=entry.evaluations.get().pk, worker="test")
    assert run.status == "succeeded", run.error_message
    EvaluationFactory(value=0.7, submission__method_name="Another model", submission__task=task)
    entry.refresh_from_db()
    return entry
