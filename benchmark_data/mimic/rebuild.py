"""Rebuild the public part of a MIMIC-derived benchmark from one's own MIMIC copy.

The platform may not redistribute MIMIC data, so the release of a MIMIC-derived benchmark
(:mod:`benchmark_data.release`) holds identifiers and ``rebuild.json``: the import's
parameters (suite, seed, name, version, image size), the sha256 of each input file the
organizers read, and the sha256 of every public file. A participant with credentialed access
runs the same importer on their copies of MIMIC-IV, MIMIC-CXR-JPG (and MIMIC-IV-Note for the
Yu et al. suite) and MedMod's preprocessed files::

    python -m benchmark_data rebuild-public --ids medmod-mimic-...-ids.tar.gz \\
        --medmod-root DIR --mimic-iv DIR --mimic-cxr DIR [--cxr-images DIR] \\
        [--mimic-note DIR] [--test-subjects FILE] [--val-subjects FILE] --out PUBLIC_DIR

The import is written to a scratch directory, its public part exported to ``PUBLIC_DIR`` and
checked file by file against the release; the credentialed part the import also wrote (the
participant's own MIMIC, labels included) is deleted. An input whose bytes differ from the
organizers' (another MIMIC version) is named before anything is imported.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from benchmark_data.benchmark import Benchmark, BenchmarkError, export_public
from benchmark_data.mimic.cxr import DEFAULT_IMAGE_SIZE
from benchmark_data.mimic.sources import MimicImportError, file_sha256

REBUILD_FILE = "rebuild.json"
ERR_NO_REBUILD = (
    "{path} holds no rebuild.json: give the identifiers archive of a MIMIC-derived "
    "benchmark (the '...-ids.tar.gz' file of its downloads)"
)
ERR_INPUT_DIFFERS = (
    "{n} input file(s) differ from those the benchmark was built from, first: {first} "
    "(yours: {path}); the benchmark needs the same MIMIC versions and MedMod files "
    "(see the release's rebuild.json, source.inputs)"
)
ERR_INPUT_MISSING = "input {name} that the benchmark was built from is not at {path}"
ERR_MISMATCH = (
    "the rebuilt public part differs from the released one in {n} file(s), first: {first}; "
    "check the MIMIC versions and the options given"
)
ERR_ARGUMENT = (
    "this benchmark was built with {option}: give it (the release's rebuild.json, source.inputs)"
)

# Where each recorded input name's prefix lives among the arguments.
_ROOTS = {
    "medmod-root": "medmod_root",
    "mimic-iv": "mimic_iv",
    "mimic-cxr": "mimic_cxr",
    "mimic-iv-note": "mimic_note",
}


def read_rebuild(ids: str | os.PathLike[str]) -> dict[str, Any]:
    """``rebuild.json`` of an identifiers archive (.tar.gz) or of its unpacked directory."""
    path = Path(ids)
    try:
        if path.is_dir():
            return dict(json.loads((path / REBUILD_FILE).read_text()))
        with tarfile.open(path, "r:gz") as tar:
            member = tar.extractfile(REBUILD_FILE)
            if member is None:
                raise KeyError(REBUILD_FILE)
            return dict(json.loads(io.TextIOWrapper(member, encoding="utf-8").read()))
    except (KeyError, FileNotFoundError, tarfile.TarError, ValueError):
        raise MimicImportError(ERR_NO_REBUILD.format(path=path)) from None


def _input_path(name: str, args: dict[str, Any]) -> Path | None:
    """The participant's file of a recorded input name (``mimic-iv/hosp/admissions.csv.gz``)."""
    prefix, _, rest = name.partition("/")
    if prefix in ("test-subjects", "val-subjects"):
        given = args.get(prefix.replace("-", "_"))
        return Path(given) if given else None
    root = args.get(_ROOTS.get(prefix, ""))
    if not root:
        return None
    path = Path(root) / rest
    if prefix in ("mimic-cxr", "mimic-iv-note") and not path.exists():
        found = sorted(Path(root).rglob(rest))  # these are recorded by file name
        return found[0] if found else path
    return path


def check_inputs(recorded: dict[str, str], args: dict[str, Any]) -> None:
    """Every input the benchmark was built from is there with the same bytes."""
    differ = []
    for name, sha in sorted(recorded.items()):
        path = _input_path(name, args)
        if path is None:
            option = "--" + name.partition("/")[0]
            raise MimicImportError(ERR_ARGUMENT.format(option=option))
        if not path.is_file():
            raise MimicImportError(ERR_INPUT_MISSING.format(name=name, path=path))
        if file_sha256(path) != sha:
            differ.append((name, path))
    if differ:
        name, path = differ[0]
        raise MimicImportError(ERR_INPUT_DIFFERS.format(n=len(differ), first=name, path=path))


def _image_size(source: dict[str, Any]) -> int:
    match = re.search(r"shorter side (\d+) px", str(source.get("images", "")))
    return int(match.group(1)) if match else DEFAULT_IMAGE_SIZE


def rebuild_public(
    ids: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str],
    medmod_root: str | os.PathLike[str],
    mimic_iv: str | os.PathLike[str],
    mimic_cxr: str | os.PathLike[str],
    cxr_images: str | os.PathLike[str] | None = None,
    mimic_note: str | os.PathLike[str] | None = None,
    test_subjects: str | os.PathLike[str] | None = None,
    val_subjects: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Import, export the public part to ``out``, check it against the release; returns the
    public manifest written."""
    spec = read_rebuild(ids)
    source = spec.get("source") or {}
    args = {
        "medmod_root": medmod_root, "mimic_iv": mimic_iv, "mimic_cxr": mimic_cxr,
        "mimic_note": mimic_note, "test_subjects": test_subjects, "val_subjects": val_subjects,
    }  # fmt: skip
    check_inputs(dict(source.get("inputs") or {}), args)
    options: dict[str, Any] = {
        "medmod_root": medmod_root, "mimic_iv": mimic_iv, "mimic_cxr": mimic_cxr,
        "test_subjects": test_subjects, "val_subjects": val_subjects,
        "cxr_images": cxr_images if "shorter side" in str(source.get("images", "")) else None,
        "seed": int(spec["seed"]), "name": spec["name"], "version": spec["version"],
        "image_size": _image_size(source),
    }  # fmt: skip
    scratch = Path(tempfile.mkdtemp(prefix="rebuild-"))
    try:
        if spec.get("suite") == "yu2025":
            from benchmark_data.mimic.yu import import_yu

            if not mimic_note:
                raise MimicImportError(ERR_ARGUMENT.format(option="--mimic-note"))
            import_yu(out=scratch / "benchmark", mimic_note=mimic_note, **options)
        else:
            from benchmark_data.mimic.importer import import_mimic

            import_mimic(out=scratch / "benchmark", **options)
        manifest = export_public(Benchmark.open(scratch / "benchmark"), out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)  # the credentialed part: labels
    expected = spec.get("public_files") or {}
    got = manifest["files"]
    wrong = sorted(
        rel
        for rel in set(expected) | set(got)
        if (expected.get(rel) or {}).get("sha256") != (got.get(rel) or {}).get("sha256")
    )
    if wrong:
        raise BenchmarkError(ERR_MISMATCH.format(n=len(wrong), first=wrong[0]))
    return manifest


__all__ = ["check_inputs", "read_rebuild", "rebuild_public"]
