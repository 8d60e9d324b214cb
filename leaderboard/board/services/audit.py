"""The audit log: who did what, and when."""

from __future__ import annotations

from typing import Any

from leaderboard.board.models import AuditLog, Benchmark, Evaluation, Submission


def audit_record(
    *,
    actor: Any,
    action: str,
    submission: Submission | None = None,
    evaluation: Evaluation | None = None,
    benchmark: Benchmark | None = None,
    **details: Any,
) -> AuditLog:
    """Append one entry; ``actor`` is a user, or None for the platform itself."""
    return AuditLog.objects.create(
        actor=actor if getattr(actor, "pk", None) else None,
        action=action,
        submission=submission,
        evaluation=evaluation,
        benchmark=benchmark,
        details=details,
    )
