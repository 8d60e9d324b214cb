"""Checks on an uploaded image archive (``docker save`` output) before anything runs it.

:func:`inspect_image_archive` reads the archive once, as a stream: it never holds a layer in
memory and stops as soon as a limit is passed. It accepts exactly one linux image for the
engine's architecture, with an ENTRYPOINT or CMD, within the size limits, and refuses
anything else with a message the submitter can act on (the ``ERR_*`` constants).

:func:`load_stream` then feeds the same archive to the engine with its tags replaced by the
run's own tag, so an upload can never re-point a tag the worker uses.
"""

from __future__ import annotations

import hashlib
import json
import platform
import posixpath
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leaderboard.containers.limits import DEFAULT_LIMITS, Limits, format_bytes

HOW_TO_SAVE = "save the image with `docker save -o model.tar IMAGE` and upload that file"

ERR_MISSING = "the image archive {path} does not exist"
ERR_EMPTY = "the image archive is empty; " + HOW_TO_SAVE
ERR_ARCHIVE_TOO_LARGE = "the image archive is {size}, over the limit of {limit}"
ERR_NOT_TAR = "the upload is not a tar archive (plain, gzip, bzip2 or xz); " + HOW_TO_SAVE
ERR_DAMAGED = "the image archive is damaged or truncated ({detail}); " + HOW_TO_SAVE
ERR_TOO_MANY_MEMBERS = "the image archive holds more than {limit} entries"
ERR_UNSAFE_MEMBER = "the image archive holds an entry with an unsafe name or type: {name!r}"
ERR_DUPLICATE_MEMBER = "the image archive holds the entry {name!r} twice"
ERR_NO_MANIFEST = (
    "the archive has no manifest.json, so it is not `docker save` output (a root filesystem "
    "tarball from `docker export` is not an image); " + HOW_TO_SAVE
)
ERR_BAD_MANIFEST = "manifest.json of the archive is not valid ({detail})"
ERR_IMAGE_COUNT = (
    "the archive holds {n} images; exactly one is run: save a single image "
    "(`docker save -o model.tar IMAGE`)"
)
ERR_MISSING_ENTRY = "manifest.json names {name}, which is not in the archive"
ERR_BAD_CONFIG = "the image configuration {name} is not valid ({detail})"
ERR_PLATFORM = (
    "the image is built for {os}/{arch}; the platform runs linux/{expected} images "
    "(build with `docker build --platform linux/{expected}`)"
)
ERR_NO_COMMAND = (
    "the image declares neither ENTRYPOINT nor CMD, so there is nothing to run; add "
    'e.g. ENTRYPOINT ["python3", "/opt/model/predict.py"] to the Dockerfile'
)
ERR_LAYERS_TOO_LARGE = "the image's layers total more than {limit} (uncompressed)"
ERR_TOO_MANY_LAYERS = "the image has {n} layers, over the limit of {limit}"
ERR_TOO_MANY_VOLUMES = "the image declares {n} VOLUMEs, over the limit of {limit}"
ERR_LAYER_NOT_TAR = "the image's layer {layer} is not a tar archive ({detail})"
ERR_TOO_MANY_FILES = "the image's layers hold more than {limit} files and directories"
ERR_DEVICE = (
    "the image holds the device file /{path} ({kind}); device files are refused outside "
    "/dev, which the platform provides: delete it from the image"
)
ERR_SETID = (
    "the image holds /{path}, a {bits} file{more}; set-user-ID and set-group-ID programs "
    "are refused: add `RUN find / -xdev -perm /6000 -type f -exec chmod a-s {{}} +` as the "
    "last RUN step of the Dockerfile"
)
ERR_CAPABILITY = (
    "the image holds /{path}, a file with capabilities (the security.capability extended "
    "attribute){more}; file capabilities are refused: remove them (`RUN setcap -r /{path}`) "
    "or leave the program out"
)

# Members of `docker save` output that carry tags or an OCI index. They are left out of what
# is sent to the engine: the run's manifest.json alone names the image (see load_stream).
_TAG_MEMBERS = frozenset({"repositories", "index.json", "oci-layout"})
_RETAIN_MEMBER_BYTES = 4 * 1024 * 1024  # small files kept while streaming (configs)
_RETAIN_TOTAL_BYTES = 64 * 1024 * 1024
_CHUNK = 1024 * 1024
_ARCH_NAMES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


