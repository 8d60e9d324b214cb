"""An uploaded file's bytes, read once, within limits, as checked UTF-8.

:class:`UploadStream` is the byte layer of prediction-file validation. It reads the upload
(a path, bytes or a binary file object) block by block and

- counts and hashes the raw bytes (``size``, ``sha256``) and stops past ``max_bytes``;
- recognises gzip by its magic bytes (never by the name) and decompresses it lazily, a block
  at a time, stopping as soon as the output passes ``max_uncompressed_bytes`` (a zip bomb is
  never expanded in full);
- refuses other archive and binary formats by their magic bytes;
- checks that the content is UTF-8 as it streams, naming the byte offset and line of the
  first bad byte, and drops a leading UTF-8 byte order mark.

It is a readable :class:`io.RawIOBase`, so a CSV parser can consume it in chunks. Problems
raise :class:`~scoring.errors.PredictionFileError`.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import io
import os
import zlib
from typing import Any, BinaryIO, Protocol

from scoring.errors import (
    ERR_CORRUPT_GZIP,
    ERR_ENCODING,
    ERR_FILE_TOO_LARGE,
    ERR_HEADER_TOO_LONG,
    ERR_NOT_CSV,
    ERR_UNCOMPRESSED_TOO_LARGE,
    ERR_UTF16,
    WARN_BOM,
    PredictionFileError,
)

Source = str | os.PathLike[str] | bytes | bytearray | memoryview | BinaryIO

BLOCK_SIZE = 1 << 20
HEADER_LIMIT = 1 << 16
HEAD_SIZE = 4096  # first read: enough for the magic bytes, small for a compressed upload
GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = codecs.BOM_UTF8
# Formats people upload by mistake, recognised by their first bytes.
FOREIGN_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a zip archive (or an Excel workbook)"),
    (b"PK\x05\x06", "an empty zip archive"),
    (b"BZh", "bzip2-compressed"),
    (b"\xfd7zXZ\x00", "xz-compressed"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Excel 97-2003 workbook"),
    (b"PAR1", "a Parquet file"),
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file"),
    (b"\x93NUMPY", "a NumPy array file"),
    (b"%PDF", "a PDF document"),
)


_BLANK = b" \t\r\n"


def _line_end(data: bytes) -> int:
    """Index of the first line end in data, -1 when there is none."""
    ends = [i for i in (data.find(b"\n"), data.find(b"\r")) if i >= 0]
    return min(ends, default=-1)


class _Reader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def human_bytes(n: int) -> str:
    """A byte count for people.

    >>> human_bytes(50 * 2**20)
    '50 MiB'
    """
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


class _RawReader:
    """The upload's raw bytes: counted, hashed, and cut off past the size limit."""

    def __init__(self, source: Source, *, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._hash = hashlib.sha256()
        self._owned: BinaryIO | None = None
        if isinstance(source, bytes | bytearray | memoryview):
            self._check_size(len(source))
            self._fh: BinaryIO = io.BytesIO(bytes(source))
        elif isinstance(source, str | os.PathLike):
            self._check_size(os.stat(source).st_size)
            self._fh = self._owned = open(source, "rb")  # noqa: SIM115 (closed by close())
        elif hasattr(source, "read"):
            self._fh = source
        else:
            raise TypeError(f"cannot read predictions from a {type(source).__name__}")

    def _check_size(self, size: int) -> None:
        if size > self.max_bytes:
            raise PredictionFileError.from_template(
                ERR_FILE_TOO_LARGE,
                limit=self.max_bytes,
                limit_text=human_bytes(self.max_bytes),
                details={"limit": self.max_bytes},
            )

    def read(self, size: int = -1, /) -> bytes:
        if size is None or size < 0:
            parts = []
            while block := self.read(BLOCK_SIZE):
                parts.append(block)
            return b"".join(parts)
        data = self._fh.read(min(size, BLOCK_SIZE))
        if not isinstance(data, bytes | bytearray):
            raise TypeError("prediction files must be opened in binary mode")
        self.size += len(data)
        self._check_size(self.size)
        self._hash.update(data)
        return bytes(data)

    def drain(self) -> None:
        while self.read(BLOCK_SIZE):
            pass

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()


class _Prefixed:
    """A reader that first returns bytes already read, then the rest of another reader."""

    def __init__(self, prefix: bytes, rest: _Reader) -> None:
        self._prefix = prefix
        self._rest = rest

    def read(self, size: int = -1, /) -> bytes:
        if self._prefix:
            if size is None or size < 0 or size >= len(self._prefix):
                out, self._prefix = self._prefix, b""
            else:
                out, self._prefix = self._prefix[:size], self._prefix[size:]
            return out
        return self._rest.read(size)

    def seek(self, offset: int, /) -> int:
        raise io.UnsupportedOperation("an upload is read once, front to back")


class UploadStream(io.RawIOBase):
    """The decompressed, UTF-8-checked content of an upload, as a binary stream.

    Parameters
    ----------
    source : path, bytes or binary file object
        The upload. A file object is read from its current position.
    max_bytes : int
        Largest accepted upload, in raw (possibly compressed) bytes.
    max_uncompressed_bytes : int
        Largest accepted content after decompression.

    Examples
    --------
    >>> with UploadStream(b"\\xef\\xbb\\xbfa,b\\r\\n1,2\\r\\n", max_bytes=100,
    ...                   max_uncompressed_bytes=100) as up:
    ...     header = up.header_line()
    ...     body = up.read()
    ...     up.finish()
    >>> header, body, up.warnings, up.size
    ('a,b', b'a,b\\r\\n1,2\\r\\n', ['a UTF-8 byte order mark at the start of the file was ignored'], 13)
    """

    def __init__(self, source: Source, *, max_bytes: int, max_uncompressed_bytes: int) -> None:
        super().__init__()
        if max_bytes <= 0 or max_uncompressed_bytes <= 0:
            raise ValueError("size limits must be positive")
        self.max_uncompressed_bytes = max_uncompressed_bytes
        self.warnings: list[str] = []
        self.compression: str | None = None
        self._raw = _RawReader(source, max_bytes=max_bytes)
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._out = 0  # content bytes produced so far (before the BOM is dropped)
        self._lines = 1  # line number at the current content position
        self._pending = b""  # checked content read ahead (header detection), served first
        self._started = False
        self._eof = False
        self.blank_lines_skipped = 0
        try:
            self._inner = self._open_inner()
        except BaseException:
            self._raw.close()
            raise

    # -- setup ----------------------------------------------------------------------------
    def _open_inner(self) -> _Reader:
        head = b""
        while len(head) < 8 and (block := self._raw.read(HEAD_SIZE)):
            head += block
        for magic, kind in FOREIGN_MAGIC:
            if head.startswith(magic):
                raise PredictionFileError.from_template(ERR_NOT_CSV, kind=kind)
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            raise PredictionFileError.from_template(ERR_UTF16)
        rest = _Prefixed(head, self._raw)
        if head.startswith(GZIP_MAGIC):
            self.compression = "gzip"
            return gzip.GzipFile(fileobj=rest, mode="rb")
        return rest

    # -- content --------------------------------------------------------------------------
    def _inner_read(self, size: int) -> bytes:
        if self.compression is None:
            return self._inner.read(size)
        try:
            return self._inner.read(size)
        except EOFError:
            reason = "the compressed data ends early; was the upload cut off?"
        except (gzip.BadGzipFile, zlib.error) as exc:
            reason = str(exc)
        raise PredictionFileError.from_template(ERR_CORRUPT_GZIP, reason=reason)

    def _fail_encoding(self, exc: UnicodeDecodeError, start: int) -> PredictionFileError:
        offset = start + exc.start
        bad = exc.object[exc.start : exc.start + 1]
        line = self._lines + exc.object[: exc.start].count(b"\n")
        return PredictionFileError.from_template(
            ERR_ENCODING,
            byte=bad.hex() or "??",
            offset=offset,
            line=line,
            details={"offset": offset, "line": line},
        )

    def _next_block(self, size: int) -> bytes:
        """Read, count and check the next block of content (empty at the end)."""
        if self._eof:
            return b""
        data = self._inner_read(max(size, 1))
        pending = len(self._decoder.getstate()[0])
        start = self._out - pending  # content offset of the decoder's input
        if data:
            self._out += len(data)
            if self._out > self.max_uncompressed_bytes:
                limit = self.max_uncompressed_bytes
                raise PredictionFileError.from_template(
                    ERR_UNCOMPRESSED_TOO_LARGE,
                    limit=limit,
                    limit_text=human_bytes(limit),
                    details={"limit": limit},
                )
            if pending or not data.isascii():
                try:
                    self._decoder.decode(data)
                except UnicodeDecodeError as exc:
                    raise self._fail_encoding(exc, start) from None
        else:
            self._eof = True
            try:
                self._decoder.decode(b"", final=True)
            except UnicodeDecodeError as exc:
                raise self._fail_encoding(exc, start) from None
        if not self._started:
            self._started = True
            while len(data) < len(UTF8_BOM) and UTF8_BOM.startswith(data) and data:
                more = self._next_block(size)
                if not more:
                    break
                data += more
            if data.startswith(UTF8_BOM):
                data = data[len(UTF8_BOM) :]
                self.warnings.append(WARN_BOM)
                if not data:
                    data = self._next_block(size)
        self._lines += data.count(b"\n")
        return data

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = len(view)
        if not self._pending:
            self._pending = self._next_block(min(want, BLOCK_SIZE))
        n = min(want, len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def header_line(self) -> str | None:
        """The first non-blank line, without consuming it; ``None`` when there is none.

        Blank lines before it are consumed (a CSV parser skips them too) and counted in
        ``blank_lines_skipped``.
        """
        while not (rest := self._pending.lstrip(_BLANK)):
            self._count_blank_lines(self._pending)
            self._pending = self._next_block(BLOCK_SIZE)
            if not self._pending:
                return None
        self._count_blank_lines(self._pending[: len(self._pending) - len(rest)])
        self._pending = rest
        while (end := _line_end(self._pending)) < 0:
            if len(self._pending) > HEADER_LIMIT:
                break
            block = self._next_block(BLOCK_SIZE)
            if not block:
                end = len(self._pending)
                break
            self._pending += block
        if end < 0 or end > HEADER_LIMIT:
            raise PredictionFileError.from_template(ERR_HEADER_TOO_LONG, limit=HEADER_LIMIT)
        return self._pending[:end].decode("utf-8", errors="replace")

    def _count_blank_lines(self, blank: bytes) -> None:
        self.blank_lines_skipped += blank.count(b"\n") + blank.count(b"\r") - blank.count(b"\r\n")

    def finish(self) -> None:
        """Read what is left of the upload, so ``size`` and ``sha256`` cover all of it."""
        while self._next_block(BLOCK_SIZE):
            pass
        self._raw.drain()

    @property
    def size(self) -> int:
        """Raw bytes read so far (all of the upload after :meth:`finish`)."""
        return self._raw.size

    @property
    def sha256(self) -> str:
        return self._raw.sha256

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()
