"""after_upload: keep, move to done_dir, or delete a file MAVI has confirmed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from mavi_uploader.config import AfterUpload


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


def dispose(
    path: Path,
    *,
    watch_root: Path | None,
    action: AfterUpload,
    done_dir: Path | None,
    expected: tuple[int, int],
) -> str:
    """Apply `action` to the uploaded file; returns what was done, for the journal.

    `expected` is the (size, mtime_ns) that was uploaded: a file re-written since then is a new
    version nobody has uploaded, so it is never moved or deleted.
    """
    if action is AfterUpload.KEEP:
        return "kept in place"
    try:
        st = path.stat()
    except FileNotFoundError:
        return "already gone from the folder"
    except OSError as exc:
        raise DisposalError(f"cannot stat {path}: {exc.strerror}") from exc
    if (st.st_size, st.st_mtime_ns) != expected:
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
        shutil.move(os.fspath(path), os.fspath(target))
        return f"moved to {target}"
    except OSError as exc:
        raise DisposalError(f"after_upload {action.value} failed for {path}: {exc}") from exc
