"""The gateway's conversation with one model: hello, the steps in time order, the end; and
the prediction file written from the answers when (and only when) the run succeeded.

:func:`drive` never raises for anything the model does: every problem ends the run with one
of the reasons of ``protocol.REASONS`` in the record.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from leaderboard.containers.gateway import protocol
from leaderboard.containers.gateway.channel import Channel, Closed, Overdue, TooLong
from leaderboard.containers.gateway.record import StreamRecord
from leaderboard.containers.gateway.reveal import Revealer
from leaderboard.containers.gateway.timeline import Timeline
from leaderboard.containers.limits import Limits, format_bytes
from leaderboard.containers.results import RunStatus


def protocol_limits(limits: Limits) -> dict[str, float | int]:
    """The limits the hello announces."""
    return {
        "step_seconds": limits.step_time,
        "ready_seconds": limits.ready_time,
        "wall_seconds": limits.wall_time,
        "exit_seconds": limits.exit_time,
        "answer_bytes": limits.answer_bytes,
    }


class Answers:
    """The values answered so far, by unit index of the timeline."""

    def __init__(self, n_units: int) -> None:
        self.n = n_units
        self.columns: tuple[str, ...] | None = None
        self.values: dict[str, np.ndarray] = {}

    def add(self, units: np.ndarray, order: np.ndarray, values: dict[str, np.ndarray]) -> None:
        if self.columns is None:
            self.columns = tuple(values)
            self.values = {c: np.full(self.n, np.nan) for c in self.columns}
        rows = units[order]
        for c, v in values.items():
            self.values[c][rows] = v


def drive(
    timeline: Timeline,
    channel: Channel,
    record: StreamRecord,
    *,
    limits: Limits,
    started: float | None = None,
) -> Answers | None:
    """Run the protocol to the end message; the answers, or None when the run failed
    (the record then holds the reason)."""
    t0 = started if started is not None else time.monotonic()
    wall_deadline = t0 + limits.wall_time
    answers = Answers(len(timeline.unit_tokens))
    record.steps_total, record.units_total = timeline.n_steps, len(timeline.unit_tokens)
    revealer = Revealer(timeline)
    step = -1

    def due(limit: float) -> tuple[float, str]:
        own = time.monotonic() + limit
        return (own, "stalled") if own < wall_deadline else (wall_deadline, "wall_time")

    try:
        deadline, why = due(limits.ready_time)
        hello = protocol.hello(timeline.task, timeline.scenario, protocol_limits(limits))
        channel.send(protocol.encode(hello), deadline)
        line = _read(channel, deadline, why, limits, step)
        protocol.check_ready(line)
        record.ready_seconds = time.monotonic() - t0
        for step in range(timeline.n_steps):
            g0, c0 = time.monotonic(), time.thread_time()
            message, asked = revealer.step(step)
            deadline, why = due(limits.step_time)
            channel.send(message, deadline)
            g1, c1 = time.monotonic(), time.thread_time()
            deadline, why = due(limits.step_time)
            line = _read(channel, deadline, why, limits, step)
            g2, c2 = time.monotonic(), time.thread_time()
            order, values = protocol.parse_answer(
                line, step=step, asked=asked, task=timeline.task, first_columns=answers.columns,
                position=timeline.asked_position, offset=int(timeline.unit_bounds[step]),
            )  # fmt: skip
            answers.add(timeline.asked(step), order, values)
            g3, c3 = time.monotonic(), time.thread_time()
            record.gateway_step_seconds.append((g1 - g0) + (g3 - g2))
            record.gateway_cpu_seconds.append((c1 - c0) + (c2 - c1) + (c3 - c2))
            record.model_step_seconds.append(g2 - g1)
            record.steps_done = step + 1
            record.units_answered += len(asked)
        channel.send(protocol.encode(protocol.end(timeline.n_steps)), due(limits.exit_time)[0])
    except protocol.Failure as f:
        record.fail(protocol.REASONS[f.reason], f.reason, f.message)
    except Closed:
        record.fail(RunStatus.CRASHED, "exited_early",
                    protocol.ERR_EXITED.format(step=max(step, 0), steps=timeline.n_steps))  # fmt: skip
    except Overdue:
        _overdue(record, why, limits, step)
    finally:
        revealer.close()
        record.prefetch_cpu_seconds = revealer.prefetch_cpu_seconds
        record.revealed = revealer.revealed.summary()
        record.stays_per_step = revealer.revealed.per_step_stays[: record.steps_done]
    return answers if record.reason is None else None


def _read(channel: Channel, deadline: float, why: str, limits: Limits, step: int) -> bytes:
    try:
        return channel.readline(deadline, limits.answer_bytes)
    except TooLong:
        raise protocol.Failure("answer_too_large", protocol.ERR_TOO_LARGE.format(
            limit=format_bytes(limits.answer_bytes), step=max(step, 0))) from None  # fmt: skip


def _overdue(record: StreamRecord, why: str, limits: Limits, step: int) -> None:
    if why == "wall_time":
        record.fail(RunStatus.TIMED_OUT, "wall_time",
                    protocol.ERR_WALL.format(limit=limits.wall_time, step=max(step, 0)))  # fmt: skip
    elif step < 0:
        record.fail(RunStatus.TIMED_OUT, "stalled",
                    f"the model did not answer the hello within {limits.ready_time:g} s")  # fmt: skip
    else:
        record.fail(RunStatus.TIMED_OUT, "stalled",
                    protocol.ERR_STALLED.format(step=step, limit=limits.step_time))  # fmt: skip


def write_predictions(timeline: Timeline, answers: Answers, dest: Path) -> Path:
    """The prediction file of a finished run: the task's key columns (from the test split)
    and the answered value columns, one row per unit; written whole or not at all."""
    keys = list(timeline.task.key_columns)
    frame = timeline.units[keys].copy()
    for column, values in answers.values.items():
        if column == "decision":
            frame[column] = pd.array(
                [None if np.isnan(v) else int(v) for v in values.tolist()], dtype="Int64"
            )
        else:
            frame[column] = values
    tmp = dest.with_name(dest.name + ".part")
    frame.to_csv(tmp, index=False, float_format="%.6g")
    os.replace(tmp, dest)
    return dest
