"""docs/api.md's Teams walk-through runs as it stands, with real curl, against a live server,
and every output it shows has the fields and codes the server answers with."""

from __future__ import annotations

import os
import subprocess

import pytest

from leaderboard.board.models import Team, TeamMembership
from tests.leaderboard.factories import UserFactory
from tests.leaderboard.test_docs_api import DOC, check_output, steps

pytestmark = [pytest.mark.django_db(transaction=True)]

ADA_PASSWORD = "ada-long-Passw0rd"


def teams_walk_through() -> str:
    text = DOC.read_text()
    section = text[text.index("## Teams") :]
    return section.split("```bash\n", 1)[1].split("\n```", 1)[0]


def test_the_teams_curl_walk_through_runs_and_shows_what_the_server_says(live_server, tmp_path):
    UserFactory(username="demo", password="demo-password")
    UserFactory(username="ada", password=ADA_PASSWORD)
    parts: list[str] = ["set -euo pipefail"]
    shown_outputs: list[str] = []
    for command, shown in steps(teams_walk_through()):
        text = "\n".join(command).replace("http://127.0.0.1:8000", live_server.url)
        if shown:
            n = len(shown_outputs)
            shown_outputs.append("\n".join(shown))
            parts += [f"echo '@@{n}@@'", text, "echo", f"echo '@@/{n}@@'"]
        else:
            parts.append(text)
    assert len(shown_outputs) == 7
    done = subprocess.run(
        ["bash", "-c", "\n".join(parts)],
        cwd=tmp_path, env={**os.environ, "ADA_PASSWORD": ADA_PASSWORD},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    for n, shown in enumerate(shown_outputs):
        actual = done.stdout.split(f"@@{n}@@\n", 1)[1].split(f"@@/{n}@@", 1)[0]
        check_output(shown, actual, f"output {n + 1} of docs/api.md's Teams walk-through")
    # Where the walk-through leaves things: ada owns Fusion Lab alone.
    team = Team.objects.get(slug="fusion-lab")
    assert list(TeamMembership.objects.filter(team=team).values_list("user__username", "role")) == [
        ("ada", "owner")
    ]
