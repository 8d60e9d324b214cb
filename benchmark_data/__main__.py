"""Command line: ``python -m benchmark_data {synth,import-mimic,export-public,rebuild-public,summary,verify,copy}``."""

from __future__ import annotations

import argparse
import json
import sys
import time

from benchmark_data.benchmark import Benchmark, BenchmarkError, export_public
from benchmark_data.store import StoreError, copy_tree, open_store
from benchmark_data.tasks import SPLITS


def _summary(bench: Benchmark) -> str:
    m = bench.manifest
    lines = [
        f"benchmark {m['name']} version {m['version']} (seed {m.get('seed')})",
        f"  source: {json.dumps(m.get('source'), sort_keys=True)}",
        f"  parts: {', '.join(m.get('parts', []))}; {len(m['files'])} files, "
        f"{sum(f['size'] for f in m['files'].values()) / 1e6:.1f} MB",
        f"  manifest sha256: {bench.manifest_hash}",
    ]
    counts = m.get("counts", {})
    if counts:
        lines.append(
            f"  {'task':<24}"
            + "".join(f"{s:>10}" for s in SPLITS)
            + "   test paired   gateway test   scored on"
        )
        for task, c in counts.items():
            lines.append(
                f"  {task:<24}"
                + "".join(f"{c.get(s, 0):>10,}" for s in SPLITS)
                + f"{c.get('test_paired', 0):>14,}"
                + f"{c.get('test_clean', c.get('test', 0)):>13,}"
                + f"   {bench.scored_on(task)}"
            )
        lines.append(
            "  (test: the public test units, each published stay at its cutoff; gateway test: "
            "the clean units of the whole test split, of which the public files show nothing "
            "past their prediction time)"
        )
    for key in ("prevalence", "stats"):
        if key in m:
            lines.append(f"  {key}: {json.dumps(m[key], sort_keys=True)}")
    return "\n".join(lines)


# The synthetic generators' scales per suite.
SYNTH_SCALES = {
    "medmod": ("demo", "medmod"),
    "yu2025": ("demo", "paper"),
    "medfuse": ("demo", "paper"),
}


