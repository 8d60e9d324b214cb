"""Serves plotly.js from the plotly Python package as ``vendor/plotly.min.js``.

The package ships the minified bundle in its package data; this finder exposes that one file
(and nothing else of the package) to ``collectstatic`` and to the development server, so
pages never load it from a CDN.
"""

from __future__ import annotations

from pathlib import Path

from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage

STATIC_NAME = "vendor/plotly.min.js"


def plotly_js_path() -> Path:
    import plotly

    return Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"


class PlotlyJsFinder(BaseFinder):
    def check(self, **kwargs):
        from django.core.checks import Error

        if not plotly_js_path().is_file():
            return [Error(f"plotly.min.js not found at {plotly_js_path()}", id="board.E001")]
        return []

    def find(self, path, find_all=False, **kwargs):
        if path == STATIC_NAME and plotly_js_path().is_file():
            found = str(plotly_js_path())
            return [found] if find_all or kwargs.get("all") else found
        return [] if find_all or kwargs.get("all") else None

    def list(self, ignore_patterns):
        path = plotly_js_path()
        if path.is_file():
            storage = FileSystemStorage(location=str(path.parent))
            storage.prefix = "vendor"
            yield path.name, storage
