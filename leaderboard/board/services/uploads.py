"""Checks on an uploaded prediction file that need no scorer: size, emptiness, hash.

The file's content (columns, units, values) is checked by the scoring engine when the
submission is scored; its message becomes the submission's failure reason.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from leaderboard.board.errors import UploadInvalid
from leaderboard.board.uploads import too_large_message

ALLOWED_SUFFIXES = (".csv", ".csv.gz", ".gz", ".txt")


@dataclass(frozen=True)
class UploadInfo:
    sha256: str
    size: int
    suffix: str
    original_name: str


def upload_suffix(name: str) -> str:
    lower = name.lower()
    if lower.endswith(".csv.gz"):
        return ".csv.gz"
    for suffix in ALLOWED_SUFFIXES:
        if lower.endswith(suffix):
            return suffix
    return ""


def _upload_name(upload: UploadedFile) -> str:
    """The file name the client gave, without folders, cut to 255 characters."""
    return (upload.name or "").rsplit("/", 1)[-1][:255]


def _hash_upload(upload: UploadedFile, *, limit: int, field: str) -> tuple[str, int]:
    """The upload's sha256 and size, read in chunks; refuses it as soon as it passes
    ``limit`` bytes (before reading when the client stated a larger size)."""
    image = field == "image"
    if upload.size is not None and upload.size > limit:
        raise UploadInvalid(
            too_large_message(limit=limit, size=upload.size, image=image), field=field
        )
    digest = hashlib.sha256()
    size = 0
    upload.seek(0)
    for chunk in upload.chunks():
        size += len(chunk)
        if size > limit:
            raise UploadInvalid(too_large_message(limit=limit, image=image), field=field)
        digest.update(chunk)
    upload.seek(0)
    return digest.hexdigest(), size


def check_prediction_upload(*, upload: UploadedFile | None) -> UploadInfo:
    """Hash the upload in chunks and refuse an empty, oversized or non-CSV file."""
    if upload is None:
        raise UploadInvalid("No file was uploaded: attach the prediction CSV.", field="file")
    name = _upload_name(upload)
    suffix = upload_suffix(name)
    if not suffix:
        raise UploadInvalid(
            f"{name!r} is not a CSV file: upload a .csv or .csv.gz prediction file.", field="file"
        )
    sha256, size = _hash_upload(upload, limit=settings.MAX_UPLOAD_BYTES, field="file")
    if size == 0:
        raise UploadInvalid(
            "The file is empty: a prediction file is a CSV file with a header row.", field="file"
        )
    return UploadInfo(sha256=sha256, size=size, suffix=suffix, original_name=name)


IMAGE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


def check_image_upload(*, upload: UploadedFile | None) -> UploadInfo:
    """Hash an uploaded image archive in chunks and check it with the container runner's
    ``inspect_image_archive`` (one streaming pass, no layer read into memory): not a tar,
    no manifest, not one image, wrong platform, no ENTRYPOINT/CMD, over the limits. Any
    problem is an :class:`UploadInvalid` (a 400) with the runner's message."""
    from leaderboard.board.services.containers import check_image_archive

    if upload is None:
        raise UploadInvalid(
            "No image was uploaded: attach the output of `docker save` in the image field.",
            field="image",
        )
    name = _upload_name(upload)
    sha256, size = _hash_upload(upload, limit=settings.CONTAINER_MAX_UPLOAD_BYTES, field="image")
    if size == 0:
        raise UploadInvalid(
            "The image archive is empty: upload the output of `docker save -o my-model.tar "
            "my-model`.",
            field="image",
        )
    check_image_archive(upload=upload)
    lower = name.lower()
    suffix = next((s for s in IMAGE_SUFFIXES[1:] if lower.endswith(s)), ".tar")
    return UploadInfo(sha256=sha256, size=size, suffix=suffix, original_name=name)
