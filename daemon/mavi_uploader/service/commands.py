"""Operator commands that change the journal (enqueue, forget, retry): what each decides,
as values the CLI prints. No printing here, and no argument parsing. Which rows a target on
the command line names is `targets.find`."""

from __future__ import annotations

import os
from dataclasses import dataclass

from mavi_uploader.config.model import Config
from mavi_uploader.core import container, rules
from mavi_uploader.core.records import FileRecord, Observation, State
from mavi_uploader.core.rules import relative_parts
from mavi_uploader.journal import JournalStore as Journal
from mavi_uploader.journal import make_state_dir, open_journal
from mavi_uploader.service.fleet import fleet_of
from mavi_uploader.service.lock import AlreadyRunning, StateDirLock
from mavi_uploader.watch.roots import WatchRoot, watch_roots


def open_for_command(config: Config) -> Journal:
    """The journal for a command that writes (the fleet's, with journal_url). Migrating it is
    only safe under the state-dir lock; a daemon holding that lock has migrated it to its own
    schema, which this build uses as it is or refuses (naming the fix)."""
    state_dir, fleet = config.state_dir, fleet_of(config)
    make_state_dir(state_dir)
    lock = StateDirLock(state_dir)
    try:
        lock.acquire()
    except AlreadyRunning:
        return open_journal(state_dir, fleet=fleet, migrate_schema=False)
    try:
        return open_journal(state_dir, fleet=fleet)
    finally:
        lock.release()


@dataclass(frozen=True)
class Enqueued:
    """One path given to `enqueue`: its row, or why it was refused (and the row saying so)."""

    path: str
    record: FileRecord | None
    refused: str | None = None
    waiting: str | None = None  # left to settle: its container is not whole yet


def enqueue(
    journal: Journal, config: Config, raw_paths: list[str], *, verify: bool = True
) -> list[Enqueued]:
    """Queue files now (no settle wait) under the rules of their watch folder. With `verify`
    (and verify_container) a file whose container is not whole is left to settle instead,
    with the reason; `verify=False` (`--no-verify`) sends it as it is."""
    roots = watch_roots(config)
    results: list[Enqueued] = []
    for raw in raw_paths:
        # The folder resolved like the watch roots; the file itself stays what was named.
        folder, name = os.path.split(os.path.abspath(raw))
        path = os.path.join(os.path.realpath(folder), name)
        try:
            st = os.stat(path)
        except OSError as exc:
            results.append(Enqueued(path, None, exc.strerror or str(exc)))
            continue
        root = _watch_root_of(path, roots)
        obs = root.observe(path) if root else None
        if obs is None:
            why = _why_refused(path, root, config) if root else "outside every watch folder"
            seen = Observation(path, root.root if root else "", st.st_size, st.st_mtime_ns)
            results.append(Enqueued(path, journal.record_rejection(seen, why), why))
            continue
        incomplete = _incomplete(path, st.st_size) if verify and config.verify_container else None
        if incomplete is not None:
            journal.sight([obs])  # the settle tick has it: it waits, then fails after the grace
            latest = journal.by_path(path)
            results.append(Enqueued(path, latest[-1] if latest else None, waiting=incomplete))
            continue
        results.append(Enqueued(path, journal.enqueue(obs, "enqueued by hand")))
    return results


def _incomplete(path: str, size: int) -> str | None:
    """`incomplete: why` when the file's container is not whole yet, else None."""
    try:
        verdict = container.check(path, size)
    except OSError:
        return None  # unreadable: the worker says so, as for any file
    return f"incomplete: {verdict.reason}" if verdict.incomplete else None


def _watch_root_of(path: str, roots: list[WatchRoot]) -> WatchRoot | None:
    """Longest root first: the most specific watch decides the rules."""
    for root in sorted(roots, key=lambda r: -len(r.root)):
        if relative_parts(path, root.root) is not None:
            return root
    return None


def _why_refused(path: str, root: WatchRoot, config: Config) -> str:
    why = rules.rejection(
        path, root.root, extensions=config.extensions, ignore=root.ignore, recursive=root.recursive
    )
    return why or "not a regular file inside its watch folder (or a link that leaves it)"


@dataclass(frozen=True)
class Forgotten:
    """One row named to `forget`: dropped or not, and the new row of a file still on disk."""

    record: FileRecord
    forgotten: bool
    sighted: tuple[FileRecord, ...] = ()


def forget(journal: Journal, config: Config, records: list[FileRecord]) -> list[Forgotten]:
    """Drop finished rows; a file still on disk is journaled again at once (not at the next
    rescan, maybe an hour away), so it is uploaded again."""
    roots = watch_roots(config)
    dropped = set(journal.forget([r.id for r in records]))
    results: list[Forgotten] = []
    for rec in records:
        if rec.id not in dropped:
            results.append(Forgotten(rec, forgotten=False))
            continue
        seen = [o for o in (r.observe(rec.path) for r in roots) if o is not None][:1]
        results.append(Forgotten(rec, forgotten=True, sighted=tuple(journal.sight(seen))))
    return results


def retry(journal: Journal, file_id: int) -> FileRecord | None:
    """A failed file back to queued with a clean slate (one failed as incomplete back to
    settling: its container is checked again); None if it is not failed."""
    current = journal.get(file_id)
    if current is not None and (current.last_error or "").startswith("incomplete:"):
        return journal.transition(
            file_id,
            State.SETTLING,
            "retry requested: its container is checked again",
            expect=State.FAILED,
            stable_since=journal.now(),
            next_attempt_at=None,
        )
    return journal.transition(
        file_id,
        State.QUEUED,
        "retry requested",
        expect=State.FAILED,
        attempts=0,
        server_failures=0,
        sends=0,
        last_error=None,
        next_attempt_at=None,
    )
