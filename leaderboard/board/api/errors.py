"""One error shape for every API response: ``{"detail", "code", "errors"?}``, never a
traceback. Field problems are listed under ``errors`` by field name."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from leaderboard.board.errors import ServiceError

log = logging.getLogger(__name__)


def _first_message(errors) -> str:
    if isinstance(errors, dict):
        for field, value in errors.items():
            msg = _first_message(value)
            return msg if field in ("non_field_errors", "detail") else f"{field}: {msg}"
    if isinstance(errors, list) and errors:
        return _first_message(errors[0])
    return str(errors)


# Fields whose problems have a code of their own (docs/api.md): the uploaded file itself
# (empty, not a CSV, over the size limit), which a client fixes by sending another file.
FILE_FIELDS = frozenset({"file", "image"})


def _validation_code(errors) -> str:
    """``invalid_file`` when only the uploaded file is at fault, else ``invalid``."""
    if isinstance(errors, dict) and errors and set(errors) <= FILE_FIELDS:
        return "invalid_file"
    return "invalid"


def exception_handler(exc, context):
    if isinstance(exc, ServiceError):
        data: dict[str, Any] = {"detail": exc.message, "code": exc.code}
        if exc.field:
            data["errors"] = {exc.field: [exc.message]}
        refusal = Response(data, status=exc.status_code)
        if exc.retry_after:
            refusal["Retry-After"] = str(exc.retry_after)
        return refusal
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        )
    if isinstance(exc, Http404):
        return Response({"detail": str(exc) or "Not found.", "code": "not_found"}, status=404)
    if isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        log.exception("unexpected error in %s", context.get("view").__class__.__name__)
        return Response(
            {"detail": "An unexpected error occurred on the server; it has been logged.",
             "code": "server_error"},
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )  # fmt: skip
    if isinstance(exc, exceptions.ValidationError):
        errors = (
            response.data
            if isinstance(response.data, dict)
            else {"non_field_errors": response.data}
        )
        response.data = {
            "detail": _first_message(errors),
            "code": _validation_code(errors),
            "errors": errors,
        }
    elif isinstance(response.data, dict) and "detail" in response.data:
        response.data["code"] = getattr(exc, "default_code", "error")
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else None
        if isinstance(codes, str):
            response.data["code"] = codes
    return response
