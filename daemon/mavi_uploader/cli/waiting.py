"""`enqueue --wait`: follow files until the daemon has finished them, with bars on a terminal."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from typing import TextIO

from mavi_uploader.cli.progress import UploadBars
from mavi_uploader.config.timers import Timers
from mavi_uploader.core.records import ACTIVE_STATES, FileRecord, State, display_path
from mavi_uploader.core.reporting import upload_progress
from mavi_uploader.journal import JournalStore
from mavi_uploader.redaction import redact

GOOD_ENDINGS = (State.DONE, State.DUPLICATE)


def _current(journal: JournalStore, ids: Sequence[int]) -> list[FileRecord]:
    return [r for r in (journal.get(i) for i in ids) if r is not None]


def follow(
    journal: JournalStore,
    ids: Sequence[int],
    out: TextIO | None = None,
    reported: Mapping[int, State] | None = None,
    poll: float = Timers.wait_poll,
) -> bool:
    """Block until every file in `ids` is final; True when all were uploaded (or duplicates).

    Args:
        out: where state lines go (default: sys.stdout at call time, not at import).
        reported: the state each file was last printed in (by `enqueue`), not printed again.
        poll: seconds between two reads of the journal.
    """
    out = sys.stdout if out is None else out
    seen = dict(reported or {})
    if out.isatty():
        with UploadBars() as bars:
            return _follow(journal, ids, out, bars, seen, poll)
    return _follow(journal, ids, out, None, seen, poll)


def _follow(
    journal: JournalStore,
    ids: Sequence[int],
    out: TextIO,
    bars: UploadBars | None,
    seen: dict[int, State],  # file id -> the state last shown
    poll: float,
) -> bool:
    while True:
        records = _current(journal, ids)
        now = time.time()
        for rec in records:
            if seen.get(rec.id) is rec.state:
                continue
            seen[rec.id] = rec.state
            if rec.state not in ACTIVE_STATES:
                line = f"{rec.state.value} #{rec.id} {display_path(rec.path)}"
                if rec.last_error and rec.state not in GOOD_ENDINGS:
                    line += f": {redact(rec.last_error)}"
                if bars is not None:
                    bars.finish(rec.id, f"{rec.name}: {rec.state.value}", rec.size or 0)
                else:
                    print(line, file=out, flush=True)
            elif bars is None:
                print(f"{rec.state.value} #{rec.id} {display_path(rec.path)}", file=out, flush=True)
        if bars is not None:
            bars.update([upload_progress(r, now) for r in records if r.state is State.UPLOADING])
        if all(r.state not in ACTIVE_STATES for r in records):
            return all(r.state in GOOD_ENDINGS for r in records)
        time.sleep(poll)
