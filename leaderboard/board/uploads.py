"""Request body limits, per track, enforced before and while the body streams in.

The track a request is for is known from its address before any of its body is read:

- ``POST /api/submissions/`` and the form ``/submit/``: the prediction-file track, a body of at
  most ``MAX_UPLOAD_BYTES`` (plus room for the form fields around the file);
- ``POST /api/submissions/images/`` and the form ``/submit/?track=container``: the container
  track, up to ``CONTAINER_MAX_UPLOAD_BYTES``;
- anything else, and any body that is not multipart (no file in it): at most
  ``DATA_UPLOAD_MAX_MEMORY_SIZE``.

Three layers, so that an oversized body is never read whole into memory or onto disk:

- :class:`leaderboard.board.bodies.BodyGuard` (the WSGI application around Django) reads a
  body of unknown length (chunked) only up to its limit, and gives up on a body that stops
  arriving (``REQUEST_BODY_TIMEOUT``);
- :class:`RequestSizeLimitMiddleware` answers 413 at once, before reading the body, when the
  request's ``Content-Length`` says it is too large, and turns the guard's refusals into the
  platform's answers (JSON ``{"code", "detail"}`` for the API, a page for the site);
- :class:`SizeLimitUploadHandler` (first in ``FILE_UPLOAD_HANDLERS``) counts each file's
  bytes as they arrive and drops the file as soon as it passes the limit; the view then sees
  :func:`dropped_uploads` and answers with a 400 naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

# Room for the form fields and multipart boundaries around the file itself.
MULTIPART_OVERHEAD = 1024 * 1024

# The form and API field of a container image archive, and the addresses of each track.
IMAGE_FIELD = "image"
PREDICTION_UPLOAD_PATHS = ("/api/submissions/", "/submit/")
IMAGE_UPLOAD_PATH = "/api/submissions/images/"
WEB_FORM_PATH = "/submit/"
CONTAINER_TRACK = "container"

# Set by the WSGI guard (leaderboard.board.bodies) on a request whose body it refused.
REFUSAL_KEY = "leaderboard.body_refused"
_DROPPED = "upload_errors"  # the request's attribute: field -> why its file was dropped


@dataclass(frozen=True)
class BodyLimit:
    """The largest body a request may send, and what to tell its sender."""

    max_body: int  # bytes, the whole body
    file_limit: int | None  # the file limit the message names; None: no file belongs here
    image: bool = False


def is_image_upload(path: str, query: str = "") -> bool:
    """Whether a request is for the container track (an image archive may come with it)."""
    if path == IMAGE_UPLOAD_PATH:
        return True
    return path == WEB_FORM_PATH and CONTAINER_TRACK in parse_qs(query).get("track", [])


def _form_limit() -> int:
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE or settings.MAX_UPLOAD_BYTES


def body_limit(*, path: str, query: str = "", content_type: str = "") -> BodyLimit:
    """The body limit of a request, from its address and content type alone."""
    if content_type.startswith("multipart/form-data"):
        if is_image_upload(path, query):
            limit = settings.CONTAINER_MAX_UPLOAD_BYTES
            return BodyLimit(limit + MULTIPART_OVERHEAD, limit, image=True)
        if path in PREDICTION_UPLOAD_PATHS:
            limit = settings.MAX_UPLOAD_BYTES
            return BodyLimit(limit + MULTIPART_OVERHEAD, limit)
    return BodyLimit(_form_limit(), None)


def field_limit(field_name: str | None, *, image_upload: bool = True) -> int:
    """Upload limit of a file field (an image only on the container track's addresses)."""
    if field_name == IMAGE_FIELD and image_upload:
        return settings.CONTAINER_MAX_UPLOAD_BYTES
    return settings.MAX_UPLOAD_BYTES


def limit_text(limit: int) -> str:
    mib = limit / (1024 * 1024)
    return f"{mib:g} MiB" if mib >= 1 else f"{limit} bytes"


def too_large_message(*, limit: int, size: int | None = None, image: bool = False) -> str:
    got = f" ({size:,} bytes)" if size is not None else ""
    if image:
        return (
            f"The image archive is larger than the {limit_text(limit)} limit{got}. Make the "
            "image smaller (a slim base image, no training data or caches in it) or compress "
            "the archive (docker save my-model | gzip > my-model.tar.gz)."
        )
    return (
        f"The file is larger than the {limit_text(limit)} limit{got}. Compress it with gzip "
        "(.csv.gz files are accepted) or check that it holds one row per test unit."
    )


def _destinations(path: str) -> tuple[str, str]:
    """Where a prediction file and a container image go, for the API or for the site."""
    if path.startswith("/api/"):
        return f"POST {PREDICTION_UPLOAD_PATHS[0]}", f"POST {IMAGE_UPLOAD_PATH}"
    return WEB_FORM_PATH, f"{WEB_FORM_PATH}?track={CONTAINER_TRACK}"


def _refusal(limit: BodyLimit, *, path: str, size: int | None, at_least: bool) -> tuple[str, str]:
    """The code and message of a body over its limit."""
    if at_least:
        got = f" (more than {size:,} bytes arrived)" if size else ""
    else:
        got = f" ({size:,} bytes declared)" if size is not None else ""
    file_to, image_to = _destinations(path)
    if limit.file_limit is None:
        return "request_too_large", (
            f"The request body is larger than the {limit_text(limit.max_body)} limit of this "
            f"address{got}. Files go in a multipart/form-data upload: a prediction file to "
            f"{file_to}, a container image to {image_to}."
        )
    message = too_large_message(limit=limit.file_limit, image=limit.image).replace(
        " limit.", f" limit{got}.", 1
    )
    if not limit.image:
        message += (
            f" This address takes prediction files; a container image goes to {image_to} "
            f"(up to {limit_text(settings.CONTAINER_MAX_UPLOAD_BYTES)})."
        )
    return "file_too_large", message


def _answer(request, *, status: int, code: str, title: str, message: str) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": message, "code": code}, status=status)
    back = request.path + (
        f"?{request.META['QUERY_STRING']}" if request.META.get("QUERY_STRING") else ""
    )
    html = render_to_string(
        "board/request_refused.html",
        {"title": title, "message": message, "back": back},
        request=request,
    )  # fmt: skip
    return HttpResponse(html, status=status)


def dropped_uploads(request: HttpRequest) -> dict[str, str]:
    """The files :class:`SizeLimitUploadHandler` dropped from this request for their size:
    field name -> the message that says so (empty when none)."""
    return getattr(request, _DROPPED, {})


class SizeLimitUploadHandler(FileUploadHandler):
    """Stops receiving a file once it passes its field's limit (:func:`field_limit`)."""

    def __init__(self, request=None):
        super().__init__(request)
        self.limit = settings.MAX_UPLOAD_BYTES
        self.received = 0
        self.image_upload = request is not None and is_image_upload(
            request.path, request.META.get("QUERY_STRING", "")
        )

    def new_file(self, field_name, *args, **kwargs):
        super().new_file(field_name, *args, **kwargs)
        self.limit = field_limit(field_name, image_upload=self.image_upload)
        self.received = 0

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.limit:
            if self.request is not None:
                errors = dropped_uploads(self.request)
                errors[self.field_name] = too_large_message(
                    limit=self.limit, image=self.field_name == IMAGE_FIELD
                )
                if self.field_name == IMAGE_FIELD and not self.image_upload:
                    errors[self.field_name] += (
                        f" Larger images go to {_destinations(self.request.path)[1]} (up to "
                        f"{limit_text(settings.CONTAINER_MAX_UPLOAD_BYTES)})."
                    )
                setattr(self.request, _DROPPED, errors)
            raise SkipFile()
        return raw_data

    def file_complete(self, file_size):
        return None


class RequestSizeLimitMiddleware:
    """Refuses a request whose body is over the limit of its track, unread: 413 when its
    ``Content-Length`` (or the bytes counted by the WSGI guard) passes the limit, 408 when the
    body stopped arriving."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = body_limit(
            path=request.path,
            query=request.META.get("QUERY_STRING", ""),
            content_type=request.META.get("CONTENT_TYPE", ""),
        )
        refused = request.META.get(REFUSAL_KEY)
        if refused is not None:
            reason, received = refused
            if reason == "timeout":
                return _answer(
                    request, status=408, code="request_timeout", title="Upload stopped",
                    message=f"The request body stopped arriving: nothing came for "
                    f"{settings.REQUEST_BODY_TIMEOUT:g} s after {received:,} bytes. Send it "
                    "again on a steadier connection.",
                )  # fmt: skip
            if reason == "incomplete":
                return _answer(
                    request, status=400, code="incomplete_body", title="Upload cut short",
                    message=f"The request body ended after {received:,} bytes, before the end "
                    "of its multipart form (its closing boundary): the upload was cut, or its "
                    "Content-Length is shorter than what was sent. Send it again whole.",
                )  # fmt: skip
            code, message = _refusal(
                limit, path=request.path, size=received, at_least=reason != "declared"
            )
            return _answer(request, status=413, code=code, title="Too large", message=message)
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > limit.max_body:
            code, message = _refusal(limit, path=request.path, size=length, at_least=False)
            return _answer(request, status=413, code=code, title="Too large", message=message)
        return self.get_response(request)
