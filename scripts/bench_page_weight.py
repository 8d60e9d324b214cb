"""Weight and load time of a board page in a real browser, before and after static delivery
was reworked, on a cold and on a warm cache.

* **before**: the demo as it was: DEBUG on, the full plotly.js of the plotly package, static
  files under their plain names, uncompressed, with no lasting cache headers;
* **after**: as the demo and production run now: DEBUG off, plotly.js's basic bundle,
  static files collected under hashed names with gzip and brotli copies, served by WhiteNoise
  with far-future cache headers.

Both are served by gunicorn from one throwaway SQLite site, set up by ``manage.py demo
--no-serve`` on the shared synthetic demo benchmark (the board has the demo's scored sample
entry and its forest plot). Chromium (Debian's, through Playwright) opens the page in a fresh
browser context (cold cache) and then again in a new tab of the same context (warm cache);
the bytes are the sum of the Chrome DevTools Protocol's ``encodedDataLength`` over the
page's requests, what went over the wire, headers included. Each figure is the median of
``--runs`` visits.

Usage::

    python scripts/bench_page_weight.py [--runs 5] [--path /tasks/in-hospital-mortality/]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PLOT = '.plot[data-figure="forest-figure"] svg.main-svg'


def visit(context, url: str, *, wait_for: str | None = PLOT) -> dict:
    """Open ``url`` in a new tab of ``context`` and return what it cost: ``bytes`` over the
    wire (CDP ``encodedDataLength``), ``requests`` (url -> bytes, headers), ``load_ms`` (the
    navigation's load event) and ``drawn_ms`` (until ``wait_for`` is in the page)."""
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    responses: dict[str, dict] = {}
    sizes: dict[str, int] = {}
    cdp.on(
        "Network.responseReceived", lambda e: responses.__setitem__(e["requestId"], e["response"])
    )
    cdp.on(
        "Network.loadingFinished",
        lambda e: sizes.__setitem__(e["requestId"], e["encodedDataLength"]),
    )
    start = time.perf_counter()
    page.goto(url, wait_until="load")
    if wait_for:
        page.locator(wait_for).first.wait_for()
    drawn_ms = (time.perf_counter() - start) * 1000
    page.wait_for_load_state("networkidle")
    load_ms = page.evaluate(
        "() => { const n = performance.getEntriesByType('navigation')[0];"
        " return n.loadEventEnd - n.startTime; }"
    )
    requests = {
        r["url"]: {"bytes": sizes.get(rid, 0), "status": r["status"],
                   "headers": {k.lower(): v for k, v in r.get("headers", {}).items()}}
        for rid, r in responses.items()
    }  # fmt: skip
    cdp.detach()
    page.close()
    return {"bytes": sum(sizes.values()), "requests": requests, "load_ms": load_ms,
            "drawn_ms": drawn_ms}  # fmt: skip


def cold_and_warm(browser, url: str) -> tuple[dict, dict]:
    """One visit in a fresh context (an empty cache), then one more in a new tab of it."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        return visit(context, url), visit(context, url)
    finally:
        context.close()


# The bench itself: a throwaway site, served before and after ---------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _site_env(var: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DJANGO", "DATABASE_URL", "SECRET_KEY", "CELERY", "AWS_", "DEBUG",
                                "COLLECTED_STATIC", "PLOTLY_BUNDLE_DIR", "STATIC_ROOT"))}  # fmt: skip
    env.update(VAR_DIR=str(var), SECRET_KEY="page-weight-bench-only", LOG_LEVEL="WARNING",
               DATABASE_URL=f"sqlite:///{var / 'leaderboard.sqlite3'}")  # fmt: skip
    env.update(extra)
    return env


def _serve(env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "leaderboard.wsgi", "--bind", f"127.0.0.1:{port}",
         "--workers", "2"],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"{base}/api/limits/", timeout=5):
                return server, base
        except OSError:
            time.sleep(0.2)
    server.terminate()
    raise SystemExit(f"gunicorn did not start:\n{log.read_text()[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--path", default="/tasks/in-hospital-mortality/")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from playwright.sync_api import sync_playwright

    from tests.demo_cache import demo_benchmark

    tmp = Path(tempfile.mkdtemp(prefix="page-weight-"))
    var = tmp / "var"
    (tmp / "demo").mkdir(parents=True)
    (tmp / "demo" / "benchmark").symlink_to(demo_benchmark())
    print("setting up the site (manage.py demo --no-serve) ...", file=sys.stderr)
    subprocess.run([sys.executable, "manage.py", "demo", "--no-serve", "--out", str(tmp / "demo")],
                   cwd=ROOT, env=_site_env(var, DEBUG="1"), check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    after_env = _site_env(var, DEBUG="0", STATIC_ROOT=str(tmp / "static"))
    print("collecting the static files ...", file=sys.stderr)
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
                   cwd=ROOT, env=after_env, check=True)  # fmt: skip
    setups = {
        "before": _site_env(var, DEBUG="1", COLLECTED_STATIC="0",
                            PLOTLY_BUNDLE_DIR=str(tmp / "no-basic-bundle")),
        "after": after_env,
    }  # fmt: skip
    results: dict[str, dict[str, list[dict]]] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for name, env in setups.items():
            server, base = _serve(env, tmp / f"{name}.log")
            try:
                runs = [cold_and_warm(browser, base + args.path) for _ in range(args.runs)]
            finally:
                server.terminate()
                server.wait(timeout=30)
            results[name] = {"cold": [c for c, _ in runs], "warm": [w for _, w in runs]}
        browser.close()

    def median(name: str, cache: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name][cache])

    print(f"\n{args.path}, median of {args.runs} visits (Chromium, gunicorn on 127.0.0.1)\n")
    print(f"{'':24}{'before':>14}{'after':>14}")
    for cache in ("cold", "warm"):
        kib = [median(n, cache, "bytes") / 1024 for n in ("before", "after")]
        load = [median(n, cache, "load_ms") for n in ("before", "after")]
        drawn = [median(n, cache, "drawn_ms") for n in ("before", "after")]
        print(f"{cache + ' cache: transferred':24}{kib[0]:>10.1f} KiB{kib[1]:>10.1f} KiB")
        print(f"{cache + ' cache: load event':24}{load[0]:>11.0f} ms{load[1]:>11.0f} ms")
        print(f"{cache + ' cache: plot drawn':24}{drawn[0]:>11.0f} ms{drawn[1]:>11.0f} ms")
    print("\nplotly.js as served (cold cache):")
    for name in ("before", "after"):
        for url, r in results[name]["cold"][0]["requests"].items():
            if "plotly" in url:
                h = r["headers"]
                print(f"  {name:7}{url.split('/static/')[-1]:34}{r['bytes'] / 1024:>8.1f} KiB  "
                      f"{h.get('content-encoding', 'identity'):9}{h.get('cache-control', '-')}")  # fmt: skip


if __name__ == "__main__":
    main()
