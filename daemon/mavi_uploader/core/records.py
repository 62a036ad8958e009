"""The journal's records: file states, file rows and events (frozen, typed, SQL-free)."""

from __future__ import annotations

import os
from dataclasses import dataclass

# The state machine lives in core/states.py; re-exported here, where records are read.
from mavi_uploader.core.states import (
    ACTIVE_STATES,
    NEW_VERSION,
    NO_ASSET,
    SETTLED_FOR_GOOD,
    SPENT_URL,
    State,
)

# last_error of a file skipped for having no bytes: a verdict on the file, not on the config.
EMPTY_FILE = "empty file"


def path_to_blob(path: str) -> bytes:
    """Paths are stored as raw bytes: a name that is not valid UTF-8 must still round-trip."""
    return os.fsencode(path)


def blob_to_path(blob: bytes) -> str:
    return os.fsdecode(blob)


# Hosts of a fleet see a share file's mtime at their filesystem's precision (ext4 on the NAS:
# nanoseconds; an SMB client: 100 ns units): on a share, versions are told apart to the
# microsecond, which every one of them carries.
SHARED_MTIME_NS = 1000


def same_version(
    known: tuple[int | None, int | None], seen: tuple[int, int], *, shared: bool
) -> bool:
    """Do (size, mtime_ns) `seen` describe the version `known`?"""
    if not shared or known[1] is None:
        return known == seen
    return known[0] == seen[0] and known[1] // SHARED_MTIME_NS == seen[1] // SHARED_MTIME_NS


def display_path(path: str) -> str:
    """A printable form of a path; undecodable bytes become \\xNN escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def upload_name(name: str) -> str:
    """The file name as MAVI gets it: valid UTF-8, undecodable bytes as U+FFFD."""
    return os.fsencode(name).decode("utf-8", "replace")


@dataclass(frozen=True)
class FileRecord:
    id: int
    path: str
    watch_root: str | None
    state: State
    size: int | None
    mtime_ns: int | None
    stable_since: float | None
    sha256: str | None
    asset_id: str | None
    signed_url: str | None
    url_expires_at: float | None
    duplicate_of: int | None
    attempts: int
    next_attempt_at: float | None
    confirm_polls: int
    last_error: str | None
    lease_owner: str | None
    lease_expires_at: float | None
    bytes_sent: int
    created_at: float
    updated_at: float
    upload_started_at: float | None = None
    progress_at: float | None = None
    after_upload_due: bool = False
    server_failures: int = 0
    sends: int = 0
    accepted_at: float | None = None
    mavi_status: str | None = None
    mavi_status_since: float | None = None
    content_claimed: bool = False
    # Fleet mode (PostgreSQL): the host that holds or finished the file (None before a claim,
    # and always on SQLite), and the share the file is on (None: a host's own folder).
    host_id: str | None = None
    share: str | None = None

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    def describes(self, st: os.stat_result) -> bool:
        """Is `st` the version of the file this row was made for (same size and mtime)?"""
        return same_version(
            (self.size, self.mtime_ns), (st.st_size, st.st_mtime_ns), shared=self.share is not None
        )


@dataclass(frozen=True)
class Event:
    id: int
    file_id: int
    at: float
    from_state: State | None
    to_state: State
    reason: str
    host_id: str | None = None  # fleet mode: the host that made the move


@dataclass(frozen=True)
class Observation:
    """What the watcher saw of a candidate file."""

    path: str
    watch_root: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Pause:
    reason: str
    since: float


@dataclass(frozen=True)
class HostInfo:
    """One daemon of a fleet as the shared journal knows it (`status` shows them)."""

    host_id: str
    pid: int
    alive: bool  # heartbeat seen within host_timeout_seconds (on the database clock)
    last_seen: float
    uploading: tuple[str, ...] = ()  # paths of the files it holds in `uploading` now


__all__ = [
    "ACTIVE_STATES",
    "EMPTY_FILE",
    "NEW_VERSION",
    "NO_ASSET",
    "SETTLED_FOR_GOOD",
    "SPENT_URL",
    "Event",
    "FileRecord",
    "HostInfo",
    "Observation",
    "Pause",
    "State",
    "blob_to_path",
    "display_path",
    "path_to_blob",
    "upload_name",
]
