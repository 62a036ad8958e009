"""Carry out an install plan (install.py makes it): write files atomically, then run
systemctl / launchctl only where they can work, and otherwise say what to run; or, for
--dry-run, describe it."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from mavi_uploader.service.install import InstallError, InstallPlan, PlannedFile


def describe(plan: InstallPlan) -> str:
    """The --dry-run text: every file with its full content, then the commands and notes."""
    out = [f"would create directory {d}" for d in plan.directories]
    for f in plan.files:
        out += [f"--- would write {f.path} (mode {f.mode:04o})", f.content.rstrip("\n"), "---"]
    out += [f"would run: {shlex.join(c)}" for c in plan.commands]
    out += [f"would remove {p}" for p in plan.remove]
    out += [f"note: {n}" for n in plan.notes]
    return "\n".join(out) + "\n"


def default_runner(command: Sequence[str]) -> int:
    """Run a command with the terminal as its stdout/stderr; its exit code."""
    return subprocess.run(list(command), check=False).returncode


def _systemd_booted() -> bool:
    return Path("/run/systemd/system").is_dir()  # what sd_booted() checks


def _write(planned: PlannedFile) -> None:
    """Atomically: a reader (systemd, launchd) never sees half a file."""
    planned.path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=planned.path.parent, prefix=f".{planned.path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(planned.content)
            os.fchmod(f.fileno(), planned.mode)
        os.replace(tmp, planned.path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def apply(
    plan: InstallPlan,
    *,
    run: Callable[[Sequence[str]], int] = default_runner,
    which: Callable[[str], str | None] = shutil.which,
    booted: Callable[[], bool] = _systemd_booted,
) -> list[str]:
    """Carry out `plan`; returns what was done and what the user must still do, in order."""
    messages: list[str] = []
    try:
        for directory in plan.directories:
            directory.mkdir(parents=True, exist_ok=True)
        for planned in plan.files:
            _write(planned)
            messages.append(f"wrote {planned.path}")
    except OSError as exc:
        hint = " (--system needs root: use sudo)" if isinstance(exc, PermissionError) else ""
        raise InstallError(f"cannot write {exc.filename}: {exc.strerror}{hint}") from None
    for i, command in enumerate(plan.commands):
        todo = " && ".join(shlex.join(c) for c in plan.commands[i:])
        if which(command[0]) is None or (command[0] == "systemctl" and not booted()):
            why = "not available" if which(command[0]) is None else "systemd is not running here"
            # Uninstalling where nothing runs: removing the files below is all there is to do.
            todo = "skipped" if plan.remove else f"run this yourself: {todo}"
            messages.append(f"{command[0]}: {why}; {todo}")
            break
        code = run(command)
        if code != 0 and command[:2] != ("launchctl", "bootout"):  # bootout: maybe not loaded
            messages.append(f"`{shlex.join(command)}` failed (exit {code}); fix it, then: {todo}")
            break
        messages.append(f"ran {shlex.join(command)}")
    for path in plan.remove:
        try:
            if path.is_symlink() or path.exists():
                path.unlink()
                messages.append(f"removed {path}")
        except OSError as exc:
            raise InstallError(f"cannot remove {path}: {exc.strerror}") from None
    return messages + list(plan.notes)
