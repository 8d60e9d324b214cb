"""A participant's first visit in a real browser: sign up, confirm the e-mail address, upload through the form, see the
error for a bad file, watch the status change, find the entry ranked, and open its report
with the plots drawn."""

from __future__ import annotations

import re

import pytest
from django.core import mail

from leaderboard.board.models import Submission

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _fill_form(page, *, path, name: str) -> None:
    page.select_option("#id_task", "in-hospital-mortality")
    page.set_input_files("#id_file", str(path))
    page.fill("#id_method_name", name)
    page.check("input[name=uses_ehr]")
    page.fill("#id_training_data", "the benchmark's train split only, no test subject")


def test_sign_up_submit_watch_and_read_the_report(
    live_server, celery_worker, benchmark, sample_ihm_csv, page, shoot, tmp_path
):
    base = live_server.url
    good = tmp_path / "predictions.csv"
    good.write_bytes(sample_ihm_csv)
    lines = sample_ihm_csv.decode().splitlines()
    short = tmp_path / "short.csv"
    short.write_text("\n".join(lines[:-3]) + "\n")  # three test units left out
    wrong_type = tmp_path / "predictions.xlsx"
    wrong_type.write_bytes(b"PK\x03\x04 not a csv")

    # Sign up: the account is made and the submission form opens.
    page.goto(f"{base}/accounts/signup/")
    page.fill("#id_username", "ada")
    page.fill("#id_email", "ada@example.org")
    page.fill("#id_password1", "a-long-Passw0rd-for-tests")
    page.fill("#id_password2", "a-long-Passw0rd-for-tests")
    shoot(page, "01-signup")
    page.click("form.stacked button")
    page.wait_for_url(f"{base}/submit/")
    assert "Welcome, ada" in page.content()
    assert page.locator("#confirm-notice").count() == 1  # no submissions before confirming

    # The confirmation link sent by e-mail confirms the address.
    link = re.search(r"https?://\S+/accounts/confirm/\S+/", mail.outbox[-1].body)
    assert link and mail.outbox[-1].to == ["ada@example.org"]
    page.goto(link.group(0))
    assert "Address confirmed" in page.content()
    page.goto(f"{base}/submit/")
    assert page.locator("#confirm-notice").count() == 0
    shoot(page, "02-submit-form")

    # A file of the wrong type is refused in the browser, with the reason next to the field.
    _fill_form(page, path=wrong_type, name="Wrong file")
    page.click("#submit-form button[type=submit]")
    error = page.locator(".field-file .client-error")
    assert ".csv or .csv.gz" in error.inner_text()
    assert page.url == f"{base}/submit/"
    shoot(page, "03-bad-file-type")

    # A CSV missing three test units is accepted, then refused by the scorer with a reason.
    page.set_input_files("#id_file", str(short))
    page.fill("#id_method_name", "Incomplete file")
    page.click("#submit-form button[type=submit]")
    page.wait_for_url(f"{base}/me/submissions/")
    failed = page.locator("td.status-failed")
    failed.wait_for(timeout=60_000)  # the page polls the API and reloads when a run ends
    reason = failed.locator(".error").inner_text()
    assert re.search(r"\b3 of the \d+ units to predict have no row", reason), reason
    shoot(page, "04-failed-with-reason")

    # The real file: watch its status go from queued/running to published.
    page.goto(f"{base}/submit/")
    _fill_form(page, path=good, name="Logistic regression, EHR")
    page.click("#submit-form button[type=submit]")
    page.wait_for_url(f"{base}/me/submissions/")
    entry = Submission.objects.get(method_name="Logistic regression, EHR")
    row = page.locator(f'tr[data-id="{entry.public_id}"]')
    first_status = row.locator(".st").inner_text()
    assert first_status in ("Queued", "Running", "Scored", "Published")
    page.locator(f'tr[data-id="{entry.public_id}"] td.status-published').wait_for(timeout=60_000)
    shoot(page, "05-published")

    # Ranked on the board, above nothing but itself, with its CI.
    page.goto(f"{base}/tasks/in-hospital-mortality/")
    board_row = page.locator("table.board tbody tr", has_text="Logistic regression, EHR")
    assert board_row.count() == 1
    assert re.search(r"\b1\b", board_row.locator("td.rank").inner_text())
    shoot(page, "06-board")

    # The entry's report: every plot is drawn by plotly as SVG in the page.
    page.goto(f"{base}/entries/{entry.public_id}/")
    page.locator('.plot[data-figure="roc"] svg.main-svg').first.wait_for()
    figures = page.locator(".plot[data-figure]")
    assert figures.count() >= 3
    for i in range(figures.count()):
        fig = figures.nth(i)
        fig.scroll_into_view_if_needed()
        assert fig.locator("svg.main-svg").count() >= 1, fig.get_attribute("data-figure")
    assert (
        page.locator(
            '.plot[data-figure="roc"] path.js-line, .plot[data-figure="roc"] .scatterlayer path'
        ).count()
        > 0
    )
    shoot(page, "07-report")
    assert not page.js_errors, page.js_errors