class ImageArchiveError(ValueError):
    """The uploaded archive is not an image the platform can run; the message says why."""


@dataclass(frozen=True)
class ImageInfo:
    """What the checks found in an image archive."""

    path: Path
    archive_bytes: int
    layers_bytes: int
    image_id: str  # "sha256:<digest of the config>", the id the engine gives the image
    config_name: str
    layer_names: tuple[str, ...]
    architecture: str
    os: str
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    user: str
    working_dir: str
    env: tuple[str, ...]
    volumes: tuple[str, ...]
    repo_tags: tuple[str, ...]
    compression: str | None  # None, "gzip", "bz2" or "xz"

    @property
    def n_layers(self) -> int:
        return len(self.layer_names)

    def env_names(self) -> set[str]:
        return {e.split("=", 1)[0] for e in self.env}

    def summary(self) -> dict[str, Any]:
        """JSON-able description for the submission page."""
        return {
            "image_id": self.image_id,
            "platform": f"{self.os}/{self.architecture}",
            "archive_bytes": self.archive_bytes,
            "layers_bytes": self.layers_bytes,
            "layers": self.n_layers,
            "entrypoint": list(self.entrypoint),
            "cmd": list(self.cmd),
            "tags": list(self.repo_tags),
        }


def engine_architecture(machine: str | None = None) -> str:
    """The image architecture name (``amd64``, ``arm64``) of a machine type."""
    m = machine or platform.machine()
    return _ARCH_NAMES.get(m.lower(), m.lower())


def _member_name(raw: str) -> str | None:
    """Normalized member name, or None when it escapes the archive."""
    name = raw.replace("\\", "/")
    if name.startswith("/"):
        return None
    norm = posixpath.normpath(name)
    if norm == ".." or norm.startswith("../"):
        return None
    return norm


def _compression(path: Path) -> str | None:
    with path.open("rb") as fh:
        head = fh.read(6)
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:3] == b"BZh":
        return "bz2"
    if head[:6] == b"\xfd7zXZ\x00":
        return "xz"
    return None


def _read_json(data: bytes, what: str, err: str, **fmt: Any) -> Any:
    try:
        return json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ImageArchiveError(err.format(detail=f"{what}: {exc}", **fmt)) from None


def inspect_image_archive(
    path: str | Path, *, limits: Limits = DEFAULT_LIMITS, architecture: str | None = None
) -> ImageInfo:
    """Check an uploaded image archive; returns what it holds or raises ImageArchiveError.

    ``architecture`` is the one the engine runs (default: this machine's).
    """
    p = Path(path)
    size = _archive_size(p, limits)
    compression = _compression(p)
    scan = _MemberScan(size=size, compression=compression, limits=limits)
    try:
        with tarfile.open(p, "r:*") as tf:
            for m in iter(tf.next, None):
                scan.add(tf, m)
            info = _check_manifest(tf, scan.members, scan.retained, limits, architecture)
            _check_layer_files(tf, scan.members, info["layer_names"], limits)
    except tarfile.ReadError as exc:
        if not scan.members:
            raise ImageArchiveError(ERR_NOT_TAR) from None
        raise ImageArchiveError(ERR_DAMAGED.format(detail=exc)) from None
    except (EOFError, OSError, tarfile.TarError) as exc:
        raise ImageArchiveError(ERR_DAMAGED.format(detail=exc)) from None
    return ImageInfo(path=p, archive_bytes=size, compression=compression, **info)


def _archive_size(p: Path, limits: Limits) -> int:
    """The archive's size in bytes; refuses a missing, empty or oversized file."""
    if not p.is_file():
        raise ImageArchiveError(ERR_MISSING.format(path=p.name))
    size = p.stat().st_size
    if size == 0:
        raise ImageArchiveError(ERR_EMPTY)
    if size > limits.archive_bytes:
        raise ImageArchiveError(
            ERR_ARCHIVE_TOO_LARGE.format(
                size=format_bytes(size), limit=format_bytes(limits.archive_bytes)
            )
        )
    return size


