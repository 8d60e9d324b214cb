"""A new participant who follows only the task page: from the home page to the task, download
the public data there, check the download against the sha256 the page shows, build a
prediction file from it, validate it locally with the scoring engine as the page says, and
submit it through the link beside the files, on a fresh server with a real worker."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import tarfile

import pytest

from benchmark_data import Benchmark
from leaderboard.board.models import Submission
from leaderboard.board.sample import sample_predictions as logistic_regression_predictions
from tests.leaderboard.conftest import publish_release

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

TASK = "in-hospital-mortality"


def _download(page, link, dest):
    with page.expect_download() as info:
        link.click()
    download = info.value
    path = dest / download.suggested_filename
    download.save_as(str(path))
    return path


def test_from_the_task_page_to_a_scored_entry(
    live_server, celery_worker, benchmark, user, page, shoot, tmp_path
):
    publish_release(benchmark)
    base = live_server.url

    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", "a-long-test-password")
    page.click("form.narrow-form button")

    # Home page -> the task's page -> its "Get the data" section.
    page.goto(f"{base}/")
    page.click("main >> text=In-hospital mortality")
    page.wait_for_url(f"{base}/tasks/{TASK}/")
    section = page.locator("section#data")
    section.scroll_into_view_if_needed()
    shoot(page, "data-01-task-page")
    rows = section.locator("table.files tbody tr")
    assert rows.count() >= 6

    # The public archive, checked against the sha256 the page shows in full.
    archive_row = rows.filter(has_text="-public.tar.gz")
    archive = _download(page, archive_row.locator("a"), tmp_path)
    shown = archive_row.locator("code.hash").get_attribute("title")
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == shown
    sample = _download(page, rows.filter(has_text="sample-predictions.csv").locator("a"), tmp_path)
    assert sample.read_text().startswith("stay_id,scenario,prediction")

    # Unpack as the page says, and build a real model's predictions from the public part.
    command = section.locator("code", has_text="tar -xzf").inner_text()
    assert archive.name in command
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(tmp_path / "public", filter="data")
    public = Benchmark.open(tmp_path / "public")
    assert not public.has_credentialed()
    predictions = tmp_path / "predictions.csv"
    predictions.write_bytes(logistic_regression_predictions(public))

    # Validate it locally with the command the page gives.
    validate = section.locator("code", has_text="python -m scoring validate").inner_text()
    argv = validate.replace("--benchmark public", f"--benchmark {tmp_path / 'public'}")
    argv = argv.replace("predictions.csv", str(predictions)).split()
    assert argv[:4] == ["python", "-m", "scoring", "validate"]
    done = subprocess.run(
        [sys.executable, *argv[1:]], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert re.match(rf"ok: .* is a valid probability file for {TASK}", done.stdout)

    # Submit it through the page's link: the form opens on this task.
    section.locator("a", has_text="Submit it").click()
    page.wait_for_url(re.compile(rf"{re.escape(base)}/submit/\?suite=medmod&task={TASK}"))
    assert page.locator("#id_task").input_value() == TASK
    page.set_input_files("#id_file", str(predictions))
    page.fill("#id_method_name", "LR from the downloaded data")
    page.check("input[name=uses_ehr]")
    page.fill("#id_training_data", "the downloaded train split only")
    shoot(page, "data-02-submit")
    page.click("#submit-form button[type=submit]")
    page.wait_for_url(f"{base}/me/submissions/")
    entry = Submission.objects.get(method_name="LR from the downloaded data")
    page.locator(f'tr[data-id="{entry.public_id}"] td.status-published').wait_for(timeout=90_000)
    shoot(page, "data-03-published")
    assert not page.js_errors, page.js_errors
