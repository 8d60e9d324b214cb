"""plotly.js's partial bundle ``plotly.js-basic-dist-min`` (scatter, bar and pie traces), the
one the pages load: the charts draw only scatter traces, and the basic bundle is a quarter
of the full plotly.js that the plotly Python package ships (1.2 MB against 4.8 MB).

``bin/setup`` fetches it once with ``npm pack`` through npm's own configured registry, checks
the tarball against the integrity hash below (the ``dist.integrity`` npm reports for this
version) and unpacks its one file under ``.venv/share/plotly/``, outside git. Nothing is
fetched at run time: ``leaderboard.board.staticfinders`` serves the unpacked file, or the full
bundle of the plotly Python package, with a system-check warning, when it is not there.

    python -m leaderboard.board.plotly_bundle fetch [--dir DIR]   # fetch, check, unpack
    python -m leaderboard.board.plotly_bundle path                # where the pages take it

No Django here: ``bin/setup`` runs this before the site is configured.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "plotly.js-basic-dist-min"
# The same plotly.js version as the plotly Python package's full bundle (requirements.txt
# pins plotly; its package_data/plotly.min.js says "plotly.js v4.1.1"): the figures it
# writes are the ones this version reads. Change both together.
VERSION = "4.1.1"
INTEGRITY = "sha512-1oNF8PeQx2hv/y7tqEVWKD3JGwn/MGEMQ8mL9HUwsaqG9FGy/OU5FHUHvzqbqxN4mnwZGI9abTiE775C4kkjMQ=="
MEMBER = "package/plotly-basic.min.js"
FILE_NAME = f"plotly-basic-{VERSION}.min.js"

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DIR = ROOT / ".venv" / "share" / "plotly"


def bundle_dir() -> Path:
    """Where the unpacked bundle lives: ``PLOTLY_BUNDLE_DIR``, else ``.venv/share/plotly``."""
    return Path(os.environ.get("PLOTLY_BUNDLE_DIR") or DEFAULT_DIR)


def bundle_path(directory: Path | None = None) -> Path:
    return (directory or bundle_dir()) / FILE_NAME


class BundleError(RuntimeError):
    pass


def check_integrity(data: bytes, integrity: str | None = None) -> None:
    """Raise BundleError unless ``data`` has the Subresource-Integrity hash ``integrity``
    (``sha512-<base64>``, as npm reports it; default: the pinned ``INTEGRITY``)."""
    algorithm, _, expected = (integrity or INTEGRITY).partition("-")
    if algorithm not in ("sha512", "sha384", "sha256"):
        raise BundleError(f"unsupported integrity algorithm {algorithm!r}")
    got = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
    if got != expected:
        raise BundleError(
            f"{PACKAGE}@{VERSION}: the tarball's {algorithm} is {got}, not the expected "
            f"{expected}; it is not the release this project was checked with"
        )


def unpack(tarball: bytes, directory: Path) -> Path:
    """Check ``tarball`` and write its plotly-basic.min.js to ``directory``; return the path."""
    check_integrity(tarball)
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        try:
            member = tar.getmember(MEMBER)
        except KeyError:
            raise BundleError(f"{PACKAGE}@{VERSION} has no {MEMBER}") from None
        source = tar.extractfile(member)
        if source is None:
            raise BundleError(f"{MEMBER} of {PACKAGE}@{VERSION} is not a file")
        content = source.read()
    directory.mkdir(parents=True, exist_ok=True)
    target = bundle_path(directory)
    partial = target.with_suffix(".partial")
    partial.write_bytes(content)
    partial.replace(target)
    return target


def npm_pack(npm: str = "npm") -> bytes:
    """``npm pack PACKAGE@VERSION`` in a temporary folder, through npm's configured registry."""
    if shutil.which(npm) is None:
        raise BundleError("npm is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        run = subprocess.run(
            [npm, "pack", f"{PACKAGE}@{VERSION}", "--silent", "--pack-destination", tmp],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        tarballs = list(Path(tmp).glob("*.tgz"))
        if run.returncode != 0 or len(tarballs) != 1:
            raise BundleError(f"npm pack {PACKAGE}@{VERSION} failed: {run.stderr.strip()[-500:]}")
        return tarballs[0].read_bytes()


def fetch(directory: Path | None = None) -> Path:
    """The bundle, fetched and checked if it is not there yet (a second call does nothing)."""
    directory = directory or bundle_dir()
    target = bundle_path(directory)
    if target.is_file():
        return target
    return unpack(npm_pack(), directory)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m leaderboard.board.plotly_bundle")
    sub = parser.add_subparsers(dest="command", required=True)
    get = sub.add_parser("fetch", help="fetch, check and unpack the bundle (once)")
    get.add_argument("--dir", type=Path, default=None, help="default: .venv/share/plotly")
    sub.add_parser("path", help="print where the bundle is expected")
    args = parser.parse_args(argv)
    if args.command == "path":
        sys.stdout.write(f"{bundle_path()}\n")
        return 0
    try:
        path = fetch(args.dir)
    except (BundleError, OSError, subprocess.SubprocessError, tarfile.TarError) as exc:
        sys.stderr.write(f"plotly bundle: {exc}\n")
        return 1
    sys.stdout.write(f"{PACKAGE}@{VERSION}: {path} ({path.stat().st_size / 1e6:.1f} MB)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
