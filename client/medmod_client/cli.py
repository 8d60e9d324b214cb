"""medmod: take part in the MedMod leaderboard from the command line.

  medmod login                       store the site's address and your API token
  medmod download TASK               the task's unit lists, scenarios and sample file
  medmod validate FILE --task TASK   the platform's check of a prediction file, offline
  medmod submit FILE --task TASK ... enter a prediction file
  medmod wait ID                     follow an entry until it is scored or has failed
  medmod status [ID]                 one entry, or your entries
  medmod report ID                   an entry's scores per scenario, with 95% CIs
  medmod board TASK                  a task's leaderboard

Exit status: 0 done; 1 the server refused, could not be reached, or the entry failed; 2 a
usage or input error. Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from pathlib import Path
from typing import Any

from medmod_client import __version__, config
from medmod_client.api import ApiError, Client, ClientError, Unreachable, describe
from medmod_client.output import Bar, cut, figure, interval, size, table

DONE = ("scored", "published")
FAILED = ("failed",)


class UsageError(ClientError):
    exit_code = 2


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")


# Commands ------------------------------------------------------------------------------
def cmd_login(args: argparse.Namespace) -> int:
    host = config.normalize_host(args.host or config.resolve().host)
    client = Client(host)
    username = None
    if args.token:
        token = args.token.strip()
        Client(host, token).submissions(active=True)  # a refused token is a 401 here
    else:
        username = args.username or _ask("user name: ")
        if args.password_stdin or not sys.stdin.isatty():
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = getpass.getpass("password: ")
        if not username or not password:
            raise UsageError("a user name and a password are needed (or --token)")
        token = client.login(username, password)
    path = config.save({"host": host, "token": token, "username": username})
    who = f" as {username}" if username else ""
    _out(f"logged in to {host}{who}; token stored in {path}")
    return 0


def _ask(prompt: str) -> str:
    if not sys.stdin.isatty():
        raise UsageError("give --username (no terminal to ask on)")
    try:
        return input(prompt).strip()
    except EOFError:
        raise UsageError("no user name given") from None


def cmd_logout(args: argparse.Namespace) -> int:
    stored = config.load()
    if stored.pop("token", None) is None:
        _out("not logged in")
        return 0
    path = config.save(stored)
    _out(f"token removed from {path}")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    client = _client(args, auth=False)
    listing = client.task_files(args.task, args.suite)
    kinds = None if args.all else {"units", "scenarios", "sample"}
    chosen = [f for f in listing["files"] if kinds is None or f["kind"] in kinds]
    dest = Path(args.dir)
    for f in chosen:
        target = dest / f["name"]
        if target.is_file() and target.stat().st_size == f["size"]:
            from hashlib import sha256

            if sha256(target.read_bytes()).hexdigest() == f["sha256"]:
                _out(f"have {target} ({size(f['size'])})")
                continue
        bar = Bar(cut(f["name"], 32))
        try:
            digest = client.download(f["url"], target, progress=bar.bytes)
        finally:
            bar.close()
        if digest != f["sha256"]:
            target.unlink(missing_ok=True)
            raise ClientError(f"{f['name']}: sha256 {digest} is not the listed {f['sha256']}")
        _out(f"saved {target} ({size(f['size'])}, sha256 checked)")
    if listing.get("terms"):
        _err(listing["terms"])
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from medmod_client.validate import validate

    for line in validate(Path(args.file), task=args.task, data=Path(args.data), suite=args.suite):
        _out(line)
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    client = _client(args)
    limit = client.limits().get("max_upload_bytes")
    if limit and path.stat().st_size > limit:
        # The site's rule, checked before the upload: a refusal (exit 1), as the server's
        # 413 for the same file would be.
        raise ClientError(
            f"{path} is {size(path.stat().st_size)}, over the site's limit of {size(limit)}: "
            "compress it with gzip (a .csv.gz is taken)"
        )
    fields = [
        ("task", args.task),
        ("method_name", args.method_name),
        ("modalities", ",".join(m.strip() for m in args.modalities.split(",") if m.strip())),
        ("training_data", args.training_data),
        ("visibility", "private" if args.private else "public"),
    ]
    for name in ("suite", "team_name", "description", "paper_url", "code_url"):
        value = getattr(args, name)
        if value:
            fields.append((name, value))
    if args.threshold is not None:
        fields.append(("threshold", str(args.threshold)))
    bar = Bar("uploading")
    try:
        entry = client.submit(path, fields, progress=bar.bytes)
    finally:
        bar.close()
    if args.json:
        _out(json.dumps(entry, indent=1))
    else:
        position = entry.get("queue_position")
        where = f", position {position} in the queue" if position else ""
        _out(f"entry {entry['id']}: {entry['status']}{where}")
        _out("status: " + client.url(f"submissions/{entry['id']}/"))
        if entry.get("url"):
            _out(f"page:   {entry['url']}")
        _out(f"follow it with: medmod wait {entry['id']}")
    if args.wait:
        return _wait(client, entry["id"], interval=2.0, timeout=args.timeout, quiet=args.json)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.entry:
        entry = client.submission(args.entry)
        if args.json:
            _out(json.dumps(entry, indent=1))
            return 0
        for line in _entry_lines(entry):
            _out(line)
        return 1 if entry["status"] in FAILED else 0
    listing = client.submissions(task=args.task, active=args.active)
    if args.json:
        _out(json.dumps(listing, indent=1))
        return 0
    rows = [
        [
            e["id"],
            e["task"],
            cut(e["method_name"], 32),
            e["status"],
            e.get("queue_position") or "",
            _latest(e),
            (e.get("created_at") or "")[:16].replace("T", " "),
        ]
        for e in listing["results"]
    ]
    if not rows:
        _out("no entries yet")
    else:
        _out(
            table(["entry", "task", "method", "status", "queue", "primary metric", "created"], rows)
        )
    queue = listing.get("queue") or {}
    if queue:
        _out(f"\nqueue: {queue.get('queued', 0)} queued, {queue.get('running', 0)} running")
    return 0


def _latest(entry: dict[str, Any]) -> str:
    latest = entry.get("latest") or {}
    if latest.get("value") is None:
        return ""
    return f"{latest.get('metric')} {figure(latest['value'])} {interval(latest.get('ci'))}".strip()


def _entry_lines(entry: dict[str, Any]) -> list[str]:
    lines = [
        f"entry:    {entry['id']} ({entry['task']}, {entry.get('track')})",
        f"method:   {entry['method_name']}" + (f" ({entry['team']})" if entry.get("team") else ""),
        f"status:   {entry['status']}"
        + (
            f", position {entry['queue_position']} in the queue"
            if entry.get("queue_position")
            else ""
        ),
    ]
    if entry.get("latest"):
        lines.append(f"result:   {_latest(entry)}")
    if entry["status"] in FAILED:
        code = f" ({entry['failure_code']})" if entry.get("failure_code") else ""
        lines.append(f"failure:  {entry.get('failure_reason') or 'no reason given'}{code}")
    if entry.get("url"):
        lines.append(f"page:     {entry['url']}")
    return lines


def cmd_wait(args: argparse.Namespace) -> int:
    return _wait(_client(args), args.entry, interval=args.interval, timeout=args.timeout)


def _wait(
    client: Client, entry_id: str, *, interval: float, timeout: float, quiet: bool = False
) -> int:
    """Poll the entry until it is scored or has failed; a bar (on a terminal) or a line per
    change (otherwise) on stderr, the result on stdout."""
    bar = Bar(f"entry {entry_id}")
    deadline = time.monotonic() + timeout
    first_position = None
    seen: tuple[Any, ...] | None = None
    try:
        while True:
            entry = client.submission(entry_id)
            status = entry["status"]
            pending = entry.get("pending_evaluation") or {}
            position = entry.get("queue_position")
            if status in FAILED:
                break
            if status in DONE and pending.get("status") not in ("queued", "running"):
                break
            if position and first_position is None:
                first_position = position
            if status == "running" or pending.get("status") == "running":
                fraction, note = 0.8, "running"
            elif position:
                ahead = (first_position or position) - position
                fraction = 0.1 + 0.6 * ahead / max(first_position or 1, 1)
                note = f"queued, position {position}"
            else:
                fraction, note = 0.05, status
            if bar.enabled:
                bar.update(fraction, note, force=True)
            elif (status, position) != seen and not quiet:
                _err(f"entry {entry_id}: {note}")
            seen = (status, position)
            if time.monotonic() > deadline:
                bar.close()
                raise ClientError(
                    f"entry {entry_id} is still {note} after {timeout:.0f} s; "
                    f"`medmod wait {entry_id}` follows it again"
                )
            time.sleep(interval)
        bar.update(1.0, status, force=True)
    finally:
        bar.close()
    if status in FAILED:
        code = f" ({entry['failure_code']})" if entry.get("failure_code") else ""
        raise ClientError(
            f"entry {entry_id} failed{code}: {entry.get('failure_reason') or 'no reason given'}"
        )
    if not quiet:
        _out(f"entry {entry_id}: {status}" + (f"; {_latest(entry)}" if entry.get("latest") else ""))
        if entry.get("url"):
            _out(f"page: {entry['url']}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    client = _client(args)
    body = client.report(args.entry, args.evaluation)
    if args.json:
        _out(json.dumps(body, indent=1))
        return 0
    report = body["report"]
    primary = report.get("primary_metric") or (report.get("summary") or {}).get("primary_metric")
    main = report.get("main_scenario")
    bench = report.get("benchmark") or {}
    _out(
        f"entry {body['entry_id']}, evaluation {body['evaluation_id']}: {report.get('task')} "
        f"on {bench.get('name', '?')} {bench.get('version', '')}".rstrip()
    )
    _out(
        f"primary metric {primary}, 95% CI ({report.get('ci', 'percentile')}, "
        f"{report.get('replicates', '?')} replicates); * main scenario"
    )
    rows = []
    for name, section in (report.get("scenarios") or {}).items():
        value = ((section or {}).get("metrics") or {}).get(primary) or {}
        rows.append(
            [
                name + (" *" if name == main else ""),
                (section or {}).get("n_units", ""),
                figure(value.get("value")),
                interval(value.get("ci")),
            ]
        )
    _out(table(["scenario", "units", primary or "value", "95% CI"], rows, right=(1, 2)))
    summary = report.get("summary") or {}
    extra = [
        ("largest fairness gap", (summary.get("fairness") or {}).get("max_gap")),
        ("robustness AUDC", (summary.get("robustness") or {}).get("audc")),
    ]
    shown = [f"{label} {_value_ci(v)}" for label, v in extra if _value_ci(v) != "n/a"]
    if shown:
        _out("; ".join(shown))
    return 0


def _value_ci(v: Any) -> str:
    """A figure, or a ``{"value", "ci"}`` pair, as text."""
    if isinstance(v, dict):
        return f"{figure(v.get('value'))} {interval(v.get('ci'))}".strip()
    return figure(v)


def cmd_board(args: argparse.Namespace) -> int:
    client = _client(args, auth=False)
    params = {
        k: v
        for k, v in (
            ("track", args.track),
            ("modality", args.modality),
            ("sort", args.sort),
            ("order", args.order),
        )
        if v
    }
    if args.csv:
        sys.stdout.write(client.board_csv(args.task, args.suite, params))
        return 0
    board = client.board(args.task, args.suite, params)
    metric = board.get("primary_metric") or "value"
    bench = board.get("benchmark") or {}
    _out(f"{board['task']} on {bench.get('name', '?')} {bench.get('version', '')}: {metric}"
         + (" (higher is better)" if board.get("greater_is_better") else " (lower is better)"))  # fmt: skip
    rows = []
    for r in board["rows"][: args.limit or None]:
        rank = r.get("rank")
        low_high = r.get("rank_interval") or []
        rank_text = "" if rank is None else str(rank)
        if len(low_high) == 2 and low_high[0] != low_high[1]:
            rank_text += f" ({low_high[0]}-{low_high[1]})"
        primary = r.get("primary") or {}
        rows.append(
            [
                rank_text,
                cut(r["method_name"], 40) + (" [reference]" if r.get("is_reference") else ""),
                cut(r.get("team") or "", 20),
                figure(primary.get("value")),
                interval(primary.get("ci")),
                "+".join(r.get("modalities") or []),
                r.get("verification") or r.get("track") or "",
                r.get("entry_id") or "",
            ]
        )
    if not rows:
        _out("no entries on this board yet")
        return 0
    _out(
        table(
            ["rank", "method", "team", metric, "95% CI", "inputs", "verification", "entry"],
            rows,
            right=(3,),
        )
    )
    if board.get("awaiting_rescore"):
        _out("some entries await re-scoring on the current scorer")
    return 0


# Parsing -------------------------------------------------------------------------------
def _client(args: argparse.Namespace, *, auth: bool = True) -> Client:
    settings = config.resolve(host=getattr(args, "host", None), token=getattr(args, "token", None))
    if auth and not settings.token:
        raise UsageError(
            f"not logged in to {settings.host}: run `medmod login` (or set {config.TOKEN_ENV})"
        )
    return Client(settings.host, settings.token if auth else None)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--host",
        help=f"the site (default: the stored one, ${config.HOST_ENV}, or {config.DEFAULT_HOST})",
    )
    common.add_argument(
        "--token", help=f"an API token (default: the stored one or ${config.TOKEN_ENV})"
    )
    p = _Parser(
        prog="medmod",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"medmod {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("login", parents=[common], help="store the site and your API token")
    s.add_argument("--username", help="your user name (asked when not given)")
    s.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    s.set_defaults(func=cmd_login)

    s = sub.add_parser("logout", help="forget the stored token")
    s.set_defaults(func=cmd_logout)

    s = sub.add_parser(
        "download", parents=[common], help="a task's public files, checked by sha256"
    )
    s.add_argument("task")
    s.add_argument("--suite", help="the task's suite (default medmod)")
    s.add_argument("--dir", default=".", help="where to save them (default: here)")
    s.add_argument("--all", action="store_true", help="also the archives of the inputs (large)")
    s.set_defaults(func=cmd_download)

    s = sub.add_parser("validate", help="check a prediction file offline, as the platform will")
    s.add_argument("file")
    s.add_argument("--task", required=True)
    s.add_argument(
        "--data",
        default=".",
        help="the downloaded files (tasks/<task>/test.csv ...) or the unpacked public archive "
        "(default: here)",
    )
    s.add_argument("--suite", help="a suite's slug or suite.json (default: found from the task)")
    s.set_defaults(func=cmd_validate)

    s = sub.add_parser("submit", parents=[common], help="enter a prediction file")
    s.add_argument("file", help="the prediction CSV (optionally .csv.gz)")
    s.add_argument("--task", required=True)
    s.add_argument("--suite", help="the task's suite (default medmod)")
    s.add_argument("--method-name", required=True)
    s.add_argument("--modalities", required=True, help="the inputs the model uses, e.g. ehr,cxr")
    s.add_argument("--training-data", required=True, help="which data trained the model")
    s.add_argument(
        "--team-name",
        help="a check, not a choice: an entry is always your team's (set on the site's Team "
        "page); with this, the server refuses the entry (400) unless NAME is your team's name",
    )
    s.add_argument("--description")
    s.add_argument("--paper-url")
    s.add_argument("--code-url")
    s.add_argument("--threshold", type=float, help="decision threshold in [0, 1]")
    s.add_argument("--private", action="store_true", help="keep it off the board once scored")
    s.add_argument("--wait", action="store_true", help="then wait until it is scored")
    s.add_argument("--timeout", type=float, default=1800, help="with --wait: seconds (1800)")
    s.add_argument("--json", action="store_true", help="print the server's answer as JSON")
    s.set_defaults(func=cmd_submit)

    s = sub.add_parser("status", parents=[common], help="one entry, or your entries")
    s.add_argument("entry", nargs="?")
    s.add_argument("--task", help="only this task's entries")
    s.add_argument("--active", action="store_true", help="only entries queued or running")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_status)

    s = sub.add_parser("wait", parents=[common], help="follow an entry until scored or failed")
    s.add_argument("entry")
    s.add_argument("--interval", type=float, default=2.0, help="seconds between looks (2)")
    s.add_argument("--timeout", type=float, default=1800, help="give up after this long (1800 s)")
    s.set_defaults(func=cmd_wait)

    s = sub.add_parser("report", parents=[common], help="an entry's scores per scenario")
    s.add_argument("entry")
    s.add_argument("--evaluation", type=int, help="a given scoring run (default: the current)")
    s.add_argument("--json", action="store_true", help="the whole report as JSON")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("board", parents=[common], help="a task's leaderboard")
    s.add_argument("task")
    s.add_argument("--suite", help="the task's suite (default medmod)")
    s.add_argument("--csv", action="store_true", help="the board as CSV, every column")
    s.add_argument("--track", choices=["prediction-file", "container"])
    s.add_argument("--modality", help="ehr, cxr or ehr+cxr")
    s.add_argument("--sort", help="rank or a metric")
    s.add_argument("--order", choices=["asc", "desc"])
    s.add_argument("--limit", type=int, help="the first N rows only")
    s.set_defaults(func=cmd_board)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ApiError as exc:
        _err(f"medmod: error ({exc.code}): {describe(exc)}")
        return exc.exit_code
    except (ClientError, config.ConfigError) as exc:
        _err(f"medmod: error: {exc}")
        return getattr(exc, "exit_code", 2)
    except KeyboardInterrupt:
        _err("medmod: interrupted")
        return 130
    except BrokenPipeError:
        return 0


__all__ = ["main", "parser", "Unreachable"]