@dataclass
class _MemberScan:
    """One pass over the archive's members in order: each is checked (count, name, type,
    no second copy, the running total of the file sizes) and the small ones are kept for
    the manifest and config checks."""

    size: int  # of the archive file
    compression: str | None
    limits: Limits
    members: dict[str, tarfile.TarInfo] = field(default_factory=dict)
    retained: dict[str, bytes] = field(default_factory=dict)
    retained_total: int = 0
    total: int = 0  # bytes of the files so far

    def add(self, tf: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        name = self._admit(m)
        if not m.isfile():
            return
        self.total += m.size
        if self.total > self.limits.layers_bytes:
            raise ImageArchiveError(
                ERR_LAYERS_TOO_LARGE.format(limit=format_bytes(self.limits.layers_bytes))
            )
        if self.compression is None and m.offset_data + m.size > self.size:
            raise ImageArchiveError(ERR_DAMAGED.format(detail=f"{name} is cut short"))
        if self._keeps(name, m):
            self._keep(tf, name, m)
        elif self.compression is not None:
            # Read through compressed data now so a truncated stream fails here.
            fh = tf.extractfile(m)
            while fh is not None and fh.read(_CHUNK):
                pass

    def _admit(self, m: tarfile.TarInfo) -> str:
        """The member's normalized name, once it is known to be safe and new."""
        if len(self.members) >= self.limits.max_archive_members:
            raise ImageArchiveError(
                ERR_TOO_MANY_MEMBERS.format(limit=self.limits.max_archive_members)
            )
        name = _member_name(m.name)
        if name is None or not (m.isfile() or m.isdir() or m.issym()):
            raise ImageArchiveError(ERR_UNSAFE_MEMBER.format(name=m.name))
        if name in self.members:
            raise ImageArchiveError(ERR_DUPLICATE_MEMBER.format(name=name))
        self.members[name] = m
        return name

    def _keeps(self, name: str, m: tarfile.TarInfo) -> bool:
        return (
            m.size <= _RETAIN_MEMBER_BYTES
            and self.retained_total + m.size <= _RETAIN_TOTAL_BYTES
            and not name.endswith(".tar")
        )

    def _keep(self, tf: tarfile.TarFile, name: str, m: tarfile.TarInfo) -> None:
        fh = tf.extractfile(m)
        data = fh.read() if fh is not None else b""
        if len(data) != m.size:
            raise ImageArchiveError(ERR_DAMAGED.format(detail=f"{name} is cut short"))
        self.retained[name] = data
        self.retained_total += m.size


def _resolve(name: str, members: dict[str, tarfile.TarInfo]) -> str | None:
    """Follow symlinks between members (`docker save` links shared layers)."""
    seen = 0
    while name in members and members[name].issym() and seen < 8:
        target = members[name].linkname
        if target.startswith("/"):
            return None
        name = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
        seen += 1
    m = members.get(name)
    return name if m is not None and m.isfile() else None


def _member_bytes(
    name: str, tf: tarfile.TarFile, members: dict[str, tarfile.TarInfo], retained: dict[str, bytes]
) -> bytes:
    real = _resolve(name, members)
    if real is None:
        raise ImageArchiveError(ERR_MISSING_ENTRY.format(name=name))
    if real in retained:
        return retained[real]
    m = members[real]
    if m.size > _RETAIN_MEMBER_BYTES:
        raise ImageArchiveError(
            ERR_BAD_MANIFEST.format(detail=f"{name} is {format_bytes(m.size)}, too large")
        )
    fh = tf.extractfile(m)
    return fh.read() if fh is not None else b""


def _check_manifest(
    tf: tarfile.TarFile,
    members: dict[str, tarfile.TarInfo],
    retained: dict[str, bytes],
    limits: Limits,
    architecture: str | None,
) -> dict[str, Any]:
    """What the archive's one image is (the fields of :class:`ImageInfo` the archive's
    manifest and the image's configuration give), once both are checked."""
    entry = _manifest_entry(tf, members, retained)
    layers = entry["Layers"]
    if len(layers) > limits.max_layers:
        raise ImageArchiveError(ERR_TOO_MANY_LAYERS.format(n=len(layers), limit=limits.max_layers))
    layers_bytes = _layers_bytes(layers, members)
    config_name = _member_name(entry["Config"]) or entry["Config"]
    config_bytes = _member_bytes(config_name, tf, members, retained)
    config = _read_json(config_bytes, config_name, ERR_BAD_CONFIG, name=config_name)
    if not isinstance(config, dict):
        raise ImageArchiveError(ERR_BAD_CONFIG.format(name=config_name, detail="not an object"))
    os_name, arch = _check_platform(config, architecture)
    run = _run_config(config, config_name, limits)
    tags = entry.get("RepoTags") or ()
    return {
        "layers_bytes": layers_bytes,
        "image_id": "sha256:" + hashlib.sha256(config_bytes).hexdigest(),
        "config_name": config_name,
        "layer_names": tuple(layers),
        "architecture": arch,
        "os": os_name,
        **run,
        "repo_tags": tuple(str(t) for t in tags if isinstance(t, str)),
    }


def _manifest_entry(
    tf: tarfile.TarFile, members: dict[str, tarfile.TarInfo], retained: dict[str, bytes]
) -> dict[str, Any]:
    """The one image manifest.json lists, with its Config name and its Layers list."""
    if "manifest.json" not in members:
        raise ImageArchiveError(ERR_NO_MANIFEST)
    manifest = _read_json(
        _member_bytes("manifest.json", tf, members, retained),
        "manifest.json",
        ERR_BAD_MANIFEST,
    )
    if not isinstance(manifest, list):
        raise ImageArchiveError(ERR_BAD_MANIFEST.format(detail="expected a list of images"))
    if len(manifest) != 1:
        raise ImageArchiveError(ERR_IMAGE_COUNT.format(n=len(manifest)))
    entry = manifest[0]
    if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
        raise ImageArchiveError(ERR_BAD_MANIFEST.format(detail="the image has no Config entry"))
    layers = entry.get("Layers")
    if not isinstance(layers, list) or not all(isinstance(x, str) for x in layers):
        raise ImageArchiveError(ERR_BAD_MANIFEST.format(detail="the image has no Layers list"))
    return entry


def _layers_bytes(layers: list[str], members: dict[str, tarfile.TarInfo]) -> int:
    """The layers' total size in the archive; refuses a layer that is not in it."""
    total = 0
    for layer in layers:
        real = _resolve(_member_name(layer) or layer, members)
        if real is None:
            raise ImageArchiveError(ERR_MISSING_ENTRY.format(name=layer))
        total += members[real].size
    return total


def _check_platform(config: dict[str, Any], architecture: str | None) -> tuple[str, str]:
    """The image's os and architecture, refused unless linux on the engine's architecture."""
    expected = architecture or engine_architecture()
    os_name = str(config.get("os", ""))
    arch = str(config.get("architecture", ""))
    if os_name != "linux" or engine_architecture(arch) != expected:
        raise ImageArchiveError(
            ERR_PLATFORM.format(os=os_name or "?", arch=arch or "?", expected=expected)
        )
    return os_name, arch


def _run_config(config: dict[str, Any], config_name: str, limits: Limits) -> dict[str, Any]:
    """How the image runs (the :class:`ImageInfo` fields entrypoint, cmd, user, working_dir,
    env and volumes); refuses an image with nothing to run or too many volumes."""
    run = config.get("config") or {}
    if not isinstance(run, dict):
        raise ImageArchiveError(ERR_BAD_CONFIG.format(name=config_name, detail="bad config"))
    entrypoint = tuple(str(x) for x in (run.get("Entrypoint") or ()))
    cmd = tuple(str(x) for x in (run.get("Cmd") or ()))
    if not entrypoint and not cmd:
        raise ImageArchiveError(ERR_NO_COMMAND)
    volumes = tuple(sorted(str(v) for v in (run.get("Volumes") or {})))
    if len(volumes) > limits.max_volumes:
        raise ImageArchiveError(
            ERR_TOO_MANY_VOLUMES.format(n=len(volumes), limit=limits.max_volumes)
        )
    return {
        "entrypoint": entrypoint,
        "cmd": cmd,
        "user": str(run.get("User") or ""),
        "working_dir": str(run.get("WorkingDir") or ""),
        "env": tuple(str(e) for e in (run.get("Env") or ())),
        "volumes": volumes,
    }


# Extended attributes as tar writes them in PAX headers (GNU tar/Go, and libarchive).
_CAPABILITY_KEYS = ("SCHILY.xattr.security.capability", "LIBARCHIVE.xattr.security.capability")
_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"


def _layer_path(raw: str) -> str:
    path = posixpath.normpath("/" + raw.replace("\\", "/")).lstrip("/")
    return "" if path == "." else path


def _danger(m: tarfile.TarInfo, path: str) -> str | None:
    """What is refused about one layer entry: "device:<kind>", "setid:<bits>",
    "capability", or None. Device files under /dev are left: the runtime mounts its own
    /dev over them. A set-group-ID directory only sets the group of new files: left too."""
    if m.ischr() or m.isblk():
        if path == "dev" or path.startswith("dev/"):
            return None
        return "device:" + ("character device" if m.ischr() else "block device")
    if any(key in m.pax_headers for key in _CAPABILITY_KEYS):
        return "capability"
    if (m.isreg() or m.islnk()) and m.mode & 0o6000:
        bits = [name for bit, name in ((0o4000, "set-user-ID"), (0o2000, "set-group-ID"))
                if m.mode & bit]  # fmt: skip
        return "setid:" + " and ".join(bits)
    return None


def _layer_entries(
    tf: tarfile.TarFile, member: tarfile.TarInfo, layer: str
) -> Iterator[tarfile.TarInfo]:
    """The entries of one layer tarball (plain or compressed), read from the outer archive
    without extracting it: an uncompressed layer's contents are skipped by seeking."""
    fh = tf.extractfile(member)
    if fh is None:
        raise ImageArchiveError(ERR_LAYER_NOT_TAR.format(layer=layer, detail="not a file"))
    try:
        with tarfile.open(fileobj=fh, mode="r:*") as inner:
            yield from inner
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise ImageArchiveError(ERR_LAYER_NOT_TAR.format(layer=layer, detail=exc)) from None


def _check_layer_files(
    tf: tarfile.TarFile,
    members: dict[str, tarfile.TarInfo],
    layer_names: tuple[str, ...],
    limits: Limits,
) -> None:
    """Refuse device files (outside /dev), set-user-ID and set-group-ID files and files with
    capabilities in the image's file system as the engine would assemble it: a later layer
    that changes such a file's mode, replaces it or deletes it (a whiteout) clears it.

    Two passes in archive order (one sequential read each, also for a compressed upload):
    the first finds the suspect files, the second, only when there are some, what the
    layers above them did to them.
    """
    layers = _ImageLayers.of(tf, members, layer_names)
    suspects = _suspects(layers, limits)
    if suspects:
        _refuse_left(_left(layers, suspects), suspects)


@dataclass(frozen=True)
class _ImageLayers:
    """The layer tarballs of the image in an archive: each real member's (last) position in
    the image's layers, and the members in archive order (for one sequential read)."""

    tf: tarfile.TarFile
    members: dict[str, tarfile.TarInfo]
    order: dict[str, int]

    @classmethod
    def of(
        cls, tf: tarfile.TarFile, members: dict[str, tarfile.TarInfo], names: tuple[str, ...]
    ) -> _ImageLayers:
        order: dict[str, int] = {}
        for i, name in enumerate(names):
            real = _resolve(_member_name(name) or name, members)
            if real is not None:
                order[real] = max(order.get(real, -1), i)
        return cls(tf=tf, members=members, order=order)

    def in_archive_order(self) -> list[str]:
        return sorted(self.order, key=lambda n: self.members[n].offset)

    def entries(self, real: str) -> Iterator[tarfile.TarInfo]:
        return _layer_entries(self.tf, self.members[real], real)


def _suspects(layers: _ImageLayers, limits: Limits) -> dict[str, tuple[int, str]]:
    """First pass: path -> (position of the highest layer holding it refused, what is
    refused, as :func:`_danger` says); refuses layers with too many entries in all."""
    suspects: dict[str, tuple[int, str]] = {}
    entries = 0
    for real in layers.in_archive_order():
        for m in layers.entries(real):
            entries += 1
            if entries > limits.max_layer_entries:
                raise ImageArchiveError(ERR_TOO_MANY_FILES.format(limit=limits.max_layer_entries))
            path = _layer_path(m.name)
            danger = _danger(m, path) if path else None
            if danger is not None:
                previous = suspects.get(path)
                if previous is None or previous[0] < layers.order[real]:
                    suspects[path] = (layers.order[real], danger)
    return suspects


def _cleared(m: tarfile.TarInfo, path: str, suspects: dict[str, tuple[int, str]]) -> list[str]:
    """The suspect paths one layer entry clears: a clean entry at the path, a whiteout of it
    or of a parent, an opaque parent, or a non-directory replacing a parent."""
    parent, base = posixpath.split(path)
    if base == _OPAQUE:
        return [p for p in suspects if parent == "" or p.startswith(parent + "/")]
    if base.startswith(_WHITEOUT):
        gone = posixpath.join(parent, base[len(_WHITEOUT) :])
        return [p for p in suspects if p == gone or p.startswith(gone + "/")]
    cleared = [p for p in suspects if p == path and _danger(m, path) is None]
    if not m.isdir():
        cleared += [p for p in suspects if p.startswith(path + "/")]
    return cleared


def _left(layers: _ImageLayers, suspects: dict[str, tuple[int, str]]) -> list[str]:
    """Second pass: the suspect paths no layer above clears (the last layer to touch a path
    decides), sorted."""
    last_clean: dict[str, int] = {}
    earliest = min(pos for pos, _ in suspects.values())
    for real in layers.in_archive_order():
        pos = layers.order[real]
        if pos <= earliest:  # cannot clear anything: skip reading it again
            continue
        for m in layers.entries(real):
            path = _layer_path(m.name)
            if not path:
                continue
            for p in _cleared(m, path, suspects):
                if pos > suspects[p][0]:
                    last_clean[p] = max(last_clean.get(p, -1), pos)
    return sorted(p for p, (pos, _) in suspects.items() if last_clean.get(p, -1) <= pos)


def _refuse_left(left: list[str], suspects: dict[str, tuple[int, str]]) -> None:
    """Raise for the first kind of refused file left (devices, then capabilities, then
    set-ID bits), naming the first path and counting the others."""
    kinds: dict[str, list[str]] = {}
    for p in left:
        kinds.setdefault(suspects[p][1].split(":", 1)[0], []).append(p)
    for kind in ("device", "capability", "setid"):
        paths = kinds.get(kind)
        if not paths:
            continue
        first = paths[0]
        detail = suspects[first][1].partition(":")[2]
        more = f" (and {len(paths) - 1} more: /" + ", /".join(paths[1:4]) + (
            ", ..." if len(paths) > 4 else "") + ")" if len(paths) > 1 else ""  # fmt: skip
        if kind == "device":
            raise ImageArchiveError(ERR_DEVICE.format(path=first, kind=detail))
        if kind == "capability":
            raise ImageArchiveError(ERR_CAPABILITY.format(path=first, more=more))
        raise ImageArchiveError(ERR_SETID.format(path=first, bits=detail, more=more))


def _padding(n: int) -> bytes:
    return b"\0" * (-n % tarfile.BLOCKSIZE)


def load_stream(info: ImageInfo, tag: str) -> Iterator[bytes]:
    """The checked archive as an uncompressed tar stream, for the engine's image load.

    manifest.json is rewritten to name the image ``tag`` only; ``repositories`` and the OCI
    index are left out, so loading sets no tag from the upload. Layers and the config are
    passed through unchanged (the image id stays the config's digest).
    """
    manifest = [{"Config": info.config_name, "RepoTags": [tag], "Layers": list(info.layer_names)}]
    manifest_bytes = json.dumps(manifest).encode()
    with tarfile.open(info.path, "r:*") as tf:
        for m in tf:
            name = _member_name(m.name)
            if name in _TAG_MEMBERS:
                continue
            if name == "manifest.json":
                ti = tarfile.TarInfo("manifest.json")
                ti.size = len(manifest_bytes)
                ti.mode = 0o644
                yield ti.tobuf(tarfile.PAX_FORMAT)
                yield manifest_bytes + _padding(len(manifest_bytes))
                continue
            yield m.tobuf(tarfile.PAX_FORMAT)
            if m.isfile() and m.size:
                fh = tf.extractfile(m)
                sent = 0
                while fh is not None:
                    chunk = fh.read(_CHUNK)
                    if not chunk:
                        break
                    sent += len(chunk)
                    yield chunk
                if sent != m.size:
                    raise ImageArchiveError(ERR_DAMAGED.format(detail=f"{name} changed"))
                yield _padding(m.size)
    yield b"\0" * (2 * tarfile.BLOCKSIZE)
