"""The participant client (client/, ``medmod``) run as a user runs it: as a separate process,
against a live site with a real worker. A new user logs in, downloads a task's files,
validates a prediction file offline, submits it, waits, reads the report, and finds the entry
on the board; every refusal is one line on stderr with the exit status the docs give."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "client"
TASK = "in-hospital-mortality"
ENTRY_ID = re.compile(r"entry ([a-z0-9]{12}): ")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a user with no configuration yet; the client found on
    PYTHONPATH (the dev environment also installs it, editable)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDMOD_")}
    env.update(
        PYTHONPATH=str(CLIENT),
        HOME=str(tmp_path / "home"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
    )
    return {**env, **extra}


def medmod(tmp_path: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None):
    done = subprocess.run(
        [sys.executable, "-m", "medmod_client", *args],
        input=stdin, cwd=tmp_path, env=env or _env(tmp_path), capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip
    assert "Traceback" not in done.stderr, done.stderr
    return done


def refused(done, code: int) -> str:
    """A refusal: the exit status and one line on stderr; that line."""
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("medmod: error"), lines[0]
    return lines[0]


def ok(done) -> str:
    assert done.returncode == 0, (done.stdout, done.stderr)
    return done.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_new_user_from_login_to_the_board(demo_site, tmp_path, settings):
    host = demo_site.url
    conf = tmp_path / "config" / "medmod" / "config.json"

    # A wrong password: refused, nothing stored.
    line = refused(
        medmod(tmp_path, "login", "--host", host, "--username", "demo", stdin="wrong\n"), 1
    )
    assert "(invalid)" in line and "Unable to log in" in line
    assert not conf.exists()
    # A command that needs a token before any login says so.
    assert "run `medmod login`" in refused(medmod(tmp_path, "status", "--host", host), 2)

    # The right one: the host and token are stored, readable by the user only.
    out = ok(
        medmod(tmp_path, "login", "--host", host, "--username", "demo", stdin="demo-password\n")
    )
    assert f"logged in to {host} as demo" in out
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    assert stat.S_IMODE(conf.parent.stat().st_mode) == 0o700
    stored = json.loads(conf.read_text())
    assert stored["host"] == host and re.fullmatch(r"[0-9a-f]{40}", stored["token"])

    # The task's files, checked against their sha256.
    out = ok(medmod(tmp_path, "download", TASK, "--dir", "data"))
    units = tmp_path / "data" / "tasks" / TASK / "test.csv"
    sample = tmp_path / "data" / "tasks" / TASK / "sample-predictions.csv"
    assert units.is_file() and sample.is_file()
    assert (tmp_path / "data" / "tasks" / TASK / "scenarios.csv").is_file()
    names = {"train.csv", "val.csv", "test.csv", "scenarios.csv", "sample-predictions.csv"}
    assert {p.name for p in (tmp_path / "data" / "tasks" / TASK).iterdir()} == names
    assert out.count("sha256 checked") == len(names)
    assert ok(medmod(tmp_path, "download", TASK, "--dir", "data")).count("have ") == len(names)

    # Offline validation: the sample passes; a file missing most units does not.
    out = ok(medmod(tmp_path, "validate", str(sample), "--task", TASK, "--data", "data"))
    assert out.startswith(f"ok: {sample} is a valid probability file for {TASK}")
    n_units = sum(1 for _ in csv.DictReader(units.open()))
    assert f"{n_units} test units" in out
    bad = tmp_path / "bad.csv"
    bad.write_text("".join(sample.read_text().splitlines(keepends=True)[:50]))
    line = refused(medmod(tmp_path, "validate", str(bad), "--task", TASK, "--data", "data"), 2)
    assert "have no row" in line and "(missing_units)" in line

    meta = ["--task", TASK, "--method-name", "Sample scores", "--modalities", "ehr",
            "--training-data", "train split of the demo benchmark"]  # fmt: skip
    # The server's refusal of a file is shown as it says it.
    (tmp_path / "empty.csv").write_bytes(b"")
    line = refused(medmod(tmp_path, "submit", "empty.csv", *meta), 1)
    assert "(invalid_file)" in line and "The submitted file is empty." in line
    # --team-name is a check only: a user in no team who names one is refused, as the
    # server says why.
    line = refused(medmod(tmp_path, "submit", str(sample), *meta, "--team-name", "Other Lab"), 1)
    assert "you are in no team" in line and '"Other Lab"' in line
    # A file over the site's limit is refused (exit 1) before it is sent.
    with (tmp_path / "huge.csv").open("wb") as fh:
        fh.truncate(65 * 1024 * 1024)
    line = refused(medmod(tmp_path, "submit", "huge.csv", *meta), 1)
    assert "over the site's limit" in line
    # A missing field of the API is a usage error before anything is sent.
    done = medmod(tmp_path, "submit", str(sample), "--task", TASK, "--modalities", "ehr")
    assert done.returncode == 2 and "--method-name" in done.stderr

    # A file that passes the upload's checks and fails scoring: wait says why, exit 1.
    out = ok(medmod(tmp_path, "submit", str(bad), *meta))
    failing = ENTRY_ID.search(out).group(1)
    line = refused(medmod(tmp_path, "wait", failing, "--interval", "0.5", "--timeout", "120"), 1)
    assert f"entry {failing} failed (missing_units)" in line and "have no row" in line
    status = medmod(tmp_path, "status", failing)
    assert status.returncode == 1 and "failure:" in status.stdout

    # The sample: its id, its status address; the same file again is a 409.
    out = ok(medmod(tmp_path, "submit", str(sample), *meta))
    entry = ENTRY_ID.search(out).group(1)
    assert f"status: {host}/api/submissions/{entry}/" in out
    assert f"medmod wait {entry}" in out
    line = refused(medmod(tmp_path, "submit", str(sample), *meta), 1)
    assert "(duplicate_file)" in line and "entered already" in line

    out = ok(medmod(tmp_path, "wait", entry, "--interval", "0.5", "--timeout", "120"))
    assert re.search(rf"entry {entry}: published; auroc 0\.\d+ \[0\.\d+, 0\.\d+\]", out), out

    # The daily limit reached: the server's 429 with what to do, and nothing is entered.
    settings.SUBMISSIONS_PER_DAY = 1
    other = tmp_path / "other.csv"
    other.write_text(sample.read_text().replace(",0.", ",0.0", 1))
    line = refused(medmod(tmp_path, "submit", str(other), *meta), 1)
    assert "(quota_exceeded)" in line and "limits reset at 00:00 UTC" in line
    settings.SUBMISSIONS_PER_DAY = 5

    out = ok(medmod(tmp_path, "status", entry))
    assert "status:   published" in out and "result:   auroc" in out
    out = ok(medmod(tmp_path, "status"))
    listed = {line.split()[0]: line for line in out.splitlines()[2:] if line.strip()}
    assert "published" in listed[entry] and "failed" in listed[failing]
    as_json = json.loads(ok(medmod(tmp_path, "status", "--json")))
    assert {e["id"] for e in as_json["results"]} == {entry, failing}

    # The report: the primary metric with its CI per scenario, or all of it as JSON.
    report = json.loads(ok(medmod(tmp_path, "report", entry, "--json")))
    assert report["entry_id"] == entry
    out = ok(medmod(tmp_path, "report", entry))
    assert out.splitlines()[0].startswith(f"entry {entry}, evaluation {report['evaluation_id']}")
    assert "{" not in out  # figures with their intervals, never a dict
    main = report["report"]["main_scenario"]
    for name, section in report["report"]["scenarios"].items():
        value = section["metrics"]["auroc"]
        row = next(line for line in out.splitlines() if line.split()[:1] == [name])
        assert str(section["n_units"]) in row and f"{value['value']:g}" in row, row
        assert f"[{value['ci'][0]:g}, {value['ci'][1]:g}]" in row, row
        assert row.split()[1] == "*" if name == main else row.split()[1] != "*"

    # The board in the terminal and as CSV.
    out = ok(medmod(tmp_path, "board", TASK))
    assert out.splitlines()[0].startswith(f"{TASK} on ") and "auroc" in out.splitlines()[0]
    row = next(line for line in out.splitlines() if entry in line)
    assert "Sample scores" in row and "demo" in row
    assert failing not in out
    rows = list(csv.DictReader(io.StringIO(ok(medmod(tmp_path, "board", TASK, "--csv")))))
    ours = [r for r in rows if r["entry_id"] == entry]
    assert len(ours) == 1 and ours[0]["method_name"] == "Sample scores"
    assert float(ours[0]["auroc"]) == pytest.approx(report["report"]["summary"]["value"], abs=1e-3)

    # The environment wins over the stored configuration: a bad token, an unreachable host.
    line = refused(medmod(tmp_path, "status", env=_env(tmp_path, MEDMOD_TOKEN="0" * 40)), 1)
    assert "(authentication_failed)" in line and "Invalid token" in line
    line = refused(medmod(tmp_path, "login", "--token", "0" * 40), 1)
    assert "refused the token" in line
    assert json.loads(conf.read_text())["token"] == stored["token"]  # the good one is kept
    port = _free_port()
    line = refused(
        medmod(tmp_path, "board", TASK, env=_env(tmp_path, MEDMOD_HOST=f"127.0.0.1:{port}")), 1
    )
    assert f"cannot reach http://127.0.0.1:{port}: connection refused" in line
    line = refused(medmod(tmp_path, "report", "zzzzzzzzzzzz"), 1)
    assert "(not_found)" in line

    # A token given at login is checked and stored like one from a password.
    conf.unlink()
    out = ok(medmod(tmp_path, "login", "--host", host, "--token", stored["token"]))
    assert f"logged in to {host};" in out
    assert json.loads(conf.read_text())["token"] == stored["token"]
    assert entry in ok(medmod(tmp_path, "status"))


def test_validate_says_when_the_engine_is_missing(tmp_path, demo_benchmark_dir):
    """A client installed on its own (no checkout of the repository beside it) says what to
    install, and exits 2; the same client in the checkout validates."""
    alone = tmp_path / "site-packages"
    shutil.copytree(CLIENT / "medmod_client", alone / "medmod_client")
    pred = tmp_path / "p.csv"
    pred.write_text("stay_id,prediction\n1,0.5\n")
    args = [sys.executable, "-m", "medmod_client", "validate", str(pred), "--task", TASK,
            "--data", str(demo_benchmark_dir)]  # fmt: skip
    done = subprocess.run(args, cwd=tmp_path, env=_env(tmp_path, PYTHONPATH=str(alone)),
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "medmod: error: validate needs the platform's scoring engine (the scoring and "
        "benchmark_data packages of the leaderboard's repository), which is not installed: "
        "from a checkout of the repository, pip install -e './client[validate]', or put the "
        "checkout on PYTHONPATH"
    ]
    done = subprocess.run(args, cwd=tmp_path, env=_env(tmp_path), capture_output=True,
                          text=True, check=False)  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "(unknown_units)" in done.stderr  # the engine ran: no test unit has stay_id 1


def test_the_client_imports_no_part_of_the_platform(tmp_path):
    """Every module of the client loads with requests and the standard library only: no
    Django, DRF, Celery, torch, nor the engine's pandas and numpy (validate loads those when
    it runs)."""
    code = (
        "import importlib, pkgutil, sys\n"
        "import medmod_client\n"
        "for m in pkgutil.walk_packages(medmod_client.__path__, 'medmod_client.'):\n"
        "    if m.name != 'medmod_client.__main__':\n"
        "        importlib.import_module(m.name)\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_env(tmp_path),
                          capture_output=True, text=True, check=True)  # fmt: skip
    loaded = {name.split(".")[0] for name in done.stdout.split()}
    assert {"medmod_client", "requests"} <= loaded
    assert {"medmod_client.cli", "medmod_client.validate"} <= set(done.stdout.split())
    forbidden = {"django", "rest_framework", "celery", "kombu", "torch", "leaderboard",
                 "scoring", "benchmark_data", "pandas", "numpy"}  # fmt: skip
    assert not loaded & forbidden, sorted(loaded & forbidden)


def test_the_client_declares_requests_alone_and_the_engine_as_an_extra():
    import tomllib

    project = tomllib.loads((CLIENT / "pyproject.toml").read_text())["project"]
    assert [d.split(">")[0] for d in project["dependencies"]] == ["requests"]
    assert {d.split(">")[0] for d in project["optional-dependencies"]["validate"]} >= {
        "numpy",
        "pandas",
    }
    assert project["scripts"] == {"medmod": "medmod_client.cli:main"}
