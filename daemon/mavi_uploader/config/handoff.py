"""Hand-off keys: `on_done` (a command), `on_done_timeout_seconds`, `webhook_url` and
`webhook_secret_file`, checked at load so a daemon never starts with a hook it cannot run.

The webhook secret is read like the API key (config/keyfile.py: bounded, never blocking) and
is one of the config's secrets: the redaction masks it wherever it might appear.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from mavi_uploader.config.keyfile import KeyProblem, read_key_file
from mavi_uploader.config.tomltable import ConfigError, Table, positive, show

KEYS = ("on_done", "on_done_timeout_seconds", "webhook_url", "webhook_secret_file")
ON_DONE_HINT = 'a list like ["/usr/local/bin/index-asset", "--quick"] (no shell)'
WEBHOOK_HINT = (
    "an https:// URL such as https://hooks.example.com/mavi"
    " (http:// only to this machine: 127.0.0.1, ::1 or localhost)"
)
_LOOPBACK_NAMES = ("localhost",)


@dataclass(frozen=True)
class HandoffConfig:
    """What every finished file is handed to; both None: no hand-off is owed."""

    on_done: tuple[str, ...] | None = None  # argv; argv[0] an absolute executable path
    on_done_timeout_seconds: float = 300.0
    webhook_url: str | None = field(default=None, repr=False)  # its query may hold a token
    webhook_secret_file: Path | None = None
    webhook_secret: str = field(default="", repr=False)  # read from webhook_secret_file


def read_handoff(
    table: Table, base: Path, env: Mapping[str, str], warnings: list[str], secrets: list[str]
) -> HandoffConfig:
    """The hand-off keys of the top-level `table`; relative paths are against `base` (the
    config file's folder); a bare command name is looked up on the daemon's PATH (`env`)."""
    secret_file, secret = _secret(table, base, warnings, secrets)
    url = _webhook_url(table)
    if secret_file is not None and url is None:
        warnings.append(f"{table.where}webhook_secret_file is ignored: webhook_url is not set")
    return HandoffConfig(
        on_done=_on_done(table, base, env),
        on_done_timeout_seconds=table.num(
            "on_done_timeout_seconds", 300.0, "seconds > 0, e.g. 300", positive
        ),
        webhook_url=url,
        webhook_secret_file=secret_file,
        webhook_secret=secret,
    )


def _on_done(table: Table, base: Path, env: Mapping[str, str]) -> tuple[str, ...] | None:
    if "on_done" not in table.data:
        return None
    argv = table.data["on_done"]
    ok = isinstance(argv, list) and argv and all(isinstance(a, str) and a for a in argv)
    if not ok or any("\x00" in a for a in argv):
        raise table.bad("on_done", f"{ON_DONE_HINT}: a non-empty list of non-empty strings")
    program = argv[0]
    where = f"{table.where}on_done = {show(argv)}"
    if os.sep in program or program.startswith("~"):
        path = Path(os.path.abspath(base / os.path.expanduser(program)))
        if not (path.is_file() and os.access(path, os.X_OK)):
            why = "does not exist" if not path.exists() else "is not an executable file"
            raise ConfigError(
                f"{where} is not valid: {path} {why}; give the full path of an executable"
                f" (chmod +x {path} if it is a script with a #! line)"
            )
        return (str(path), *argv[1:])
    found = shutil.which(program, path=env.get("PATH") or os.defpath)
    if found is None:
        raise ConfigError(
            f"{where} is not valid: {program!r} was not found on PATH; give its full path,"
            f' e.g. on_done = ["/usr/local/bin/{program}"]'
        )
    return (os.path.abspath(found), *argv[1:])


def _webhook_url(table: Table) -> str | None:
    raw = table.data.get("webhook_url")
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise table.bad("webhook_url", WEBHOOK_HINT)
    url = raw.strip()
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise _bad_url(table) from None
    if not host or any(c.isspace() for c in url) or not url.isprintable():
        raise _bad_url(table)
    if parts.scheme == "https" or (parts.scheme == "http" and _loopback(host)):
        return url
    if parts.scheme == "http":
        raise ConfigError(
            f"{table.where}webhook_url: plain http:// is only allowed to this machine"
            f" (127.0.0.1, ::1, localhost), not to {host}: file paths and asset ids would"
            " cross the network unencrypted; use https://"
        )
    raise _bad_url(table)


def _bad_url(table: Table) -> ConfigError:
    # The URL is not quoted back: its query string may hold a receiver's token.
    return ConfigError(f"{table.where}webhook_url is not valid: expected {WEBHOOK_HINT}")


def _loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _secret(
    table: Table, base: Path, warnings: list[str], secrets: list[str]
) -> tuple[Path | None, str]:
    raw = table.data.get("webhook_secret_file")
    if raw is None:
        return None, ""
    if not isinstance(raw, str) or not raw.strip():
        raise table.bad("webhook_secret_file", "the path of a file holding the secret")
    path = Path(os.path.abspath(base / os.path.expanduser(raw.strip())))
    try:
        secret, mode = read_key_file(path, what="the webhook secret")
    except KeyProblem as exc:
        raise ConfigError(f"{table.where}webhook_secret_file {path} {exc}") from None
    secrets.append(secret)
    if os.name == "posix" and mode & 0o077:
        warnings.append(
            f"webhook_secret_file {path} is readable by group/others (mode {oct(mode & 0o777)});"
            f" run: chmod 600 {path}"
        )
    return path, secret
