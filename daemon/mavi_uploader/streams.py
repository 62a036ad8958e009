"""Standard streams whose reader went away.

Apart from log.py, which uses it too, because the command line needs it on every report
command and log.py costs those commands its imports (logging, structlog) for nothing.
"""

from __future__ import annotations

import os


def silence_fd(stream: object) -> None:
    """Point a dead stdout/stderr descriptor at /dev/null: the interpreter flushes sys.stdout
    at exit (a failure there turns the exit code into 120) and children inherit the fd."""
    try:
        fd = getattr(stream, "fileno", lambda: -1)()
    except (OSError, ValueError):
        return
    if fd not in (1, 2):
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    except OSError:
        pass
