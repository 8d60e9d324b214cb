"""The Team page in a real browser: an owner invites someone through its form, the page and
the team's public page fit 1,280 px and a 390 px phone without sideways scroll, and a
screenshot of each is saved (``{width}-team.png``, ``{width}-team-public.png``)."""

from __future__ import annotations

import pytest

from leaderboard.board.models import TeamInvitation
from leaderboard.board.services.teams import invitation_accept, team_create, team_invite
from tests.leaderboard.browser.conftest import log_in
from tests.leaderboard.factories import EvaluationFactory, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

NO_SIDEWAYS_SCROLL = "() => document.documentElement.scrollWidth <= innerWidth"
# At 1,280 px no table is wider than its box (on a phone a wide table scrolls in its own).
TABLES_FIT = """() => innerWidth < 1280 || [...document.querySelectorAll("main table")].every(
  (t) => t.scrollWidth <= t.parentElement.clientWidth + 1)"""


@pytest.fixture
def team_site(benchmark):
    """A team with an owner, a member, a published entry and an open invitation; a user
    with an invitation of their own."""
    owner = UserFactory(username="olga")
    team = team_create(
        creator=owner,
        name="Multimodal Fusion Laboratory",
        description="Late and intermediate fusion of ICU time series and chest X-rays.",
    )
    member = UserFactory(username="mateo")
    invitation_accept(user=member, token=team_invite(actor=owner, team=team, invitee="mateo").token)
    team_invite(actor=owner, team=team, invitee="a.very.long.address.for.a.phone@hospital.example")
    EvaluationFactory(
        submission__owner=owner, submission__team=team, submission__method_name="Gated fusion"
    )
    UserFactory(username="ines")
    return team


@pytest.mark.parametrize(("width", "height"), [(1280, 900), (390, 844)], ids=["1280", "390"])
def test_the_team_page_works_and_fits_at_1280_and_390_px(
    live_server, team_site, chromium, shoot, width, height
):
    phone = width < 500
    context = chromium.new_context(viewport={"width": width, "height": height}, is_mobile=phone,
                                   has_touch=phone, device_scale_factor=1)  # fmt: skip
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        log_in(page, live_server.url, "olga")
        page.click("header a[href='/me/team/']")
        page.wait_for_url("**/me/team/")
        assert page.locator("h1").inner_text() == "Team Multimodal Fusion Laboratory"
        members = page.locator("#team-members tbody tr")
        assert members.count() == 2
        # The owner invites through the form; the page says so and lists it.
        page.fill("#id_invitee", "ines")
        page.click("#team-invite button")
        page.wait_for_load_state("networkidle")
        assert "ines was invited to Multimodal Fusion Laboratory." in page.inner_text(".messages")
        assert "ines" in page.inner_text("#team-invitations")
        assert TeamInvitation.objects.filter(invited_user__username="ines").exists()
        assert page.evaluate(NO_SIDEWAYS_SCROLL), f"the Team page scrolls sideways at {width}"
        assert page.evaluate(TABLES_FIT), "a table of the Team page is wider than its box"
        shoot(page, f"{width}-team")

        page.click(f"main a[href='{team_site.get_absolute_url()}']")
        page.wait_for_load_state("networkidle")
        assert "Gated fusion" in page.inner_text("#team-entries")
        assert page.evaluate(NO_SIDEWAYS_SCROLL), f"the public page scrolls sideways at {width}"
        assert page.evaluate(TABLES_FIT), "a table of the public page is wider than its box"
        shoot(page, f"{width}-team-public")
    finally:
        context.close()
    assert not errors, errors
