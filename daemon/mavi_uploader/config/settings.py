"""Configuration: flags > environment > TOML file > defaults; errors name file, key and fix."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import platformdirs

from mavi_uploader.config import fleet, handoff
from mavi_uploader.config.fleet import ENV_HOST_ID, ENV_JOURNAL_URL
from mavi_uploader.config.keyfile import KeyProblem, clean_key, read_key_file
from mavi_uploader.config.listen import HINT as LISTEN_HINT
from mavi_uploader.config.listen import ListenAddress, parse_listen
from mavi_uploader.config.model import (
    DEFAULT_IGNORE,
    AfterUpload,
    Config,
    UploadOrder,
    WatchConfig,
)
from mavi_uploader.config.timers import Timers, load_timers
from mavi_uploader.config.timetable import LIMIT_HINT, Timetable, parse_bandwidth_limit
from mavi_uploader.config.tomltable import ConfigError, Table, int_in, of, positive, show, str_list

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

APP_NAME = "mavi-uploader"
DEFAULT_API_BASE = "https://mavi-backend.memories.ai/serve/api/v2"
# fmt: off
DEFAULT_EXTENSIONS: tuple[str, ...] = (
    "mp4", "mov", "m4v", "mkv", "avi", "webm", "flv", "wmv", "mpg", "mpeg", "mts", "m2ts", "mxf",
    "3gp",
)

ENV_API_KEY = "MAVI_API_KEY"
ENV_API_BASE = "MAVI_API_BASE"
ENV_CONFIG = "MAVI_UPLOADER_CONFIG"
ENV_STATE_DIR = "MAVI_UPLOADER_STATE_DIR"

_TOP_KEYS = (
    "api_base", "api_key_file", "concurrency", "settle_seconds", "rate_limit_per_second",
    "bandwidth_limit", "dedupe", "after_upload", "done_dir", "extensions", "state_dir",
    "rescan_interval_seconds", "keep_done_days", "max_resends", "once_confirm_timeout_seconds",
    "journal_url", "host_id", "host_timeout_seconds", "verify_container",
    "incomplete_grace_seconds", "upload_order", *handoff.KEYS, "http_listen", "watch",
)
# fmt: on
# Accepted but left out of the README's reference and of hints: the daemon's timers, for tests.
_HIDDEN_KEYS = ("timers",)
_WATCH_KEYS = ("path", "recursive", "ignore", "poll", "poll_interval_seconds", "share")
_AFTER = ("keep", "move", "delete")
_ORDERS = tuple(order.value for order in UploadOrder)
_ORDERS_HINT = '"fifo", "newest" or "smallest"'
# Keys people guess that must not exist, with what to do instead.
_NOT_KEYS = {"api_key": f"put the key in a file and set api_key_file, or set {ENV_API_KEY}"}


def default_config_path() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.toml"


def default_state_dir() -> Path:
    return Path(platformdirs.user_state_dir(APP_NAME))


def _abspath(raw: str, base: Path) -> Path:
    """~ expanded, absolute against base, ".." folded lexically (symlinks left as written)."""
    return Path(os.path.abspath(base / os.path.expanduser(raw)))


def _check_url(value: str, source: str) -> str:
    url = value.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.netloc and not any(c.isspace() for c in url):
        return url
    raise ConfigError(
        f"{source} = {show(value)} is not valid: expected an http:// or https:// URL"
        f" such as {DEFAULT_API_BASE}"
    )


def _read_config(flag: str | None, env: Mapping[str, str]) -> tuple[Path | None, dict[str, Any]]:
    if flag:
        path, fix = _abspath(flag, Path.cwd()), "drop --config"
    elif env.get(ENV_CONFIG, "").strip():
        path, fix = _abspath(env[ENV_CONFIG], Path.cwd()), f"unset {ENV_CONFIG}"
    else:
        path, fix = default_config_path(), ""  # absent: fine, all defaults
    try:
        present = path.exists()
    except OSError as exc:  # e.g. a service user whose HOME it may not enter
        raise ConfigError(
            f"cannot look for the config file {path}: {exc.strerror}; fix the permissions "
            f"or set {ENV_CONFIG}"
        ) from None
    if not present:
        if not fix:
            return None, {}
        raise ConfigError(f"config file {path} does not exist; create it or {fix}")
    try:
        with path.open("rb") as f:
            data: dict[str, Any] = tomllib.load(f)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        raise ConfigError(f"cannot read config file {path} ({reason}); fix it") from None
    except tomllib.TOMLDecodeError as exc:  # its text carries "(at line L, column C)"
        raise ConfigError(f"{path}: not valid TOML: {exc}; fix the syntax there") from None
    return path, data


def load_config(
    *,
    config_path: str | None = None,
    state_dir: str | None = None,
    watch_dirs: Sequence[str] = (),
    api_base: str | None = None,
    journal_url: str | None = None,
    host_id: str | None = None,
    env: Mapping[str, str] | None = None,
    require_api_key: bool = True,
) -> Config:
    """Flags (the arguments) > env (default os.environ) > file > defaults; or ConfigError."""
    env = os.environ if env is None else env
    secrets = [env.get(ENV_API_KEY, "").strip().removeprefix("\ufeff").strip()]  # as clean_key
    try:
        path, data = _read_config(config_path, env)
        loader = _Loader(data, path, env, Path.cwd(), secrets)
        flags = _Flags(state_dir, watch_dirs, api_base, journal_url, host_id)
        return loader.build(flags, require_api_key)
    except ConfigError as exc:
        # A key pasted into the wrong setting must not be echoed back in the error, nor a
        # journal URL's password (masked where it stands: by value, a password "postgres"
        # would garble every "postgresql://" of the message).
        message = fleet.hide_passwords(str(exc))
        for secret in filter(None, secrets):
            message = message.replace(secret, "***")
        raise ConfigError(message) from None


@dataclass(frozen=True)
class _Flags:
    """What the command line set; None (or empty) leaves a setting to env, file, default."""

    state_dir: str | None
    watch_dirs: Sequence[str]
    api_base: str | None
    journal_url: str | None
    host_id: str | None


class _Loader(Table):
    def __init__(
        self,
        data: dict[str, Any],
        config_file: Path | None,
        env: Mapping[str, str],
        cwd: Path,
        secrets: list[str],
    ) -> None:
        super().__init__(data, f"{config_file}: " if config_file else "")
        self.config_file, self.env, self.cwd, self.secrets = config_file, env, cwd, secrets
        self.base = config_file.parent if config_file else cwd  # file paths are file-relative
        self.warnings: list[str] = []
        self.journal_url: str | None = None  # read first in build(): [[watch]] share needs it

    def build(self, flags: _Flags, need_key: bool) -> Config:
        try:
            api_key = self.api_key()  # first: every later error message can then be redacted
        except ConfigError:
            if need_key:
                raise
            api_key = ""  # status, list...: a key file only the service's user reads is fine
        self.journal_url = fleet.read_journal_url(self, self.env, flags.journal_url)
        self.check_keys(_TOP_KEYS, _WATCH_KEYS, _NOT_KEYS, _HIDDEN_KEYS)
        watches = self.watches(flags.watch_dirs)
        in_fleet = self.journal_url is not None
        self.warnings += fleet.fleet_only_warnings(self, in_fleet)
        after_upload, done_dir = self.after_upload(watches)
        extensions = self.get("extensions", DEFAULT_EXTENSIONS, str_list, 'a list like ["mp4"]')
        exts = frozenset(e.strip().lstrip(".").lower() for e in extensions)
        if not exts or any(not e or set(e) & set("/\\ ") for e in exts):
            raise self.bad("extensions", 'a non-empty list like ["mp4", "mov"]')
        hand_off = handoff.read_handoff(self, self.base, self.env, self.warnings, self.secrets)
        listen = self.http_listen()  # before `warnings` is read below: it may add one
        config = Config(
            api_base=self.api_base(flags.api_base),
            api_key=api_key,
            concurrency=self.get("concurrency", 2, int_in(1, 32), "an integer from 1 to 32"),
            settle_seconds=self.num("settle_seconds", 5.0, "seconds >= 0, e.g. 5.0"),
            rate_limit_per_second=self.num("rate_limit_per_second", 1.0, ">= 0 (0 = unlimited)"),
            bandwidth_limit=self.bandwidth(),
            dedupe=self.get("dedupe", True, of(bool), "true or false (no quotes)"),
            after_upload=after_upload,
            done_dir=done_dir,
            extensions=exts,
            watches=tuple(watches),
            state_dir=self.state_dir(flags.state_dir),
            config_file=self.config_file,
            rescan_interval_seconds=self.num("rescan_interval_seconds", 3600.0, "seconds, 0 = off"),
            keep_done_days=self.num("keep_done_days", 90.0, "days >= 0 (0 = keep forever)"),
            max_resends=self.get("max_resends", 3, int_in(0, 100), "an integer from 0 to 100"),
            once_confirm_timeout_seconds=self.num(
                "once_confirm_timeout_seconds", 900.0, "seconds >= 0, e.g. 900"
            ),
            warnings=tuple(self.warnings),
            api_key_file=self.key_file(),
            timers=self.timers(),
            journal_url=self.journal_url,
            host_id=fleet.read_host_id(self, self.env, flags.host_id, in_fleet),
            host_timeout_seconds=fleet.read_host_timeout(self),
            verify_container=self.get("verify_container", True, of(bool), "true or false"),
            incomplete_grace_seconds=self.num("incomplete_grace_seconds", 900.0, "seconds >= 0"),
            upload_order=UploadOrder(
                self.get("upload_order", "fifo", lambda v: v in _ORDERS, _ORDERS_HINT)
            ),
            handoff=hand_off,
            http_listen=listen,
        )
        if need_key and not api_key:
            where = f" (config file {self.config_file})" if self.config_file else ""
            raise ConfigError(f"no MAVI API key{where}: set MAVI_API_KEY or api_key_file")
        return config

    def http_listen(self) -> ListenAddress | None:
        value = self.data.get("http_listen", "")
        try:
            address = parse_listen(value)
        except ValueError as exc:
            raise ConfigError(
                f"{self.where}http_listen = {show(value)} is not valid ({exc}): expected"
                f" {LISTEN_HINT}, or remove the key to serve nothing"
            ) from None
        if address is not None and not address.loopback:
            self.warnings.append(
                f"{self.where}http_listen = {show(value)} serves other hosts (file names, the"
                " account's traffic), without TLS or a password: keep that network trusted,"
                ' or listen on "127.0.0.1:PORT" behind a proxy'
            )
        return address

    def timers(self) -> Timers:
        return load_timers(self.data["timers"], self.where) if "timers" in self.data else Timers()

    def string(self, key: str) -> str:  # "" when absent
        return str(self.get(key, "", of(str), "a string in double quotes")).strip()

    def bandwidth(self) -> Timetable:
        value = self.get("bandwidth_limit", 0, of(int, str), LIMIT_HINT)
        try:
            return parse_bandwidth_limit(value)
        except ValueError as exc:
            if isinstance(value, str) and "," in value:  # a timetable: name the entry at fault
                shown = show(value)
                where = f"{self.where}bandwidth_limit = {shown}"
                raise ConfigError(f"{where} is not valid: {exc}") from None
            raise self.bad("bandwidth_limit", LIMIT_HINT) from None

    def api_base(self, flag: str | None) -> str:
        # The file's value is checked even when overridden: the file itself is wrong.
        url = _check_url(self.string("api_base") or DEFAULT_API_BASE, f"{self.where}api_base")
        if flag:
            return _check_url(flag, "api base (from the command line)")
        if self.env.get(ENV_API_BASE, "").strip():
            return _check_url(self.env[ENV_API_BASE], f"{ENV_API_BASE} (environment)")
        return url

    def state_dir(self, flag: str | None) -> Path:
        from_file = self.string("state_dir")
        if flag:
            return _abspath(flag, self.cwd)
        if self.env.get(ENV_STATE_DIR, "").strip():
            return _abspath(self.env[ENV_STATE_DIR], self.cwd)
        return _abspath(from_file, self.base) if from_file else default_state_dir()

    def watch(self, table: object, index: int) -> WatchConfig:
        label = f"[[watch]] #{index}"
        if not isinstance(table, dict):
            raise ConfigError(f'{self.where}write watches as [[watch]] tables with path = "..."')
        t = Table(table, self.where, f"{label} ")
        t.check_keys(_WATCH_KEYS, _TOP_KEYS, _NOT_KEYS)
        path = t.get("path", "", of(str), "a folder path string")
        if not path.strip():
            raise ConfigError(f'{self.where}{label} has no path: add path = "/folder/to/watch"')
        share = fleet.read_share(t, in_fleet=self.journal_url is not None)
        return WatchConfig(
            path=_abspath(path, self.base),
            recursive=t.get("recursive", True, of(bool), "true or false"),
            ignore=tuple(t.get("ignore", DEFAULT_IGNORE, str_list, 'globs like ["*.part"]')),
            poll=t.get("poll", False, of(bool), "true or false"),
            poll_interval_seconds=t.num("poll_interval_seconds", 10.0, "seconds > 0", positive),
            share=share,
            origin=f"{self.where}{label} path",
        )

    def watches(self, flags: Sequence[str]) -> list[WatchConfig]:
        tables = self.data.get("watch", [])
        tables = tables if isinstance(tables, list) else [None]  # [watch]: an error in watch()
        # The file's tables are validated even when --watch flags replace them.
        watches = [self.watch(table, i + 1) for i, table in enumerate(tables)]
        fleet.check_shares(self.where, [(w.share, w.path) for w in watches])
        where, kind = ("", "--watch") if flags else (self.where, "[[watch]] path")
        if flags:
            watches = [WatchConfig(path=_abspath(d, self.cwd), origin="--watch") for d in flags]
        real = [w.path.resolve() for w in watches]  # resolve: "..", symlinks cannot hide overlap
        for i, j in ((i, j) for i in range(len(real)) for j in range(len(real)) if i != j):
            inner, outer = f"{kind} {watches[i].path}", f"{kind} {watches[j].path}"
            if real[i] == real[j] and j < i:
                raise ConfigError(f"{where}{outer} and {inner} both watch {real[i]}; drop one")
            if real[i] != real[j] and watches[j].recursive and real[i].is_relative_to(real[j]):
                raise ConfigError(
                    f"{where}{inner} is inside {outer}, which is recursive: remove one,"
                    " or set recursive = false on the outer one"
                )
        return watches

    def after_upload(self, watches: Sequence[WatchConfig]) -> tuple[AfterUpload, Path | None]:
        mode = self.get("after_upload", "keep", lambda v: v in _AFTER, '"keep", "move" or "delete"')
        raw_done = self.string("done_dir")
        done_dir = _abspath(raw_done, self.base) if raw_done else None
        if mode != AfterUpload.MOVE.value:
            if done_dir is not None:
                self.warnings.append(
                    f'{self.where}done_dir is ignored: it is only used with after_upload = "move"'
                )
            return AfterUpload(mode), done_dir
        if done_dir is None:
            raise ConfigError(
                f'{self.where}after_upload = "move" needs done_dir: set done_dir = "/some/folder"'
                ' outside every watched folder, or use after_upload = "keep"'
            )
        real = done_dir.resolve()  # resolve: "..", symlinks cannot hide an overlap
        for watch in watches:
            if real.is_relative_to(watch.path.resolve()):
                raise ConfigError(
                    f"{self.where}done_dir {done_dir} is inside the watched folder {watch.path},"
                    " so moved files would be uploaded again: choose one outside every watch"
                )
        return AfterUpload.MOVE, done_dir

    def key_file(self) -> Path | None:
        raw = self.string("api_key_file")
        return _abspath(raw, self.base) if raw else None

    def api_key(self) -> str:
        path = self.key_file()
        from_env = self.env.get(ENV_API_KEY, "")
        if from_env.strip():  # the environment wins; the file is not even read
            try:
                return clean_key(from_env)
            except KeyProblem as exc:
                raise ConfigError(f"{ENV_API_KEY} (environment) {exc}") from None
        if path is None:
            return ""
        try:
            key, mode = read_key_file(path)
        except KeyProblem as exc:
            raise ConfigError(f"{self.where}api_key_file {path} {exc}") from None
        self.secrets.append(key)
        if os.name == "posix" and mode & 0o077:
            self.warnings.append(
                f"api_key_file {path} is readable by group/others (mode {oct(mode & 0o777)});"
                f" run: chmod 600 {path}"
            )
        return key


# ConfigError lives in tomltable (the table checks raise it); callers import it from here.
__all__ = [
    "APP_NAME", "DEFAULT_API_BASE", "DEFAULT_EXTENSIONS", "DEFAULT_IGNORE", "ENV_API_BASE",
    "ENV_API_KEY", "ENV_CONFIG", "ENV_HOST_ID", "ENV_JOURNAL_URL", "ENV_STATE_DIR", "AfterUpload",
    "Config", "ConfigError", "WatchConfig", "default_config_path", "default_state_dir",
    "load_config",
]  # fmt: skip
