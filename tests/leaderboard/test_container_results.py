"""The model's own time of a container run, from the engine's record of its process."""

from __future__ import annotations

import pytest

from leaderboard.containers.results import engine_seconds


@pytest.mark.parametrize(
    ("started", "finished", "seconds"),
    [
        ("2026-12-06T04:30:00.25Z", "2026-12-06T04:30:02.75Z", 2.5),
        # nanoseconds, as the engine writes them
        ("2026-12-06T04:30:00.123456789Z", "2026-12-06T04:30:01.123456789Z", 1.0),
        # a process that exited at once on a busy host: finished "before" it started
        ("2026-12-06T04:30:00.500Z", "2026-12-06T04:30:00.480Z", 0.0),
        # never finished (the engine's zero time), or a clock far off: unknown
        ("2026-12-06T04:30:00Z", "0001-01-01T00:00:00Z", None),
        ("2026-12-06T04:30:00Z", "2026-12-06T04:00:00Z", None),
    ],
)
def test_engine_seconds(started, finished, seconds):
    assert engine_seconds({"StartedAt": started, "FinishedAt": finished}) == seconds


def test_a_state_without_times_has_no_duration():
    assert engine_seconds({}) is None
    assert engine_seconds({"StartedAt": "soon", "FinishedAt": "later"}) is None
