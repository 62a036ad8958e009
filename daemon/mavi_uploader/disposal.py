"""after_upload: keep, move to done_dir, or delete a file MAVI has confirmed.

The move/delete is owed from the commit that marks the file done (`after_upload_due`) until
it is carried out, so a crash in between, or a failed move, is finished later by `sweep`.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from mavi_uploader.config import AfterUpload
from mavi_uploader.journal import Journal
from mavi_uploader.log import get_logger
from mavi_uploader.records import FileRecord, display_path

log = get_logger(__name__)

# A row finished this recently may still be in its worker's hands: leave it to the worker.
SWEEP_GRACE_SECONDS = 60.0
COPY_CHUNK = 1 << 20


class DisposalError(Exception):
    """The uploaded file could not be moved or deleted; it stays where it is."""


def _free_name(target: Path) -> Path:
    """`target`, or `name (2).ext`... when something already has that name."""
    if not target.exists():
        return target
    for n in range(2, 10_000):
        candidate = target.with_name(f"{target.stem} ({n}){target.suffix}")
        if not candidate.exists():
            return candidate
    raise DisposalError(f"no free name for {target} in {target.parent}")


def _move(path: Path, target: Path) -> None:
    """Rename, or across file systems copy under a hidden name, fsync, rename, then unlink.

    A crash mid-copy must not leave a partial file under the real name in done_dir, where
    it would pass for the upload; the source is removed only once the copy is whole.
    """
    try:
        os.rename(path, target)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    partial = target.with_name(f".{target.name}.mavi-partial")
    with open(path, "rb") as src, open(partial, "wb") as dst:
        shutil.copyfileobj(src, dst, COPY_CHUNK)
        dst.flush()
        os.fsync(dst.fileno())
    shutil.copystat(path, partial)
    os.rename(partial, target)
    path.unlink()


def dispose(rec: FileRecord, action: AfterUpload, done_dir: Path | None) -> str:
    """Apply `action` to the uploaded file of `rec`; returns what was done, for the journal.

    A file re-written since its upload (other size or mtime) is a new version nobody has
    uploaded, so it is never moved or deleted.
    """
    if action is AfterUpload.KEEP:
        return "kept in place"
    path = Path(rec.path)
    watch_root = Path(rec.watch_root) if rec.watch_root else None
    try:
        st = path.stat()
    except FileNotFoundError:
        return "already gone from the folder"
    except OSError as exc:
        raise DisposalError(f"cannot stat {path}: {exc.strerror}") from exc
    if not rec.describes(st):
        return "left in place: the file changed after its upload"
    try:
        if action is AfterUpload.DELETE:
            path.unlink()
            return "deleted after upload"
        if done_dir is None:
            raise DisposalError("after_upload = move needs done_dir")
        relative = Path(os.path.relpath(path, watch_root)) if watch_root else Path(path.name)
        if relative.parts and relative.parts[0] == os.pardir:
            relative = Path(path.name)
        target = _free_name(done_dir / relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        _move(path, target)
        return f"moved to {target}"
    except OSError as exc:
        raise DisposalError(f"after_upload {action.value} failed for {path}: {exc}") from exc


class Aftercare:
    """Carries out the owed after_upload of finished files and journals the outcome."""

    def __init__(self, journal: Journal, action: AfterUpload, done_dir: Path | None) -> None:
        self._journal = journal
        self._action = action
        self._done_dir = done_dir

    def due(self) -> bool:
        """Should a file finishing now owe a move/delete?"""
        return self._action is not AfterUpload.KEEP

    def apply(self, rec: FileRecord) -> bool:
        """Do what `rec` is owed; False if it failed (still owed, reason in last_error)."""
        if not rec.after_upload_due:
            return True
        try:
            what = dispose(rec, self._action, self._done_dir)
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

    def sweep(self, grace_seconds: float = SWEEP_GRACE_SECONDS) -> int:
        """Finish what a crash or a failed move left owed; returns how many were finished.

        At start-up no worker runs yet, so the caller passes no grace.
        """
        cutoff = self._journal.now() - grace_seconds
        return sum(self.apply(rec) for rec in self._journal.after_upload_owed(cutoff))
