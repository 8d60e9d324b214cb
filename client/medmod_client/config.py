"""Where the client keeps the site's address and the user's token, and which one it uses.

The file is ``medmod/config.json`` under the user's configuration directory
(``$XDG_CONFIG_HOME``, else ``~/.config``; ``%APPDATA%`` on Windows; ``MEDMOD_CONFIG_DIR``
overrides it), written readable by its owner only (mode 0600, in a 0700 directory). A
command-line option wins over the environment (``MEDMOD_HOST``, ``MEDMOD_TOKEN``), which wins
over the file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_HOST = "http://127.0.0.1:8000"
HOST_ENV = "MEDMOD_HOST"
TOKEN_ENV = "MEDMOD_TOKEN"
DIR_ENV = "MEDMOD_CONFIG_DIR"


class ConfigError(Exception):
    """The configuration file cannot be read or written; the message says why."""


def config_dir() -> Path:
    if os.environ.get(DIR_ENV):
        return Path(os.environ[DIR_ENV])
    if os.name == "nt" and os.environ.get("APPDATA"):
        return Path(os.environ["APPDATA"]) / "medmod"
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "medmod"


def config_path() -> Path:
    return config_dir() / "config.json"


def normalize_host(host: str) -> str:
    """``example.org`` -> ``https://example.org``; no trailing slash or ``/api``."""
    host = host.strip().rstrip("/")
    if "://" not in host:
        host = ("http://" if host.startswith(("127.", "localhost")) else "https://") + host
    if host.endswith("/api"):
        host = host[: -len("/api")]
    return host


def load() -> dict[str, Any]:
    path = config_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    return data if isinstance(data, dict) else {}


def save(data: dict[str, Any]) -> Path:
    """Write the configuration, readable and writable by its owner only."""
    path = config_path()
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1)
            fh.write("\n")
        os.chmod(tmp, 0o600)  # an older file of another mode is replaced, not kept
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc}") from None
    return path


@dataclass(frozen=True)
class Settings:
    host: str
    token: str | None
    username: str | None = None


def resolve(*, host: str | None = None, token: str | None = None) -> Settings:
    """The host and token to use: the option, else the environment, else the file."""
    stored = load()
    chosen_host = host or os.environ.get(HOST_ENV) or stored.get("host") or DEFAULT_HOST
    chosen_token = token or os.environ.get(TOKEN_ENV) or None
    username = None
    if chosen_token is None and normalize_host(chosen_host) == normalize_host(
        stored.get("host") or DEFAULT_HOST
    ):
        chosen_token = stored.get("token") or None  # a stored token belongs to its host only
        username = stored.get("username")
    return Settings(host=normalize_host(chosen_host), token=chosen_token, username=username)
