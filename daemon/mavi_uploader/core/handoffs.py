"""Hand-offs to the next step (on_done command, webhook): records and decisions, pure.

A file that ends `done` or `duplicate` owes one hand-off per kind configured when it finished,
written in the same journal transaction as that move (`Owed`, `outcomes.finished`). The
daemon's runner claims due ones under a lease, delivers them and journals the result; what to
write after an attempt, the hook's environment and how its output is shown are decided here.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Mapping
from dataclasses import dataclass

from mavi_uploader.config.timers import Timers
from mavi_uploader.core.records import FileRecord
from mavi_uploader.core.retry import Backoff
from mavi_uploader.core.states import State
from mavi_uploader.redaction import redact


class HandoffKind(str, enum.Enum):
    COMMAND = "command"  # on_done
    WEBHOOK = "webhook"  # webhook_url


# The config key that makes each kind owed (messages and the drop rule name it).
KEY_OF: Mapping[HandoffKind, str] = {
    HandoffKind.COMMAND: "on_done",
    HandoffKind.WEBHOOK: "webhook_url",
}
EVENTS: Mapping[State, str] = {State.DONE: "file.done", State.DUPLICATE: "file.duplicate"}
# What a hook's output and a receiver's answer keep in the journal: enough to read an error.
OUTPUT_LIMIT = 2048


class HandoffEnd(enum.Enum):
    """How a claimed hand-off leaves its runner's hands."""

    DELIVERED = "delivered"  # exit 0 / 2xx: no longer owed
    FAILED = "failed"  # an attempt failed: owed, due again at next_attempt_at
    DROPPED = "dropped"  # its config key was removed: no longer owed (an event says so)
    RELEASED = "released"  # the daemon stopped during it: owed, due at once, no attempt counted


@dataclass(frozen=True)
class Owed:
    """What a file finishing now owes, written with the move that finishes it."""

    after_upload: bool = False  # the move/delete of after_upload (files.after_upload_due)
    handoffs: tuple[HandoffKind, ...] = ()  # one row in `handoffs` per kind


NOTHING_OWED = Owed()


@dataclass(frozen=True)
class Handoff:
    """One row of the hand-off outbox."""

    id: int
    file_id: int
    kind: HandoffKind
    event: str  # "file.done" | "file.duplicate"
    attempts: int
    next_attempt_at: float | None
    last_error: str | None
    lease_owner: str | None
    lease_expires_at: float | None
    delivered_at: float | None
    dropped_at: float | None
    created_at: float

    @property
    def owed(self) -> bool:
        return self.delivered_at is None and self.dropped_at is None


@dataclass(frozen=True)
class Attempt:
    """How one delivery went: `ok`, and what to say about it (already trimmed, redacted)."""

    ok: bool
    summary: str  # "exit 0", "HTTP 500", "timed out after 300s" ...
    output: str = ""  # the hook's output, or the start of the receiver's answer


@dataclass(frozen=True)
class Verdict:
    """What the journal writes after an attempt: an event, and either delivered (no
    `next_attempt_at`) or the error and when to try again."""

    delivered: bool
    reason: str  # the file's event
    last_error: str | None
    next_attempt_at: float | None


# 5 s, 10 s, 20 s ... an hour: a receiver down for a day is tried about 30 times, never lost.
HANDOFF_BACKOFF = Backoff(base=Timers.handoff_first, factor=2.0, cap=3600.0)


def event_of(state: State) -> str:
    return EVENTS[state]


def judge(
    handoff: Handoff, attempt: Attempt, *, now: float, rng: random.Random, backoff: Backoff
) -> Verdict:
    """Delivered, or failed and due again after the backoff of its attempt count."""
    label = describe(handoff.kind)
    said = f"; output: {attempt.output}" if attempt.output else ""
    if attempt.ok:
        return Verdict(True, f"{label} delivered ({attempt.summary}){said}", None, None)
    attempts = handoff.attempts + 1
    delay = backoff.delay(attempts, rng)
    reason = f"{label} failed (attempt {attempts}: {attempt.summary}){said}; retry in {delay:.0f}s"
    return Verdict(False, reason, f"{attempt.summary}{said}", now + delay)


def describe(kind: HandoffKind) -> str:
    return "hand-off on_done" if kind is HandoffKind.COMMAND else "hand-off webhook"


def dropped_reason(kind: HandoffKind) -> str:
    key = KEY_OF[kind]
    return f"{describe(kind)} dropped: {key} is no longer set (it was when the file finished)"


# The hook's environment starts from these of the daemon's own, nothing else: the daemon's
# environment holds MAVI_API_KEY (and maybe a journal URL with its password).
SAFE_ENV = ("PATH", "HOME", "LANG", "LANGUAGE", "TZ", "USER", "LOGNAME", "TMPDIR", "TERM")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


def hook_env(rec: FileRecord, event: str, daemon_env: Mapping[str, str]) -> dict[str, str]:
    """The on_done command's environment: a minimal safe base and the file's MAVI_FILE_*.

    A duplicate's MAVI_ASSET_ID is the original's asset (its row carries it)."""
    env = {k: v for k, v in daemon_env.items() if k in SAFE_ENV or k.startswith("LC_")}
    env.setdefault("PATH", DEFAULT_PATH)
    state = State.DUPLICATE if event == EVENTS[State.DUPLICATE] else State.DONE
    env.update(
        MAVI_FILE_ID=str(rec.id),
        MAVI_FILE_PATH=rec.path,
        MAVI_FILE_SHA256=rec.sha256 or "",
        MAVI_FILE_SIZE="" if rec.size is None else str(rec.size),
        MAVI_FILE_STATE=state.value,
        MAVI_ASSET_ID=rec.asset_id or "",
    )
    return env


def shown_output(head: bytes, tail: bytes, total: int, limit: int = OUTPUT_LIMIT) -> str:
    """A program's output as the journal keeps it: at most `limit` bytes (its start and its
    end when longer, saying how much was cut), decoded leniently, secrets redacted."""
    if total <= limit:
        data = head[:total]
        text = data.decode("utf-8", "replace")
    else:
        half = limit // 2
        cut = total - half - min(half, len(tail))
        text = (
            head[:half].decode("utf-8", "replace")
            + f" [... {cut} bytes ...] "
            + tail[-half:].decode("utf-8", "replace")
        )
    return redact(text.strip().replace("\x00", "\\x00"))
