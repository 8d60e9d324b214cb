"""Serves plotly.js as ``vendor/plotly.min.js``, so pages never load it from a CDN.

The file is plotly.js's basic partial bundle (scatter, bar, pie: 1.2 MB), which ``bin/setup``
fetches and checks (``leaderboard.board.plotly_bundle``). Where it is missing, the finder
serves the full bundle that the plotly Python package ships in its package data (4.8 MB, the
same plotly.js version), and the system check says so. Either way this one file, and nothing
else of the package, goes to ``collectstatic`` and to the development server.
"""

from __future__ import annotations

from pathlib import Path

from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage

from leaderboard.board import plotly_bundle

STATIC_NAME = "vendor/plotly.min.js"


def full_plotly_js_path() -> Path:
    import plotly

    return Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"


def plotly_js_path() -> Path:
    """The bundle the pages get: the basic one when it is there, else the full one."""
    basic = plotly_bundle.bundle_path()
    return basic if basic.is_file() else full_plotly_js_path()


class PlotlyJsFinder(BaseFinder):
    def check(self, **kwargs):
        from django.core.checks import Error, Warning

        if not plotly_js_path().is_file():
            return [Error(f"plotly.min.js not found at {plotly_js_path()}", id="board.E001")]
        if plotly_js_path() != plotly_bundle.bundle_path():
            return [
                Warning(
                    f"plotly.js's basic bundle is not at {plotly_bundle.bundle_path()}: the "
                    "pages load the full plotly.js of the plotly package (4.8 MB)",
                    hint="run bin/setup with npm installed (python -m "
                    "leaderboard.board.plotly_bundle fetch), or set PLOTLY_BUNDLE_DIR",
                    id="board.W001",
                )
            ]
        return []

    def find(self, path, find_all=False, **kwargs):
        found = (
            str(plotly_js_path()) if path == STATIC_NAME and plotly_js_path().is_file() else None
        )
        if find_all or kwargs.get("all"):
            return [found] if found else []
        return found

    def list(self, ignore_patterns):
        path = plotly_js_path()
        if path.is_file():
            # Exposed under the static name, whichever file it is.
            storage = _OneFileStorage(path, name=Path(STATIC_NAME).name)
            storage.prefix = str(Path(STATIC_NAME).parent)
            yield Path(STATIC_NAME).name, storage


class _OneFileStorage(FileSystemStorage):
    """A storage holding one file under another name (plotly-basic-4.1.1.min.js as
    plotly.min.js), for collectstatic."""

    def __init__(self, path: Path, *, name: str):
        super().__init__(location=str(path.parent))
        self._file, self._name = path, name
        self.prefix = ""  # the folder collectstatic puts the file in

    def path(self, name):
        return str(self._file) if name == self._name else super().path(name)