def _mimic_roots(p: argparse.ArgumentParser) -> None:
    p.add_argument("--medmod-root", required=True, help="MedMod mimic4extract output directory")
    p.add_argument("--mimic-iv", required=True, help="MIMIC-IV directory (hosp/, icu/)")
    p.add_argument("--mimic-cxr", required=True, help="MIMIC-CXR-JPG metadata directory")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark_data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="generate a synthetic MIMIC-shaped benchmark of a suite")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--suite", choices=list(SYNTH_SCALES), default="medmod",
                   help="the suite (default medmod)")  # fmt: skip
    p.add_argument("--scale", default="demo",
                   help="medmod: demo or medmod; yu2025, medfuse: demo or paper (default demo)")  # fmt: skip
    p.add_argument(
        "--seed", type=int, default=None, help="default 42; with --sealed, drawn at random"
    )
    p.add_argument("--sealed", action="store_true",
                   help="keep the seed secret: not in the manifest or version, only in credentialed/generator.json")  # fmt: skip

    p = sub.add_parser(
        "import-mimic",
        help="build a benchmark from MedMod-preprocessed MIMIC-IV and MIMIC-CXR files",
    )
    p.add_argument("--suite", choices=["medmod", "yu2025"], default="medmod",
                   help="the suite to build (yu2025 also needs --mimic-note)")  # fmt: skip
    _mimic_roots(p)
    p.add_argument("--test-subjects", help="test subject file (MedMod's testset_iv.csv)")
    p.add_argument("--val-subjects", help="validation subject file (MedMod's valset_iv.csv)")
    p.add_argument("--cxr-images", help="MIMIC-CXR-JPG image root: convert images to PNG")
    p.add_argument("--mimic-note", help="MIMIC-IV-Note directory (radiology, discharge, radiology_detail)")  # fmt: skip
    p.add_argument("--image-size", type=int, default=224, help="PNG shorter side in pixels")
    p.add_argument("--out", required=True, help="new benchmark directory")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--name", default="medmod-mimic")
    p.add_argument("--version", help="benchmark version (default: mimic-seed{seed})")

    p = sub.add_parser("export-public", help="write the part a participant may download")
    p.add_argument("benchmark", help="benchmark directory or s3:// URI")
    p.add_argument("--out", required=True, help="output directory or s3:// URI")

    p = sub.add_parser(
        "rebuild-public",
        help="rebuild a MIMIC-derived benchmark's public part from your own MIMIC copy",
    )
    p.add_argument("--ids", required=True, help="the benchmark's identifiers archive (...-ids.tar.gz)")  # fmt: skip
    _mimic_roots(p)
    p.add_argument("--cxr-images", help="MIMIC-CXR-JPG image root (when the benchmark has images)")
    p.add_argument("--mimic-note", help="MIMIC-IV-Note directory (the Yu et al. suite)")
    p.add_argument("--test-subjects", help="test subject file, if the benchmark was built with one")
    p.add_argument("--val-subjects", help="validation subject file, if it was built with one")
    p.add_argument("--out", required=True, help="new directory for the public part")

    p = sub.add_parser("summary", help="print a benchmark's manifest summary")
    p.add_argument("benchmark")

    p = sub.add_parser("verify", help="check every file against the manifest")
    p.add_argument("benchmark")
    p.add_argument("--credentialed", help="separate location of the credentialed part")

    p = sub.add_parser("copy", help="copy a benchmark between a directory and S3")
    p.add_argument("src")
    p.add_argument("dest")

    args = parser.parse_args(argv)
    try:
        if args.command == "synth":
            if args.scale not in SYNTH_SCALES[args.suite]:
                parser.error(
                    f"--scale {args.scale}: the {args.suite} suite's scales are "
                    + ", ".join(SYNTH_SCALES[args.suite])
                )
            if args.suite == "yu2025":
                from benchmark_data.synth.yu import generate_yu as generate
            elif args.suite == "medfuse":
                from benchmark_data.synth.medfuse import generate_medfuse as generate
            else:
                from benchmark_data.synth import generate

            t0 = time.perf_counter()
            generate(
                args.out,
                scale=args.scale,
                seed=args.seed if args.seed is not None or args.sealed else 42,
                sealed=args.sealed,
                progress=sys.stderr.isatty(),
            )
            print(f"wrote {args.out} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        elif args.command == "import-mimic":
            from benchmark_data.mimic import import_mimic
            from benchmark_data.mimic.yu import DEFAULT_NAME as YU_NAME
            from benchmark_data.mimic.yu import import_yu

            t0 = time.perf_counter()
            common = dict(
                medmod_root=args.medmod_root, mimic_iv=args.mimic_iv, mimic_cxr=args.mimic_cxr,
                out=args.out, test_subjects=args.test_subjects, val_subjects=args.val_subjects,
                cxr_images=args.cxr_images, seed=args.seed, version=args.version,
                image_size=args.image_size,
                log=(lambda line: print(line, file=sys.stderr)) if sys.stderr.isatty() else None,
            )  # fmt: skip
            if args.suite == "yu2025":
                if not args.mimic_note:
                    parser.error("--suite yu2025 needs --mimic-note (the MIMIC-IV-Note directory)")
                name = YU_NAME if args.name == "medmod-mimic" else args.name
                import_yu(mimic_note=args.mimic_note, name=name, **common)
            else:
                import_mimic(name=args.name, **common)
            print(f"wrote {args.out} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        elif args.command == "export-public":
            manifest = export_public(Benchmark.open(args.benchmark), args.out)
            print(f"wrote {len(manifest['files'])} public files to {args.out}")
        elif args.command == "rebuild-public":
            from benchmark_data.mimic.rebuild import rebuild_public

            t0 = time.perf_counter()
            manifest = rebuild_public(
                args.ids, out=args.out, medmod_root=args.medmod_root, mimic_iv=args.mimic_iv,
                mimic_cxr=args.mimic_cxr, cxr_images=args.cxr_images, mimic_note=args.mimic_note,
                test_subjects=args.test_subjects, val_subjects=args.val_subjects,
            )  # fmt: skip
            print(
                f"wrote {len(manifest['files'])} public files to {args.out}, each the same as "
                f"the release's ({time.perf_counter() - t0:.1f} s)"
            )
        elif args.command == "summary":
            print(_summary(Benchmark.open(args.benchmark)))
        elif args.command == "verify":
            n = Benchmark.open(args.benchmark, credentialed_uri=args.credentialed).verify()
            print(f"ok: {n} files match the manifest")
        elif args.command == "copy":
            src = Benchmark.open(args.src)
            n = src.verify()
            copy_tree(src.store, open_store(args.dest))
            print(f"copied {n} files and the manifest to {args.dest}")
    except (BenchmarkError, StoreError, FileNotFoundError, ValueError, KeyError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {msg}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
