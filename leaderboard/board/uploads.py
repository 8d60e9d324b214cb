"""The upload size limit, enforced while the request body streams in.

Two layers, so that an oversized file is never read whole into memory or onto disk:

- :class:`RequestSizeLimitMiddleware` answers at once, before reading the body, when the
  request's ``Content-Length`` already says it is too large;
- :class:`SizeLimitUploadHandler` (first in ``FILE_UPLOAD_HANDLERS``) counts each file's
  bytes as they arrive and drops the file as soon as it passes the limit; the view then sees
  ``request.upload_errors`` and answers with a 400 naming the field.

A container image comes in the ``image`` field, with its own limit
(``CONTAINER_MAX_UPLOAD_BYTES``); every other file field has ``MAX_UPLOAD_BYTES``.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from django.http import HttpResponse

# Room for the form fields and multipart boundaries around the file itself.
MULTIPART_OVERHEAD = 1024 * 1024

# The form and API field of a container image archive, and the pages that accept one.
IMAGE_FIELD = "image"
IMAGE_UPLOAD_PATHS = ("/api/submissions/", "/submit/")


def field_limit(field_name: str | None) -> int:
    """Upload limit of a file field."""
    if field_name == IMAGE_FIELD:
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


class SizeLimitUploadHandler(FileUploadHandler):
    """Stops receiving a file once it passes its field's limit (:func:`field_limit`)."""

    def __init__(self, request=None):
        super().__init__(request)
        self.limit = settings.MAX_UPLOAD_BYTES
        self.received = 0

    def new_file(self, field_name, *args, **kwargs):
        super().new_file(field_name, *args, **kwargs)
        self.limit = field_limit(field_name)
        self.received = 0

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.limit:
            if self.request is not None:
                errors = getattr(self.request, "upload_errors", {})
                errors[self.field_name] = too_large_message(
                    limit=self.limit, image=self.field_name == IMAGE_FIELD
                )
                self.request.upload_errors = errors
            raise SkipFile()
        return raw_data

    def file_complete(self, file_size):
        return None


class RequestSizeLimitMiddleware:
    """Refuses a request whose declared body size is over the upload limit, unread."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit = settings.MAX_UPLOAD_BYTES
        # Only a multipart body to a submission page can carry an image; its prediction file,
        # if any, is still cut at MAX_UPLOAD_BYTES by the upload handler as it streams.
        content_type = request.META.get("CONTENT_TYPE", "")
        if request.path in IMAGE_UPLOAD_PATHS and content_type.startswith("multipart/form-data"):
            limit = max(limit, settings.CONTAINER_MAX_UPLOAD_BYTES)
        if length > limit + MULTIPART_OVERHEAD:
            message = too_large_message(limit=limit, size=length)
            if request.path.startswith("/api/"):
                body = json.dumps({"detail": message, "code": "file_too_large"})
                response = HttpResponse(body, status=413, content_type="application/json")
            else:
                response = HttpResponse(
                    f"<!doctype html><title>File too large</title><h1>File too large</h1>"
                    f"<p>{message}</p><p><a href='javascript:history.back()'>Back</a></p>",
                    status=413,
                    content_type="text/html; charset=utf-8",
                )
            # The body is left unread: close the connection rather than drain it.
            response["Connection"] = "close"
            return response
        return self.get_response(request)
