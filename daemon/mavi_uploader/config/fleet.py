"""Fleet mode's keys: the shared journal's URL, this host's id, its timeout and share names.

A journal URL may carry a password: no message, log line or report shows it (`shown_url`,
`hide_passwords`), and `url_secrets` names what the redaction must mask wherever a driver's
message might echo it.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mavi_uploader.config.tomltable import ConfigError, Table, of, positive, show
from mavi_uploader.redaction import hide_url_passwords

ENV_JOURNAL_URL = "MAVI_UPLOADER_JOURNAL_URL"
ENV_HOST_ID = "MAVI_UPLOADER_HOST_ID"
URL_EXAMPLE = "postgresql://user@host:5432/db"
MASK = "***"
MAX_HOST_ID = 64
_SCHEMES = ("postgresql://", "postgres://")  # the two libpq accepts
URL_HINT = (
    f"a postgresql:// or postgres:// URL such as {URL_EXAMPLE}"
    " (leave journal_url out for the local SQLite journal)"
)
HOST_ID_HINT = (
    f'a name of 1 to {MAX_HOST_ID} printable characters without spaces, such as "edit-bay-3"'
)
# ASCII only: every host of the fleet must spell a share the same way, whatever its locale.
_SHARE_NAME = re.compile(r"[A-Za-z0-9._-]+")
SHARE_HINT = 'a name of letters, digits, "-", "_" and ".", such as "studio-nas"'
# libpq also takes the password as a parameter: "...?password=..." (or "password=..." in the
# key=value form, refused here but still never echoed).
_PASSWORD_PARAM = re.compile(r"(?i)(?P<head>\bpassword=)(?P<password>[^&\s]*)")


def _user_info_password(url: str) -> tuple[int, int] | None:
    """Where the password of `scheme://user:PASSWORD@host` is. Up to the last "@" even past a
    "/": a URL refused for a stray space or slash in its password must not show it either."""
    start, at = url.find("://"), url.rfind("@")
    colon = url.find(":", start + 3, at) if 0 <= start < at else -1
    return (colon + 1, at) if colon >= 0 else None


def url_secrets(url: str) -> list[str]:
    """The passwords in a journal URL, as written and percent-decoded (empty if none)."""
    span = _user_info_password(url)
    found = [url[span[0] : span[1]]] if span else []
    found += [m.group("password") for m in _PASSWORD_PARAM.finditer(url)]
    return [p for p in dict.fromkeys(found + [unquote(p) for p in found]) if p]


def shown_url(url: str) -> str:
    """The URL as messages and logs may show it: any password replaced by ***."""
    span = _user_info_password(url)
    masked = f"{url[: span[0]]}{MASK}{url[span[1] :]}" if span else url
    return _PASSWORD_PARAM.sub(lambda m: f"{m.group('head')}{MASK}", masked)


def hide_passwords(text: str) -> str:
    """`text` (a message that may quote URLs anywhere) with URL passwords replaced by ***."""
    return _PASSWORD_PARAM.sub(lambda m: f"{m.group('head')}{MASK}", hide_url_passwords(text, MASK))


def check_journal_url(value: str, source: str) -> str:
    """The URL, stripped; ConfigError naming `source` (password masked) unless PostgreSQL's."""
    url = value.strip()
    printable = url.isprintable() and not any(c.isspace() for c in url)
    if printable and url.lower().startswith(_SCHEMES) and _port_ok(url):
        return url
    raise ConfigError(f"{source} = {show(shown_url(value))} is not valid: expected {URL_HINT}")


def _port_ok(url: str) -> bool:
    """Every host's port is a number 0-65535 (libpq takes "h1:5432,h2:5433" for fail-over)."""
    try:
        hosts = urlsplit(url).netloc.rpartition("@")[2]
        for host in hosts.split(","):
            _ = urlsplit(f"//{host}").port  # ValueError: not 0-65535, or a broken [IPv6]
    except ValueError:
        return False
    return True


