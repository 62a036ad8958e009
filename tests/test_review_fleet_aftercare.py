"""Review: a share file's owed after_upload, postponed on the host that sees its writer, is
carried out by another host's sweep, which cannot see that writer: the file is deleted (or
moved) while a process still has it open for writing.
"""

from __future__ import annotations

from pathlib import Path

from conftest import Clock, write_video
from fleet_hosts import two_hosts_on_a_share
from journal_paths import drive
from mavi_uploader.config.model import AfterUpload
from mavi_uploader.core.records import Observation, State
from mavi_uploader.core.writers import Writer
from mavi_uploader.upload.aftercare import Aftercare
from test_settle import FakeProbe


class HeldProbe(FakeProbe):
    """Host a's probe: whatever it looks at (path or open file) is held by a writer."""

    def __call__(self, file: str | int) -> Writer | None:
        self.asked.append(file)
        return Writer("held open for writing by pid 7 (cam)", 7)


def test_a_share_file_postponed_for_its_writer_on_one_host_is_not_deleted_by_another(
    tmp_path: Path, pg_url: str
) -> None:
    clock = Clock()
    with two_hosts_on_a_share(tmp_path, pg_url, clock) as (nas, a, b):
        clip = write_video(nas / "clip.mp4", 1000)
        st = clip.stat()
        (rec,) = a.sight([Observation(str(clip), str(nas), st.st_size, st.st_mtime_ns)])
        drive(a, rec.id, State.QUEUED)
        assert a.claim("a-worker", 600) is not None  # host a uploads it: the row is a's
        done = drive(a, rec.id, State.DONE, asset_id="asset-1", after_upload_due=1)
        assert done.host_id == "a"
        writer_on_a = HeldProbe()  # a process on host a holds the clip open for writing

        # Host a finishes it: its writer probe postpones the delete (still owed).
        assert Aftercare(a, AfterUpload.DELETE, None, writer_on_a).apply(done) is False
        assert clip.exists()
        # Host b, same config, runs its periodic sweep a minute later; it sees no writer.
        clock.now += 120.0
        Aftercare(b, AfterUpload.DELETE, None, FakeProbe()).sweep(60.0)
        assert clip.exists(), "host b deleted a share file a process on host a has open for writing"
