"""Errors a service raises for a user to act on. Each carries a message safe to show, a
machine-readable code, the HTTP status it maps to and, when one input is at fault, its field.
"""

from __future__ import annotations


class ServiceError(Exception):
    status_code = 400
    code = "invalid"
    retry_after: int | None = None  # seconds, sent as Retry-After when set

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code


class UploadInvalid(ServiceError):
    code = "invalid_file"


class TrackClosed(ServiceError):
    code = "track_closed"


class TaskClosed(ServiceError):
    code = "task_closed"


class QuotaExceeded(ServiceError):
    status_code = 429
    code = "quota_exceeded"


class DuplicateSubmission(ServiceError):
    status_code = 409
    code = "duplicate_file"


class NotAllowed(ServiceError):
    status_code = 403
    code = "not_allowed"


class InvalidState(ServiceError):
    status_code = 409
    code = "invalid_state"


class StorageUnavailable(ServiceError):
    status_code = 503
    code = "storage_unavailable"


class BenchmarkInvalid(ServiceError):
    code = "invalid_benchmark"
