"""docs/api.md matches the server: its curl walk-through runs as it stands, with real curl,
against a live server and a real worker, and every output it shows has the fields and codes
the server answers with; every error code its table lists is one the server returns."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.leaderboard.conftest import publish_release
from tests.leaderboard.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
ORGANIZER_PASSWORD = "an-organizer-Passw0rd"


def walk_through() -> str:
    text = DOC.read_text()
    section = text[text.index("## Walk-through with curl") :]
    return section.split("```bash\n", 1)[1].split("\n```", 1)[0]


def steps(script: str) -> list[tuple[list[str], list[str]]]:
    """(command lines, output comment lines) in order; a command's shown output is the
    comment that follows it without a blank line."""
    out: list[tuple[list[str], list[str]]] = []
    command: list[str] = []
    shown: list[str] = []
    in_heredoc = None
    for line in script.splitlines():
        if in_heredoc:
            command.append(line)
            if line.strip() == in_heredoc:
                in_heredoc = None
            continue
        if line.startswith("#") and command:
            shown.append(line[1:].strip())
            continue
        if command and (not line.strip() or line.startswith("#") or shown):
            out.append((command, shown))
            command, shown = [], []
        if not line.strip() or line.startswith("#"):
            if line.startswith("#"):
                out.append(([line], []))  # a step's title
            continue
        command.append(line)
        heredoc = re.search(r"<<'(\w+)'", line)
        if heredoc:
            in_heredoc = heredoc.group(1)
    if command:
        out.append((command, shown))
    return out


def _keys(value) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def _codes(value) -> list[str]:
    if isinstance(value, dict):
        return [value["code"]] if "code" in value else []
    return []


def check_output(shown: str, actual: str, where: str) -> None:
    """The fields a shown output names are in the actual one, and its codes are the same."""
    if re.fullmatch(r"\d{3}", shown):
        assert actual.strip() == shown, where
        return
    if shown.startswith(("{", "[")):
        got = json.loads(actual)
        missing = set(re.findall(r'"([a-z_]+)":', shown)) - _keys(got)
        assert not missing, f"{where}: the server's answer has no {sorted(missing)}: {actual[:300]}"
        for code in re.findall(r'"code": "(\w+)"', shown):
            assert code in _codes(got), (
                f"{where}: docs show code {code}, server said {actual[:300]}"
            )
        return
    header = actual.splitlines()[0].split(",")
    shown_header = [c for c in shown.splitlines()[0].split(",") if c != "..."]
    assert set(shown_header) <= set(header), f"{where}: {set(shown_header) - set(header)}"


@pytest.fixture
def demo_site(live_server, celery_worker, benchmark):
    from leaderboard.board.services.identity import account_ensure_confirmed

    demo = UserFactory(username="demo", password="demo-password")
    account_ensure_confirmed(user=demo, email="demo@example.org")
    UserFactory(username="organizer", password=ORGANIZER_PASSWORD, is_staff=True)
    publish_release(benchmark)
    return live_server


def test_the_curl_walk_through_runs_and_shows_what_the_server_says(demo_site, tmp_path):
    parts: list[str] = ["set -euo pipefail"]
    shown_outputs: list[str] = []
    for command, shown in steps(walk_through()):
        text = "\n".join(command)
        if text.startswith("BASE="):
            text = f"BASE={demo_site.url}/api"
        if text.startswith("# 6. Follow it"):  # the worker scores it in a few seconds
            parts.append(
                'for _ in $(seq 240); do curl -s -H "Authorization: Token $TOKEN" '
                '$BASE/submissions/$ID/ | grep -q \'"status":"published"\' && break; '
                "sleep 0.5; done"
            )
        if shown:
            n = len(shown_outputs)
            shown_outputs.append("\n".join(shown))
            parts += [f"echo '@@{n}@@'", text, "echo", f"echo '@@/{n}@@'"]
        else:
            parts.append(text)
    assert len(shown_outputs) >= 12
    env = {**os.environ, "ORGANIZER_PASSWORD": ORGANIZER_PASSWORD}
    done = subprocess.run(
        ["bash", "-c", "\n".join(parts)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    for n, shown in enumerate(shown_outputs):
        actual = done.stdout.split(f"@@{n}@@\n", 1)[1].split(f"@@/{n}@@", 1)[0]
        check_output(shown, actual, f"output {n + 1} of docs/api.md's walk-through")


def test_every_documented_error_code_is_one_the_server_gives_out():
    """Every code in the error table of docs/api.md is DRF's own or one the platform's
    source answers with (the walk-through above shows several of them live)."""
    text = DOC.read_text()
    table = text[text.index("| status | code | when |") : text.index("## Endpoints")]
    documented = set(re.findall(r"`([a-z_]+)`", table.split("\n", 2)[2]))
    source = "\n".join(
        p.read_text()
        for p in Path(__file__).resolve().parents[2].joinpath("leaderboard").rglob("*.py")
    )
    drf = {
        "invalid", "not_authenticated", "authentication_failed", "permission_denied",
        "throttled", "not_found",
    }  # fmt: skip
    for code in sorted(documented - drf):
        assert re.search(rf"""["']{code}["']""", source), f"docs/api.md lists code {code}"
