"""`check`: everything that would stop the daemon from working, each with its fix."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mavi_uploader.config.model import AfterUpload, Config, WatchConfig
from mavi_uploader.config.settings import ConfigError
from mavi_uploader.core.rules import directory_ignored
from mavi_uploader.journal import Fleet, JournalError, JournalSettingError, open_for_reports
from mavi_uploader.mavi.client import (
    AuthProblem,
    MaviClient,
    MaviError,
    StillRateLimited,
    TransientError,
)
from mavi_uploader.mavi.ratelimit import RateLimiter
from mavi_uploader.service.fleet import fleet_of

INOTIFY_WATCHES = Path("/proc/sys/fs/inotify/max_user_watches")
# An asset id nobody has: asking for its metadata is harmless and needs a valid key.
PROBE_ASSET_ID = "re_000000000000000000"


@dataclass(frozen=True)
class Finding:
    ok: bool
    what: str
    fix: str = ""
    config_error: bool = False  # `check` then exits 2, like every command on a bad config


def not_a_folder(watch: WatchConfig) -> str | None:
    """Why a watch path that exists cannot be watched (a file, a device...), or None."""
    path = os.fspath(watch.path)
    if not os.path.exists(path) or os.path.isdir(path):  # missing: the watcher waits for it
        return None
    return "is a file, not a folder" if os.path.isfile(path) else "is not a folder"


def require_watch_folders(config: Config) -> None:
    """`run`: ConfigError when nothing is watched or a watch path is not a folder.

    A missing folder passes: it may be mounted or created later, and the watcher waits for it.
    A file passes no such test: it never turns into a folder, and nothing would be uploaded.
    """
    if not config.watches:
        where = config.config_file or "the config file"
        raise ConfigError(f"{where}: no watch folders: add a [[watch]] table or pass --watch DIR")
    for watch in config.watches:
        why = not_a_folder(watch)
        if why is not None:
            raise ConfigError(
                f'{watch.origin} "{watch.path}" {why}: set it to the folder the videos are'
                " written to (to send one file now: mavi-uploader enqueue FILE)"
            )


# Every finding about the config's folders is a config error (exit 2, DESIGN): the fix is
# in the config, or in the folders it names.
def _folder(watch: WatchConfig) -> Finding:
    path, origin = watch.path, watch.origin
    why = not_a_folder(watch)
    if why is not None:
        return Finding(False, f"watch folder {path} {why}", f"set {origin} to a folder", True)
    if not path.exists():
        return Finding(
            False, f"watch folder {path} does not exist", f"create it, or change {origin}", True
        )
    try:
        next(os.scandir(path), None)
    except OSError as exc:
        return Finding(
            False,
            f"watch folder {path} cannot be read: {exc.strerror}",
            "give the daemon's user read and execute permission",
            True,
        )
    return Finding(True, f"watch folder {path} is readable")


def _writable_dir(path: Path, label: str, fix: str) -> Finding:
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not os.access(existing, os.W_OK | os.X_OK):
        return Finding(False, f"{label} {path} is not writable", fix, True)
    return Finding(True, f"{label} {path} is writable")


def _api(client: MaviClient) -> Finding:
    try:
        client.metadata(PROBE_ASSET_ID)
    except AuthProblem as exc:
        return Finding(
            False,
            f"the API rejected the key: {exc.reason}",
            "set a valid key in MAVI_API_KEY or the api_key_file",
        )
    except StillRateLimited as exc:
        return Finding(
            False,
            f"the API at {client.api_base} keeps answering 'rate limited': {exc.reason}",
            "another client may be using the account's 1 request/s; try again in a minute",
        )
    except TransientError as exc:
        if exc.network or "timed out" in exc.reason or "TLS" in exc.reason:
            return Finding(
                False,
                f"the API at {client.api_base} is unreachable: {exc.reason}",
                "check the network, a proxy, or MAVI_API_BASE / api_base",
            )
    except MaviError:
        pass  # "no such asset" in any form: the server answered and took the key
    return Finding(True, f"the API at {client.api_base} answers and accepts the key")


def _count_dirs(config: Config) -> int:
    total = 0
    for watch in config.watches:
        if watch.poll or not watch.recursive or not watch.path.is_dir():
            total += 1 if watch.path.is_dir() else 0
            continue
        root = os.fspath(watch.path)
        for top, dirs, _files in os.walk(root):
            dirs[:] = [
                d
                for d in dirs
                if not directory_ignored(os.path.join(top, d), root, watch.ignore, True)
            ]
            total += 1
    return total


def _inotify(config: Config, limit_file: Path) -> Finding | None:
    try:
        limit = int(limit_file.read_text().strip())
    except (OSError, ValueError):
        return None  # not Linux, or not readable: nothing to compare
    needed = _count_dirs(config)
    # Other programs of the same user need watches too: keep a fifth of the limit spare.
    if needed > limit * 0.8:
        return Finding(
            False,
            f"{needed} folders to watch but fs.inotify.max_user_watches is {limit}",
            f"sudo sysctl -w fs.inotify.max_user_watches={max(524288, needed * 2)} (persist it"
            " in /etc/sysctl.d/), or set poll = true on the biggest [[watch]]",
        )
    return Finding(True, f"{needed} folders to watch, inotify allows {limit}")


def run_checks(
    load: Callable[[], Config],
    *,
    make_client: Callable[[Config], MaviClient] | None = None,
    inotify_limit_file: Path = INOTIFY_WATCHES,
) -> list[Finding]:
    """Every finding, good and bad, in the order a person would fix them."""
    try:
        config = load()
    except ConfigError as exc:
        return [Finding(False, f"config: {exc}", "fix the file or the environment as named", True)]
    where = config.config_file or "the config file"
    findings = [Finding(True, f"config {where} is valid; API key is set")]
    findings += [Finding(False, w, "see the warning") for w in config.warnings]
    if not config.watches:
        fix = f"add a [[watch]] table to {where}"
        findings.append(Finding(False, "no watch folders", fix, config_error=True))
    findings += [_folder(w) for w in config.watches]
    if config.after_upload is AfterUpload.MOVE and config.done_dir is not None:
        findings.append(_writable_dir(config.done_dir, "done_dir", "fix its permissions"))
    findings.append(
        _writable_dir(
            config.state_dir, "state dir", "fix its permissions or set MAVI_UPLOADER_STATE_DIR"
        )
    )
    inotify = _inotify(config, inotify_limit_file)
    if inotify is not None:
        findings.append(inotify)
    fleet = fleet_of(config)
    if fleet is not None:
        findings.append(_fleet_journal(config, fleet))
    client = (make_client or _default_client)(config)
    findings.append(_api(client))
    return findings


def _fleet_journal(config: Config, fleet: Fleet) -> Finding:
    """Fleet mode: can this host reach the fleet's journal, and who is in it?"""
    try:
        journal = open_for_reports(config.state_dir, fleet)
    except JournalSettingError as exc:
        return Finding(False, str(exc), "fix journal_url (MAVI_UPLOADER_JOURNAL_URL)", True)
    except JournalError as exc:
        return Finding(False, str(exc), "start PostgreSQL there, or check the network to it")
    if journal is None:
        return Finding(True, "the fleet's journal database answers (no daemon has used it yet)")
    try:
        hosts = journal.hosts()
    finally:
        journal.close()
    alive = [h.host_id for h in hosts if h.alive]
    taken = " (a live daemon already runs as it)" if fleet.host_id in alive else ""
    return Finding(
        True,
        f"the fleet's journal answers: {len(hosts)} hosts known, {len(alive)} alive;"
        f" this host is {fleet.host_id!r}{taken}",
    )


def _default_client(config: Config) -> MaviClient:
    return MaviClient(
        config.api_base, config.api_key, limiter=RateLimiter(0), timeout=(10, 20),
        rate_limit_patience=20.0,
    )  # fmt: skip


def report(findings: list[Finding]) -> str:
    lines = []
    for f in findings:
        lines.append(f"{'ok  ' if f.ok else 'FAIL'}  {f.what}")
        if not f.ok and f.fix:
            lines.append(f"      fix: {f.fix}")
    problems = sum(not f.ok for f in findings)
    lines.append("all good" if not problems else f"{problems} problem(s)")
    return "\n".join(lines)
