"""Static delivery: plotly.js's basic bundle, checked against the hash the project pins, is
what the pages load; collected under hashed names with gzip and brotli copies; the full
bundle of the plotly package only when the basic one is missing, with a warning."""

from __future__ import annotations

import gzip
import io
import json
import re
import tarfile

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command

from leaderboard.board import plotly_bundle
from leaderboard.board.staticfinders import PlotlyJsFinder, full_plotly_js_path


def _tarball(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def test_the_basic_bundle_is_the_plotly_js_version_of_the_python_package():
    """The figures come from the plotly Python package: the pages draw them with the same
    plotly.js version, only a smaller build of it."""
    head = full_plotly_js_path().read_bytes()[:200].decode()
    assert re.search(r"plotly\.js v(\S+)", head).group(1) == plotly_bundle.VERSION


@pytest.mark.slow
def test_the_pages_get_the_basic_bundle_collected_alone_under_a_hashed_name(settings, tmp_path):
    assert plotly_bundle.bundle_path().is_file(), "bin/setup fetches it (npm)"
    assert finders.find("vendor/plotly.min.js") == str(plotly_bundle.bundle_path())
    assert PlotlyJsFinder().check() == []

    settings.STATIC_ROOT = tmp_path
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
    call_command("collectstatic", interactive=False, verbosity=0)
    hashed = json.loads((tmp_path / "staticfiles.json").read_text())["paths"]
    name = hashed["vendor/plotly.min.js"]
    assert re.fullmatch(r"vendor/plotly\.min\.[0-9a-f]{12}\.js", name)
    collected = tmp_path / name
    assert collected.read_bytes() == plotly_bundle.bundle_path().read_bytes()
    assert (
        b"plotly.js (basic - minified) v" + plotly_bundle.VERSION.encode()
        in collected.read_bytes()[:200]
    )
    assert gzip.decompress((tmp_path / f"{name}.gz").read_bytes()) == collected.read_bytes()
    brotli = pytest.importorskip("brotli")
    assert brotli.decompress((tmp_path / f"{name}.br").read_bytes()) == collected.read_bytes()
    assert (tmp_path / f"{name}.br").stat().st_size < 400_000
    assert all(p.name.startswith("plotly.min.") for p in (tmp_path / "vendor").iterdir())


def test_without_the_basic_bundle_the_full_one_is_served_with_a_warning(monkeypatch, tmp_path):
    monkeypatch.setenv("PLOTLY_BUNDLE_DIR", str(tmp_path / "nothing-here"))
    assert finders.find("vendor/plotly.min.js") == str(full_plotly_js_path())
    warnings = PlotlyJsFinder().check()
    assert [w.id for w in warnings] == ["board.W001"]
    assert "full plotly.js" in warnings[0].msg and "bin/setup" in warnings[0].hint


def test_a_tarball_of_another_content_is_refused_and_nothing_is_written(tmp_path):
    fake = _tarball({plotly_bundle.MEMBER: b"window.Plotly = {};"})
    with pytest.raises(plotly_bundle.BundleError, match="not the release this project was checked"):
        plotly_bundle.unpack(fake, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_tarball_with_the_pinned_hash_is_unpacked(monkeypatch, tmp_path):
    """The unpacking itself, on a tarball made here whose hash is pinned for the test."""
    import base64
    import hashlib

    tarball = _tarball({plotly_bundle.MEMBER: b"/* plotly */", "package/README.md": b"x"})
    pin = "sha512-" + base64.b64encode(hashlib.sha512(tarball).digest()).decode()
    monkeypatch.setattr(plotly_bundle, "INTEGRITY", pin)
    path = plotly_bundle.unpack(tarball, tmp_path / "out")
    assert path == plotly_bundle.bundle_path(tmp_path / "out")
    assert path.read_bytes() == b"/* plotly */"
    assert [p.name for p in (tmp_path / "out").iterdir()] == [plotly_bundle.FILE_NAME]


def test_fetch_does_nothing_when_the_bundle_is_there(tmp_path):
    (tmp_path / plotly_bundle.FILE_NAME).write_bytes(b"kept")
    assert plotly_bundle.fetch(tmp_path).read_bytes() == b"kept"