def host_id_ok(value: str) -> bool:
    return 0 < len(value) <= MAX_HOST_ID and value.isprintable() and value.split() == [value]


def _absent_or_host_id(value: object) -> bool:
    return value is None or (isinstance(value, str) and host_id_ok(value))


def share_ok(value: object) -> bool:
    return isinstance(value, str) and _SHARE_NAME.fullmatch(value) is not None


def read_journal_url(table: Table, env: Mapping[str, str], flag: str | None) -> str | None:
    """flag > env > file > None (SQLite). The file's value is checked even when overridden:
    the file itself is wrong."""
    from_file = table.get("journal_url", "", of(str), URL_HINT).strip()
    url = check_journal_url(from_file, f"{table.where}journal_url") if from_file else None
    if flag and flag.strip():
        return check_journal_url(flag, "journal url (from the command line)")
    if env.get(ENV_JOURNAL_URL, "").strip():
        return check_journal_url(env[ENV_JOURNAL_URL], f"{ENV_JOURNAL_URL} (environment)")
    return url


def read_host_id(table: Table, env: Mapping[str, str], flag: str | None, fleet: bool) -> str:
    """flag > env > file > the host name. The host name is only checked in fleet mode: a
    single host never uses its id."""
    from_file: str | None = table.get("host_id", None, _absent_or_host_id, HOST_ID_HINT)
    if flag and flag.strip():
        return _checked_host_id(flag, "host id (from the command line)")
    if env.get(ENV_HOST_ID, "").strip():
        return _checked_host_id(env[ENV_HOST_ID], f"{ENV_HOST_ID} (environment)")
    if from_file is not None:
        return from_file
    name = socket.gethostname()
    if fleet and not host_id_ok(name):
        raise ConfigError(
            f"this host's name {show(name)} cannot be its host_id in the fleet (expected"
            f" {HOST_ID_HINT}): set host_id in the config file, or {ENV_HOST_ID}"
        )
    return name


def _checked_host_id(value: str, source: str) -> str:
    if not host_id_ok(value.strip()):
        raise ConfigError(f"{source} = {show(value)} is not valid: expected {HOST_ID_HINT}")
    return value.strip()


def read_host_timeout(table: Table) -> float:
    return table.num("host_timeout_seconds", 30.0, "seconds > 0, e.g. 30", positive)


def fleet_only_warnings(table: Table, fleet: bool) -> list[str]:
    """Fleet keys set in a file without journal_url change nothing: say so."""
    if fleet:
        return []
    return [
        f"{table.where}{key} is ignored: it is only used with journal_url (fleet mode)"
        for key in ("host_id", "host_timeout_seconds")
        if key in table.data
    ]


def read_share(table: Table, *, in_fleet: bool) -> str | None:
    """A [[watch]] table's share name (None: the folder is this host's own)."""
    share: str | None = table.get("share", None, lambda v: v is None or share_ok(v), SHARE_HINT)
    if share is not None and not in_fleet:
        raise ConfigError(
            f"{table.where}{table.label}share = {show(share)} needs journal_url: a share only"
            " means something in fleet mode, where several hosts share one journal; set"
            f' journal_url = "{URL_EXAMPLE}" (or {ENV_JOURNAL_URL}), or remove share'
        )
    return share


def check_shares(where: str, watches: Sequence[tuple[str | None, Path]]) -> None:
    """One share, one folder per host: a share's files are named by share + relative path.
    `watches`: (share, path) of each [[watch]] table in order."""
    first: dict[str, int] = {}
    for i, (share, path) in enumerate(watches):
        j = first.setdefault(share, i) if share is not None else i
        if j != i and watches[j][1].resolve() != path.resolve():
            raise ConfigError(
                f"{where}[[watch]] #{j + 1} ({watches[j][1]}) and [[watch]] #{i + 1} ({path})"
                f" both have share = {show(share)}: a share is mounted at one place per host;"
                " give each folder its own share name, or drop one of them"
            )
