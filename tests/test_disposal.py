"""after_upload on real files: move (same and other file system), delete, and what is left."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import held_by, held_open, sha256_of, write_video
from mavi_uploader.config.model import AfterUpload
from mavi_uploader.core.records import FileRecord, State
from mavi_uploader.upload.aftercare import DisposalError, dispose
from mavi_uploader.upload.safemove import Replaced, move_pinned


def record_of(path: Path, watch: Path) -> FileRecord:
    st = path.stat()
    return FileRecord(
        id=1, path=str(path), watch_root=str(watch), state=State.DONE, size=st.st_size,
        mtime_ns=st.st_mtime_ns, stable_since=None, sha256=None, asset_id="re_1",
        signed_url=None, url_expires_at=None, duplicate_of=None, attempts=1,
        next_attempt_at=None, confirm_polls=0, last_error=None, lease_owner=None,
        lease_expires_at=None, bytes_sent=st.st_size, created_at=0.0, updated_at=0.0,
        after_upload_due=True,
    )  # fmt: skip


@pytest.fixture
def other_file_system(tmp_path: Path) -> Iterator[Path]:
    """A folder on another file system than tmp_path, so a move must copy."""
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm here to move across file systems")
    folder = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="mavi-done-"))
    if folder.stat().st_dev == tmp_path.stat().st_dev:
        shutil.rmtree(folder)
        pytest.skip("/dev/shm is on the same file system as the test folder")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_move_keeps_the_layout_under_the_watch_root(tmp_path: Path) -> None:
    watch, done = tmp_path / "watch", tmp_path / "done"
    clip = write_video(watch / "day1" / "a.mp4", 10_000)
    digest = sha256_of(clip)
    what = dispose(record_of(clip, watch), AfterUpload.MOVE, done)
    assert what == f"moved to {done / 'day1' / 'a.mp4'}"
    assert sha256_of(done / "day1" / "a.mp4") == digest and not clip.exists()


def test_move_across_file_systems_leaves_no_partial_and_keeps_the_mtime(
    tmp_path: Path, other_file_system: Path
) -> None:
    watch = tmp_path / "watch"
    clip = write_video(watch / "a.mp4", 3_000_000)
    digest, mtime = sha256_of(clip), clip.stat().st_mtime_ns
    # What a crash mid-copy leaves behind: a partial copy under the hidden name.
    (other_file_system / ".a.mp4.mavi-partial").write_bytes(b"half a copy")
    dispose(record_of(clip, watch), AfterUpload.MOVE, other_file_system)
    moved = other_file_system / "a.mp4"
    assert sha256_of(moved) == digest and moved.stat().st_mtime_ns == mtime
    assert not clip.exists()
    assert sorted(p.name for p in other_file_system.iterdir()) == ["a.mp4"]


def test_a_taken_name_in_done_dir_gets_a_number(tmp_path: Path) -> None:
    watch, done = tmp_path / "watch", tmp_path / "done"
    write_video(done / "a.mp4", 100, seed=9)
    clip = write_video(watch / "a.mp4", 10_000)
    assert dispose(record_of(clip, watch), AfterUpload.MOVE, done).endswith("a (2).mp4")
    assert (done / "a.mp4").stat().st_size == 100  # the older file is untouched


def test_a_file_rewritten_after_its_upload_is_never_moved_or_deleted(tmp_path: Path) -> None:
    watch = tmp_path / "watch"
    clip = write_video(watch / "a.mp4", 10_000)
    rec = record_of(clip, watch)
    write_video(clip, 12_000, seed=1)  # a new version nobody has uploaded
    for action in (AfterUpload.DELETE, AfterUpload.MOVE):
        what = dispose(rec, action, tmp_path / "done")
        assert what == "left in place: the file changed after its upload"
    assert clip.stat().st_size == 12_000


def test_delete_and_a_file_already_gone(tmp_path: Path) -> None:
    watch = tmp_path / "watch"
    clip = write_video(watch / "a.mp4", 10_000)
    rec = record_of(clip, watch)
    assert dispose(rec, AfterUpload.DELETE, None) == "deleted after upload"
    assert not clip.exists()
    assert dispose(rec, AfterUpload.DELETE, None) == "already gone from the folder"


def test_a_version_renamed_over_the_name_during_a_copy_is_never_deleted(
    tmp_path: Path, other_file_system: Path
) -> None:
    """Re-exported (new file renamed over the old name) while the upload was being copied."""
    clip = write_video(tmp_path / "watch" / "a.mp4", 2_000_000, seed=1)
    uploaded = sha256_of(clip)
    with open(clip, "rb") as src:
        write_video(tmp_path / "watch" / ".a.mp4.tmp", 1_000_000, seed=2)
        os.rename(tmp_path / "watch" / ".a.mp4.tmp", clip)
        target, removed = move_pinned(src, clip, other_file_system / "a.mp4")
    assert not removed and clip.stat().st_size == 1_000_000  # the new version stays
    assert sha256_of(target) == uploaded  # the uploaded one, whole, in done_dir


def test_a_name_re_pointed_before_a_same_disk_move_changes_nothing(tmp_path: Path) -> None:
    clip = write_video(tmp_path / "watch" / "a.mp4", 10_000, seed=1)
    with open(clip, "rb") as src:
        write_video(tmp_path / "watch" / ".new", 20_000, seed=2)
        os.rename(tmp_path / "watch" / ".new", clip)
        with pytest.raises(Replaced):
            move_pinned(src, clip, tmp_path / "done" / "a.mp4")
    assert clip.stat().st_size == 20_000 and list((tmp_path / "done").iterdir()) == []


def test_an_existing_file_in_done_dir_is_never_replaced_across_disks(
    tmp_path: Path, other_file_system: Path
) -> None:
    (other_file_system / "a.mp4").write_bytes(b"an earlier upload")
    clip = write_video(tmp_path / "watch" / "a.mp4", 10_000)
    what = dispose(record_of(clip, tmp_path / "watch"), AfterUpload.MOVE, other_file_system)
    assert what == f"moved to {other_file_system / 'a (2).mp4'}"
    assert (other_file_system / "a.mp4").read_bytes() == b"an earlier upload"


@pytest.fixture
def undeletable_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder nobody may remove files from, root included (chattr +i)."""
    folder = tmp_path / "watch"
    folder.mkdir()
    write_video(folder / "a.mp4", 10_000)
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here: cannot make a folder undeletable")
    yield folder
    subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_a_move_that_cannot_remove_the_original_leaves_no_copy(
    undeletable_folder: Path, other_file_system: Path
) -> None:
    rec = record_of(undeletable_folder / "a.mp4", undeletable_folder)
    for _ in range(2):  # retried (at the next start, hourly): still no copies pile up
        with pytest.raises(DisposalError, match="cannot remove files"):
            dispose(rec, AfterUpload.MOVE, other_file_system)
    assert list(other_file_system.iterdir()) == []
    assert (undeletable_folder / "a.mp4").exists()


@pytest.mark.skipif(sys.platform != "linux", reason="the writer probe needs Linux")
@pytest.mark.parametrize("action", [AfterUpload.DELETE, AfterUpload.MOVE])
def test_a_file_open_for_writing_is_never_moved_or_deleted(
    tmp_path: Path, action: AfterUpload
) -> None:
    """Uploaded and confirmed, yet its writer has it open again (or still): it may grow."""
    watch, done = tmp_path / "watch", tmp_path / "done"
    clip = write_video(watch / "a.mp4", 10_000)
    rec, digest = record_of(clip, watch), sha256_of(clip)
    with held_open(clip, "ab") as writer:
        with pytest.raises(DisposalError) as raised:
            dispose(rec, action, done)
        assert str(raised.value) == f"after_upload {action.value} postponed: {held_by(writer.pid)}"
        assert dispose(rec, AfterUpload.KEEP, done) == "kept in place"
    assert sha256_of(clip) == digest and not done.exists()
    assert dispose(rec, action, done) != "kept in place" and not clip.exists()  # once closed
