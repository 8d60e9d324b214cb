"""Where a benchmark's files live: a local directory or an S3 prefix (boto3).

A store is addressed by a URI: a filesystem path, or ``s3://bucket/prefix``. For S3 the
endpoint comes from boto3's usual configuration (``AWS_ENDPOINT_URL``, credentials from the
environment), so the same code reaches AWS, MinIO or a test server on loopback.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Protocol


class StoreError(Exception):
    """A store could not be reached or a file could not be read or written."""


class Store(Protocol):
    uri: str

    def read_bytes(self, rel: str) -> bytes: ...

    def write_bytes(self, rel: str, data: bytes) -> None: ...

    def exists(self, rel: str) -> bool: ...

    def list(self, prefix: str = "") -> list[str]: ...

    def local_path(self, rel: str) -> Path | None: ...


def _check_rel(rel: str) -> str:
    parts = rel.replace("\\", "/").split("/")
    if rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise StoreError(f"invalid file name in benchmark: {rel!r}")
    return "/".join(parts)


class LocalStore:
    """A benchmark in a local directory."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.uri = str(self.root)

    def _path(self, rel: str) -> Path:
        return self.root / _check_rel(rel)

    def read_bytes(self, rel: str) -> bytes:
        try:
            return self._path(rel).read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(f"{rel} is missing from {self.uri}") from None
        except OSError as exc:
            raise StoreError(f"cannot read {rel} from {self.uri}: {exc.strerror or exc}") from None

    def write_bytes(self, rel: str, data: bytes) -> None:
        path = self._path(rel)
        tmp = path.with_name(path.name + ".part")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except OSError as exc:
            raise StoreError(f"cannot write {rel} to {self.uri}: {exc.strerror or exc}") from None

    def exists(self, rel: str) -> bool:
        return self._path(rel).is_file()

    def list(self, prefix: str = "") -> list[str]:
        base = self.root / prefix if prefix else self.root
        if not base.exists():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file())

    def local_path(self, rel: str) -> Path | None:
        return self._path(rel)


class S3Store:
    """A benchmark under an S3 prefix."""

    def __init__(self, bucket: str, prefix: str = "", *, client: Any = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        if client is None:
            import boto3

            client = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)
        self.client = client

    def _key(self, rel: str) -> str:
        rel = _check_rel(rel)
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def read_bytes(self, rel: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=self._key(rel))
            return bytes(obj["Body"].read())
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                raise FileNotFoundError(f"{rel} is missing from {self.uri}") from None
            raise StoreError(f"cannot read {rel} from {self.uri}: {code or exc}") from None
        except BotoCoreError as exc:
            raise StoreError(f"cannot reach {self.uri}: {exc}") from None

    def write_bytes(self, rel: str, data: bytes) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(rel), Body=data)
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"cannot write {rel} to {self.uri}: {exc}") from None

    def exists(self, rel: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(rel))
            return True
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                return False
            raise StoreError(f"cannot look up {rel} in {self.uri}: {code or exc}") from None
        except BotoCoreError as exc:
            raise StoreError(f"cannot reach {self.uri}: {exc}") from None

    def list(self, prefix: str = "") -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        full = self._key(prefix) if prefix else self.prefix
        full = f"{full}/" if full else ""
        strip = len(f"{self.prefix}/") if self.prefix else 0
        keys: list[str] = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=full
            ):
                keys.extend(obj["Key"][strip:] for obj in page.get("Contents", []))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise StoreError(f"cannot list {self.uri}: {code or exc}") from None
        except BotoCoreError as exc:
            raise StoreError(f"cannot reach {self.uri}: {exc}") from None
        return sorted(keys)

    def local_path(self, rel: str) -> Path | None:
        return None


def open_store(uri: str | os.PathLike[str]) -> Store:
    """Open a store from a path or an ``s3://bucket/prefix`` URI."""
    text = str(uri)
    if text.startswith("s3://"):
        bucket, _, prefix = text[5:].partition("/")
        if not bucket:
            raise StoreError(f"no bucket in {text!r}; expected s3://bucket/prefix")
        return S3Store(bucket, prefix)
    return LocalStore(text)


def copy_tree(src: Store, dest: Store, *, prefix: str = "", last: str = "manifest.json") -> int:
    """Copy every file under ``prefix`` from one store to another; returns the file count.

    ``last`` is copied after everything else, so an interrupted copy of a benchmark never
    looks complete.
    """
    names = sorted(src.list(prefix), key=lambda rel: (rel == last, rel))
    for rel in names:
        src_path, dest_path = src.local_path(rel), dest.local_path(rel)
        if src_path is not None and dest_path is not None:
            try:
                dest_path.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src_path, dest_path)
            except OSError as exc:
                raise StoreError(
                    f"cannot copy {rel} to {dest.uri}: {exc.strerror or exc}"
                ) from None
        else:
            dest.write_bytes(rel, src.read_bytes(rel))
    return len(names)
