"""after_upload: keep, move to done_dir, or delete a file MAVI has confirmed.

The move/delete is owed from the commit that marks the file done (`after_upload_due`) until
it is carried out, so a crash in between, a failed move, or a file some process has open for
writing (never moved or deleted under its writer) is finished later by `sweep`.
"""

from __future__ import annotations

import os
from pathlib import Path

from mavi_uploader.config.model import AfterUpload
from mavi_uploader.config.timers import Timers
from mavi_uploader.core.records import FileRecord, display_path
from mavi_uploader.core.writers import Probe, WriterProbe
from mavi_uploader.journal import JournalStore
from mavi_uploader.log import get_logger
from mavi_uploader.upload.safemove import Replaced, move_pinned, unlink_if_same

log = get_logger(__name__)

_REPLACED = "left in place: replaced by a new version, which is not uploaded yet"


class DisposalError(Exception):
    """The uploaded file could not be moved or deleted; it stays where it is."""


class Postponed(DisposalError):
    """A process has the file open for writing: moving or deleting it would cut it off."""


def dispose(
    rec: FileRecord, action: AfterUpload, done_dir: Path | None, probe: Probe | None = None
) -> str:
    """Apply `action` to the uploaded file of `rec`; returns what was done, for the journal.

    A file re-written since its upload (other size or mtime) is a new version nobody has
    uploaded, so it is never moved or deleted. The file is opened first and every later
    step acts on that very file, whatever happens to its name meanwhile. One some process
    has open for writing raises Postponed (it may be written further).
    """
    if action is AfterUpload.KEEP:
        return "kept in place"
    path = Path(rec.path)
    try:
        with open(path, "rb") as src:
            if not rec.describes(os.fstat(src.fileno())):
                return "left in place: the file changed after its upload"
            # The pinned file itself is probed, whatever its name points at by now.
            writer = (probe or WriterProbe())(src.fileno())
            if writer is not None:
                raise Postponed(f"after_upload {action.value} postponed: {writer.reason}")
            if action is AfterUpload.DELETE:
                removed = unlink_if_same(path, os.fstat(src.fileno()))
                return (
                    "deleted after upload"
                    if removed
                    else "left in place: replaced by a new version"
                )
            if done_dir is None:
                raise DisposalError("after_upload = move needs done_dir")
            target, removed = move_pinned(src, path, done_dir / _relative(rec))
    except FileNotFoundError:
        return "already gone from the folder"
    except Replaced:
        return _REPLACED
    except OSError as exc:
        raise DisposalError(f"after_upload {action.value} failed for {path}: {exc}") from exc
    if not removed:
        return f"copied to {target}; a new version took its name meanwhile and stays"
    return f"moved to {target}"


def _relative(rec: FileRecord) -> Path:
    """Where under done_dir: the path below its watch folder (sub-folders kept)."""
    path = Path(rec.path)
    relative = Path(os.path.relpath(path, rec.watch_root)) if rec.watch_root else Path(path.name)
    if not relative.parts or relative.parts[0] == os.pardir:
        return Path(path.name)
    return relative


class Aftercare:
    """Carries out the owed after_upload of finished files and journals the outcome."""

    def __init__(
        self,
        journal: JournalStore,
        action: AfterUpload,
        done_dir: Path | None,
        probe: Probe | None = None,
    ) -> None:
        self._journal = journal
        self._action = action
        self._done_dir = done_dir
        self._probe = probe or WriterProbe()

    def due(self) -> bool:
        """Should a file finishing now owe a move/delete?"""
        return self._action is not AfterUpload.KEEP

    def apply(self, rec: FileRecord) -> bool:
        """Do what `rec` is owed; False if it failed (still owed, reason in last_error)."""
        if not rec.after_upload_due:
            return True
        try:
            what = dispose(rec, self._action, self._done_dir, self._probe)
        except Postponed as exc:
            # Still owed (after_upload_due stays set); `history` says why the file is there.
            log.info("after_upload postponed", file_id=rec.id, reason=str(exc))
            self._journal.transition(
                rec.id, rec.state, str(exc), expect=rec.state, last_error=str(exc)
            )
            return False
        except DisposalError as exc:
            log.warning("after_upload failed; will try again", file_id=rec.id, error=str(exc))
            self._journal.update(rec.id, last_error=str(exc))
            return False
        if self._action is AfterUpload.KEEP:
            what += " (after_upload is now keep)"
        moved = self._journal.transition(
            rec.id, rec.state, f"after_upload: {what}", expect=rec.state,
            after_upload_due=0, last_error=None,
        )  # fmt: skip
        if moved is not None:
            log.info("after_upload", file_id=rec.id, path=display_path(rec.path), action=what)
        return True

    def sweep(self, grace_seconds: float = Timers.sweep_grace) -> int:
        """Finish what a crash or a failed move left owed; returns how many were finished.

        A row finished within `grace_seconds` may still be in its worker's hands: it is left
        to the worker. At start-up no worker runs yet, so the caller passes no grace.
        """
        cutoff = self._journal.now() - grace_seconds
        return sum(self.apply(rec) for rec in self._journal.after_upload_owed(cutoff))
