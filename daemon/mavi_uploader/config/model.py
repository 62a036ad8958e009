"""What a configuration is: the validated settings the rest of the daemon reads.

config/settings.py builds them (flags > environment > TOML file > defaults).
"""

from __future__ import annotations

import enum
import socket
from dataclasses import dataclass, field
from pathlib import Path

from mavi_uploader.config import fleet
from mavi_uploader.config.handoff import HandoffConfig
from mavi_uploader.config.listen import ListenAddress
from mavi_uploader.config.timers import Timers
from mavi_uploader.config.timetable import Timetable

DEFAULT_IGNORE: tuple[str, ...] = ("*.part", "*.tmp", "*.crdownload", "*~", ".*")


class AfterUpload(str, enum.Enum):
    KEEP = "keep"
    MOVE = "move"
    DELETE = "delete"


class UploadOrder(str, enum.Enum):
    """Which due file a free worker takes next; the journal applies it when a worker claims
    (journal/sql.py `claim_order` says exactly how, retries and starvation included)."""

    FIFO = "fifo"  # first seen, first sent
    NEWEST = "newest"  # the most recently modified file (mtime) first
    SMALLEST = "smallest"  # the smallest file first


@dataclass(frozen=True)
class WatchConfig:
    path: Path  # absolute, ~ expanded; need not exist (the watcher copes)
    recursive: bool = True
    ignore: tuple[str, ...] = DEFAULT_IGNORE
    poll: bool = False  # polling observer: network shares send no inotify/FSEvents events
    poll_interval_seconds: float = 10.0
    share: str | None = None  # fleet mode: the share's name, the same on every host that mounts it
    # Where the path was set, for messages: "FILE: [[watch]] #N path" or "--watch".
    origin: str = field(default="[[watch]] path", compare=False)


@dataclass(frozen=True)
class Config:
    """Validated settings; rate_limit_per_second 0 = unlimited; bandwidth_limit is a timetable
    (a plain value: the same limit all week)."""

    api_base: str
    api_key: str = field(repr=False)
    concurrency: int
    settle_seconds: float
    rate_limit_per_second: float
    bandwidth_limit: Timetable
    dedupe: bool
    after_upload: AfterUpload
    done_dir: Path | None
    extensions: frozenset[str]
    watches: tuple[WatchConfig, ...]
    state_dir: Path
    config_file: Path | None
    rescan_interval_seconds: float = 3600.0
    keep_done_days: float = 90.0  # journal rows of finished files older than this are pruned
    max_resends: int = 3  # complete uploads of one file after the first, then `failed`
    once_confirm_timeout_seconds: float = 900.0  # run --once: how long to wait for SUCCESS
    warnings: tuple[str, ...] = ()
    api_key_file: Path | None = None  # as configured; only read when MAVI_API_KEY is unset
    timers: Timers = field(default_factory=Timers)  # the hidden [timers] table
    # Fleet mode (a shared PostgreSQL journal) when journal_url is set; None: SQLite in state_dir.
    journal_url: str | None = field(default=None, repr=False)  # may hold a password
    host_id: str = field(default_factory=socket.gethostname)
    host_timeout_seconds: float = 30.0
    verify_container: bool = True  # queue MP4/MOV/MXF/MKV/AVI only once the container is whole
    incomplete_grace_seconds: float = 900.0  # still incomplete after holding still this long
    upload_order: UploadOrder = UploadOrder.FIFO  # which due file a free worker takes next
    handoff: HandoffConfig = field(default_factory=HandoffConfig)  # on_done, webhook_url
    http_listen: ListenAddress | None = None  # /metrics, /, /api/status; None: not served

    @property
    def secrets(self) -> tuple[str, ...]:
        """What no output may show: the API key, the journal URL's password and the webhook
        secret."""
        url_secrets = fleet.url_secrets(self.journal_url) if self.journal_url else []
        secrets = (self.api_key, *url_secrets, self.handoff.webhook_secret)
        return tuple(s for s in secrets if s)
