"""The writer probe on real files, with real writer processes, by lease and by /proc."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import held_by, held_open, write_video
from mavi_uploader.core import writers
from mavi_uploader.core.writers import BY_ANOTHER, Writer, WriterProbe, lease_breaks_harmless

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="leases and /proc are Linux's")


@pytest.fixture(params=["lease", "proc", "both"])
def method(request: pytest.FixtureRequest) -> str:
    """Each way of asking forced alone, and both (the daemon's default)."""
    name: str = request.param
    return name


@pytest.fixture
def probe(method: str, sigio_ignored: None) -> WriterProbe:
    return WriterProbe(lease=method != "proc", proc=method != "lease")


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return write_video(tmp_path / "recording.mp4", 10_000)


def by(pid: int) -> Writer:
    """The answer that names `pid` (what /proc can tell)."""
    return Writer(held_by(pid), pid)


def expected(method: str, pid: int) -> Writer:
    return Writer(BY_ANOTHER) if method == "lease" else by(pid)


@pytest.mark.parametrize("mode", ["ab", "r+b", "wb"])
def test_a_file_open_for_writing_is_held(
    probe: WriterProbe, method: str, clip: Path, mode: str
) -> None:
    with held_open(clip, mode) as writer:
        assert probe(str(clip)) == expected(method, writer.pid)


def test_a_reader_does_not_count(probe: WriterProbe, clip: Path) -> None:
    with held_open(clip, "rb"):
        assert probe(str(clip)) is None


def test_a_file_closed_by_its_writer_is_free(probe: WriterProbe, clip: Path) -> None:
    with held_open(clip, "ab"):
        pass
    assert probe(str(clip)) is None
    assert probe(str(clip.with_name("gone.mp4"))) is None


def test_our_own_descriptors_count_only_when_open_for_writing(
    probe: WriterProbe, method: str, clip: Path
) -> None:
    with open(clip, "rb") as reading:  # the worker's held descriptor: never a writer
        assert probe(str(clip)) is None
        assert probe(reading.fileno()) is None
        with open(clip, "ab"):
            assert probe(reading.fileno()) == expected(method, os.getpid())
    assert probe(str(clip)) is None


def test_a_descriptor_answers_for_its_file_not_for_the_name(
    probe: WriterProbe, method: str, clip: Path
) -> None:
    with open(clip, "rb") as pinned, held_open(clip, "ab") as writer:
        newer = write_video(clip.with_name(".new.mp4"), 5_000, seed=2)
        os.rename(newer, clip)  # a new version took the name; the writer still has the old
        assert probe(str(clip)) is None
        assert probe(pinned.fileno()) == expected(method, writer.pid)


def test_a_batch_shares_one_proc_scan(clip: Path, tmp_path: Path) -> None:
    other = write_video(tmp_path / "other.mp4", 1_000)
    probe = WriterProbe(lease=False)
    with held_open(clip, "ab") as writer:
        with probe.batch():
            assert [probe(str(clip)), probe(str(other))] == [by(writer.pid), None]
        assert probe.scans == 1
        probe(str(other))
        probe(str(other))
    assert probe.scans == 3  # outside a batch every answer is fresh


def test_without_sigio_ignored_no_lease_is_taken(clip: Path) -> None:
    """pytest has SIGIO at its default (fatal): a lease here could kill the test run."""
    assert signal.getsignal(signal.SIGIO) is signal.SIG_DFL and not lease_breaks_harmless()
    leased: list[bool] = []
    probe = WriterProbe(while_leased=lambda: leased.append(True))
    with held_open(clip, "ab") as writer:
        assert probe(str(clip)) == by(writer.pid)
    assert probe(str(clip)) is None
    assert leased == []


# Holds a write lease (as a file server does for a client's oplock) until stdin closes.
WRITE_LEASE = textwrap.dedent(
    """
    import fcntl, os, signal, sys
    signal.signal(signal.SIGIO, signal.SIG_IGN)  # a prober's open() breaks it: stay alive
    fd = os.open(sys.argv[1], os.O_RDONLY)
    fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
    print("leased", flush=True)
    sys.stdin.read()
    """
)


def test_a_file_under_another_process_write_lease_counts_as_held(
    clip: Path, sigio_ignored: None
) -> None:
    """Its holder may write at any time; the probe's open starts the break and waits not."""
    holder = subprocess.Popen([sys.executable, "-c", WRITE_LEASE, str(clip)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert holder.stdin is not None and holder.stdout is not None
    with holder:
        assert holder.stdout.readline() == "leased\n"
        assert WriterProbe()(str(clip)) == Writer(BY_ANOTHER)
        holder.stdin.close()
        assert holder.wait(timeout=10) == 0
    assert WriterProbe()(str(clip)) is None


# ---- another owner: the lease is refused, /proc answers ------------------------------------

# Root without CAP_LEASE: a daemon that does not own the file (and may not take its lease).
NO_LEASE = ["setpriv", "--inh-caps=-lease", "--bounding-set=-lease"]
ASK = (
    "import sys; from mavi_uploader.core.writers import WriterProbe;"
    " print(WriterProbe()(sys.argv[1]))"
)


@pytest.fixture
def nobodys_clip(clip: Path) -> Path:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to own a file as another user and drop CAP_LEASE")
    shutil.chown(clip, "nobody")
    clip.chmod(0o666)
    return clip


def test_another_users_file_is_probed_by_lease_with_cap_lease(
    nobodys_clip: Path, sigio_ignored: None
) -> None:
    with held_open(nobodys_clip, "ab"):
        assert WriterProbe(proc=False)(str(nobodys_clip)) == Writer(BY_ANOTHER)
    assert WriterProbe(proc=False)(str(nobodys_clip)) is None


def test_another_users_file_falls_back_to_proc_without_cap_lease(nobodys_clip: Path) -> None:
    def ask() -> str:
        # The lease as this user fails with EACCES (checked), so only /proc can answer.
        lease = (
            "import fcntl as f, os, sys; f.fcntl(os.open(sys.argv[1], 0), f.F_SETLEASE, f.F_RDLCK)"
        )
        refused = subprocess.run([*NO_LEASE, sys.executable, "-c", lease, str(nobodys_clip)],
                                 capture_output=True, text=True, timeout=30)  # fmt: skip
        assert "Permission denied" in refused.stderr, refused
        script = f"import signal; signal.signal(signal.SIGIO, signal.SIG_IGN); {ASK}"
        answer = subprocess.run([*NO_LEASE, sys.executable, "-c", script, str(nobodys_clip)],
                                capture_output=True, text=True, timeout=30)  # fmt: skip
        assert answer.returncode == 0, answer.stderr
        return answer.stdout.strip()

    with held_open(nobodys_clip, "ab") as writer:
        held, named = ask(), by(writer.pid)
    assert held == repr(named)
    assert ask() == "None"


# ---- a writer breaking our lease cannot kill us ---------------------------------------------

# Probes with the lease held until a writer's open() has broken it (the kernel then sends the
# prober SIGIO), so the moment that is microseconds long in the daemon is certain here.
BREAK_THE_LEASE = textwrap.dedent(
    """
    import os, subprocess, sys, time
    from mavi_uploader.core import writers

    path = sys.argv[1]
    if sys.argv[2] == "as-the-daemon":
        writers.ignore_lease_breaks()
    opened = []

    def a_writer_opens_now():
        writer = "import sys; open(sys.argv[1], 'ab')"
        opened.append(subprocess.Popen([sys.executable, "-c", writer, path]))
        me = f" {os.getpid()} "
        deadline = time.monotonic() + 30
        while not any("BREAKING" in line and me in line for line in open("/proc/locks")):
            if time.monotonic() > deadline:
                sys.exit("the writer never broke the lease")
            time.sleep(0.01)
        print("lease broken while held", flush=True)

    print(writers.WriterProbe(proc=False, while_leased=a_writer_opens_now)(path), flush=True)
    print("writer exit", opened[0].wait(timeout=30) if opened else "no lease taken", flush=True)
    """
)


def break_the_lease(clip: Path, how: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BREAK_THE_LEASE, str(clip), how],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_a_writer_opening_while_the_lease_is_held_does_not_kill_the_prober(clip: Path) -> None:
    result = break_the_lease(clip, "as-the-daemon")
    assert result.returncode == 0, (result.returncode, result.stderr)
    assert result.stdout.splitlines() == ["lease broken while held", "None", "writer exit 0"]


def test_a_process_that_did_not_ignore_sigio_takes_no_lease(clip: Path) -> None:
    result = break_the_lease(clip, "plain")
    assert result.returncode == 0, (result.returncode, -signal.SIGIO, result.stderr)
    assert result.stdout.splitlines() == ["None", "writer exit no lease taken"]


def test_without_a_lease_or_a_proc_to_scan_the_answer_is_none(clip: Path, tmp_path: Path) -> None:
    """A container without /proc, or one hiding every process (hidepid): settle alone."""
    (tmp_path / "proc").mkdir()
    with held_open(clip, "ab"):
        assert WriterProbe(lease=False, proc_root=str(tmp_path / "proc"))(str(clip)) is None


def test_other_platforms_have_no_probe_and_leave_sigio_alone(
    clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """macOS and the rest: the settle rule alone decides (what `LINUX = False` stands for)."""
    monkeypatch.setattr(writers, "LINUX", False)
    with held_open(clip, "ab"):
        assert WriterProbe()(str(clip)) is None
    writers.ignore_lease_breaks()
    assert signal.getsignal(signal.SIGIO) is signal.SIG_DFL and not lease_breaks_harmless()
