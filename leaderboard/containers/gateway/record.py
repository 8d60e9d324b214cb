"""The record of one streamed run: how it ended, what was revealed, and where time went."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from leaderboard.containers.results import RunStatus


def time_stats(seconds: list[float]) -> dict[str, float | None]:
    """min / median / p95 / max / total of per-step times, in milliseconds.

    >>> time_stats([0.001, 0.002, 0.003])["median_ms"]
    2.0
    """
    if not seconds:
        return {"min_ms": None, "median_ms": None, "p95_ms": None, "max_ms": None, "total_s": 0.0}
    a = np.asarray(seconds) * 1000.0
    return {
        "min_ms": round(float(a.min()), 3),
        "median_ms": round(float(np.median(a)), 3),
        "p95_ms": round(float(np.percentile(a, 95)), 3),
        "max_ms": round(float(a.max()), 3),
        "total_s": round(float(a.sum()) / 1000.0, 3),
    }


@dataclass
class StreamRecord:
    """One run of a model through the gateway, for one task and scenario.

    ``gateway_step_seconds`` is the gateway's wall time per step (putting the step together,
    sending it until the model has taken the bytes, checking the answer) and
    ``gateway_cpu_seconds`` the CPU time its thread spent on the step, waiting for the
    answer included (reading it); ``model_step_seconds`` the time from the step's last byte
    sent to the answer's last byte received; ``prefetch_cpu_seconds`` the CPU time of the
    thread that reads and encodes the coming steps' images while the model works (not part
    of any step's time). ``status`` is a :class:`RunStatus`;
    ``reason`` one of ``protocol.REASONS`` when it failed.
    """

    task: str
    scenario: str
    status: RunStatus = RunStatus.ENGINE_ERROR
    reason: str | None = None
    message: str = ""
    steps_total: int = 0
    steps_done: int = 0
    units_total: int = 0
    units_answered: int = 0
    revealed: dict[str, int] = field(default_factory=dict)
    setup_seconds: float = 0.0
    ready_seconds: float | None = None
    gateway_step_seconds: list[float] = field(default_factory=list)
    gateway_cpu_seconds: list[float] = field(default_factory=list)
    model_step_seconds: list[float] = field(default_factory=list)
    prefetch_cpu_seconds: float = 0.0
    stays_per_step: list[int] = field(default_factory=list)
    wall_time: float = 0.0
    exit_code: int | None = None
    log_tail: str = ""
    log_bytes: int = 0
    output_path: Path | None = None
    output_bytes: int = 0
    run_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == RunStatus.SUCCEEDED

    def fail(self, status: RunStatus, reason: str, message: str) -> None:
        if self.reason is None:  # the first failure is the one reported
            self.status, self.reason, self.message = status, reason, message

    def summary(self) -> dict[str, Any]:
        """JSON-able record without the log (store the log apart: owner only)."""
        gateway = float(sum(self.gateway_step_seconds))
        cpu = float(sum(self.gateway_cpu_seconds))
        model = float(sum(self.model_step_seconds))
        stay_hours = float(sum(self.stays_per_step))
        return {
            "mode": "stream",
            "status": str(self.status),
            "reason": self.reason,
            "message": self.message,
            "task": self.task,
            "scenario": self.scenario,
            "run_id": self.run_id,
            "steps": {"done": self.steps_done, "total": self.steps_total},
            "units": {"answered": self.units_answered, "total": self.units_total},
            "bytes_revealed": self.revealed,
            "setup_seconds": round(self.setup_seconds, 3),
            "ready_seconds": None if self.ready_seconds is None else round(self.ready_seconds, 3),
            "gateway_step_time": time_stats(self.gateway_step_seconds),
            "gateway_cpu_step_time": time_stats(self.gateway_cpu_seconds),
            "model_step_time": time_stats(self.model_step_seconds),
            "gateway_seconds": round(gateway, 3),
            "model_seconds": round(model, 3),
            "gateway_cpu_seconds": round(cpu, 3),
            "gateway_prefetch_cpu_seconds": round(self.prefetch_cpu_seconds, 3),
            "gateway_ms_per_1000_stay_steps": (
                round(gateway * 1e6 / stay_hours, 3) if stay_hours else None
            ),
            "gateway_cpu_ms_per_1000_stay_steps": (
                round(cpu * 1e6 / stay_hours, 3) if stay_hours else None
            ),
            "gateway_all_cpu_ms_per_1000_stay_steps": (
                round((cpu + self.prefetch_cpu_seconds) * 1e6 / stay_hours, 3)
                if stay_hours
                else None
            ),
            "wall_time": round(self.wall_time, 3),
            "exit_code": self.exit_code,
            "output_bytes": self.output_bytes,
            "log_bytes": self.log_bytes,
        }
