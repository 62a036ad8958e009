"""The journal's records: file states, file rows and events (frozen, typed, SQL-free)."""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from typing import Any

# Columns that belong to one version of a file's content: its asset, and its hash and bytes
# sent. A row whose file changed must forget them, or the new content passes for the old.
NO_ASSET: dict[str, Any] = {
    "asset_id": None,
    "signed_url": None,
    "url_expires_at": None,
    "accepted_at": None,
    "mavi_status": None,
    "mavi_status_since": None,
}
# A finished file's signed URL is a credential with no further use: never kept.
SPENT_URL: dict[str, Any] = {"signed_url": None, "url_expires_at": None}
NEW_VERSION: dict[str, Any] = {
    **NO_ASSET,
    "sha256": None,
    "bytes_sent": 0,
    "duplicate_of": None,
    "sends": 0,
}
# last_error of a file skipped for having no bytes: a verdict on the file, not on the config.
EMPTY_FILE = "empty file"


class State(str, enum.Enum):
    SETTLING = "settling"
    QUEUED = "queued"
    UPLOADING = "uploading"
    CONFIRMING = "confirming"
    DONE = "done"
    DUPLICATE = "duplicate"
    FAILED = "failed"
    VANISHED = "vanished"
    SKIPPED = "skipped"


ACTIVE_STATES: tuple[State, ...] = (State.SETTLING, State.QUEUED, State.UPLOADING, State.CONFIRMING)
# Final states after which nothing more is sent (failed keeps its URL: `retry` may reuse it).
SETTLED_FOR_GOOD: tuple[State, ...] = (State.DONE, State.DUPLICATE, State.VANISHED, State.SKIPPED)


def path_to_blob(path: str) -> bytes:
    """Paths are stored as raw bytes: a name that is not valid UTF-8 must still round-trip."""
    return os.fsencode(path)


def blob_to_path(blob: bytes) -> str:
    return os.fsdecode(blob)


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

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    def describes(self, st: os.stat_result) -> bool:
        """Is `st` the version of the file this row was made for (same size and mtime)?"""
        return (st.st_size, st.st_mtime_ns) == (self.size, self.mtime_ns)


@dataclass(frozen=True)
class Event:
    id: int
    file_id: int
    at: float
    from_state: State | None
    to_state: State
    reason: str


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
