"""The submit page sends each track's upload to its own address, in a real browser: a
container image to ``/submit/?track=container`` (the image limit), a prediction file to
``/submit/`` (the prediction-file limit); switching tracks moves the form between them."""

from __future__ import annotations

import pytest

from tests.leaderboard.conftest import ensure_tracks
from tests.leaderboard.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

PASSWORD = "a-long-test-password"


@pytest.fixture
def container_track(benchmark):
    from django.apps import apps

    ensure_tracks()
    module = __import__("leaderboard.board.migrations.0003_container_track",
                        fromlist=["open_container_track"])  # fmt: skip
    module.open_container_track(apps, None)


def test_the_form_posts_an_image_to_the_container_address_and_a_file_to_its_own(
    live_server, container_track, page, shoot, tmp_path
):
    base = live_server.url
    user = UserFactory(username="ada")
    user.set_password(PASSWORD)
    user.save()
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", "ada")
    page.fill("#id_password", PASSWORD)
    page.click("form.stacked button")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)

    page.goto(f"{base}/submit/")
    form = page.locator("#submit-form")
    assert not form.evaluate("f => new URL(f.action).searchParams.has('track')")
    page.select_option("#id_track", "container")
    assert form.evaluate("f => new URL(f.action).searchParams.get('track')") == "container"
    assert (
        page.locator(".field-image").is_visible() and not page.locator(".field-file").is_visible()
    )

    # An archive that is not an image: refused by the upload checks of the container
    # address, with the reason beside the image field.
    archive = tmp_path / "model.tar"
    archive.write_bytes(b"not a tar archive" * 64)
    page.set_input_files("#id_image", str(archive))
    page.fill("#id_method_name", "Tiny model")
    page.check("input[name=uses_ehr]")
    page.fill("#id_training_data", "the benchmark's train split only, no test subject")
    page.click("#submit-form button[type=submit]")
    page.wait_for_load_state()
    assert "track=container" in page.url
    assert "tar archive" in page.locator(".field-image .error").inner_text()
    shoot(page, "upload-limits-container-address")

    # Back on the prediction-file track, the form goes to its own address again.
    page.select_option("#id_track", "prediction-file")
    assert not form.evaluate("f => new URL(f.action).searchParams.has('track')")
    assert page.js_errors == []  # type: ignore[attr-defined]
