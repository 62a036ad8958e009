"""Container checks on files a real muxer wrote: ffmpeg's, where one is installed.

No pip package ships small sample videos to test against offline, and ffmpeg is too heavy a
test dependency; where `ffmpeg` is on PATH (or MAVI_TEST_FFMPEG names one) these tests make
1-second clips of each checked type, as finished files and as a writer leaves them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mavi_uploader.core.container import BytesReader, Completeness, check

FFMPEG = os.environ.get("MAVI_TEST_FFMPEG") or shutil.which("ffmpeg")
pytestmark = pytest.mark.skipif(FFMPEG is None, reason="no ffmpeg to make real clips with")
VIDEO = ["-f", "lavfi", "-i", "testsrc=size=160x120:rate=25:duration=1"]
AUDIO = ["-f", "lavfi", "-i", "sine=duration=1"]
CLIPS = {
    "moov-at-end.mp4": [*VIDEO, *AUDIO, "-c:v", "libx264", "-c:a", "aac"],
    "faststart.mp4": [*VIDEO, *AUDIO, "-c:v", "libx264", "-c:a", "aac", "-movflags", "+faststart"],
    "fragmented.mp4": [*VIDEO, "-c:v", "libx264", "-g", "5", "-movflags",
                       "frag_keyframe+empty_moov"],
    "clip.mov": [*VIDEO, *AUDIO, "-c:v", "libx264", "-c:a", "aac"],
    "clip.mxf": [*VIDEO, *AUDIO, "-c:v", "mpeg2video", "-c:a", "pcm_s16le", "-ar", "48000"],
    "clip.mkv": [*VIDEO, *AUDIO, "-c:v", "libx264", "-c:a", "aac"],
    "clip.webm": [*VIDEO, "-c:v", "libvpx"],
    "clip.avi": [*VIDEO, "-c:v", "mpeg4"],
}  # fmt: skip
# Written to a pipe, the muxer cannot go back: what a live recording leaves.
LIVE = {
    "live.mkv": ([*VIDEO, "-c:v", "libx264", "-f", "matroska"], "MKV segment size is unknown"),
    "live.avi": ([*VIDEO, "-c:v", "mpeg4", "-f", "avi"], "AVI RIFF size says"),
}


def ffmpeg(args: list[str], out: str) -> bytes:
    assert FFMPEG is not None
    cmd = [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", *args, out]
    return subprocess.run(cmd, check=True, capture_output=True, timeout=60).stdout


@pytest.mark.parametrize("name", sorted(CLIPS))
def test_a_finished_clip_is_complete_and_no_cut_of_it_is(tmp_path: Path, name: str) -> None:
    clip = tmp_path / name
    ffmpeg(CLIPS[name], str(clip))
    data = clip.read_bytes()
    assert check(clip, len(data)).complete, check(clip, len(data)).reason
    assert check(clip, len(data)).final  # a fragmented one ends with ffmpeg's mfra
    fragmented = name.startswith("fragmented")
    for length in range(0, len(data), max(1, len(data) // 500)):
        got = check(BytesReader(data[:length]), length, name)
        if fragmented and got.complete:
            continue  # whole at each fragment boundary
        assert got.completeness is Completeness.INCOMPLETE, (length, got.reason)


@pytest.mark.parametrize("name", sorted(LIVE))
def test_a_clip_written_to_a_pipe_is_incomplete(name: str) -> None:
    args, reason = LIVE[name]
    data = ffmpeg(args, "-")
    got = check(BytesReader(data), len(data), name)
    assert got.incomplete and got.reason.startswith(reason), got.reason
