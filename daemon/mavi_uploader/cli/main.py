"""The `mavi-uploader` command line: parse the arguments, then hand the command to its module.

A command's module is imported only once that command is chosen: `status`, `list`, `history`
and `--version` are run by scripts and monitoring every few seconds, and must not pay for
what the daemon imports (requests, watchdog, rich, structlog: ~0.2 s a start).
tests/test_startup.py checks it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import cast

from mavi_uploader import __version__
from mavi_uploader.cli.exits import EXIT_FAILURE
from mavi_uploader.core.states import State
from mavi_uploader.streams import silence_fd

Command = Callable[[argparse.Namespace], int]

# Which module of mavi_uploader.cli runs each command (its `main(args)`).
MODULES = {
    "run": "run",
    "status": "reports",
    "list": "reports",
    "history": "reports",
    "enqueue": "edits",
    "forget": "edits",
    "retry": "edits",
    "check": "admin",
    "install-service": "admin",
    "uninstall-service": "admin",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mavi-uploader",
        description="Upload finished videos from watched folders to Memories.ai (MAVI).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", help="config file (default: see README)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", parents=[common], help="run the daemon in the foreground")
    run.add_argument(
        "--watch",
        metavar="DIR",
        action="append",
        default=[],
        help="watch this folder (repeatable; replaces the config's [[watch]])",
    )
    run.add_argument(
        "--once",
        action="store_true",
        help="rescan, upload what settles, wait for confirmation, exit",
    )
    run.add_argument("--log-format", choices=["auto", "json", "console"], default="auto")

    status = sub.add_parser("status", parents=[common], help="counts per state, pause, daemon")
    status.add_argument("--json", action="store_true")

    listing = sub.add_parser("list", parents=[common], help="files and their states")
    listing.add_argument("--state", choices=[s.value for s in State])
    listing.add_argument("--limit", type=_positive_int, default=50, help="at most N files")
    listing.add_argument("--json", action="store_true")

    history = sub.add_parser("history", parents=[common], help="the journal of one file")
    history.add_argument("target", metavar="PATH|ID")
    history.add_argument("--json", action="store_true")

    enqueue = sub.add_parser("enqueue", parents=[common], help="queue files now (no settle wait)")
    enqueue.add_argument("paths", metavar="PATH", nargs="+")
    enqueue.add_argument(
        "--wait", action="store_true", help="follow the files (progress bars) until done"
    )
    enqueue.add_argument(
        "--no-verify",
        action="store_true",
        help="send a file as it is, even if its container is not whole",
    )

    sub.add_parser(
        "check", parents=[common], help="validate config, folders, key and API; print fixes"
    )

    forget = sub.add_parser(
        "forget", parents=[common], help="drop finished files from the journal (PATH or ID)"
    )
    forget.add_argument("targets", metavar="PATH|ID", nargs="+")

    install = sub.add_parser(
        "install-service",
        parents=[common],
        help="write and enable a systemd unit (Linux) or launchd agent (macOS)",
    )
    install.add_argument("--system", action="store_true", help="system-wide (root), not per user")
    install.add_argument("--dry-run", action="store_true", help="print what would be done")
    install.add_argument("--run-as", metavar="USER", help="--system: the service's user")
    uninstall = sub.add_parser(
        "uninstall-service", parents=[common], help="disable and remove the service"
    )
    uninstall.add_argument("--system", action="store_true")
    uninstall.add_argument("--dry-run", action="store_true")

    retry = sub.add_parser("retry", parents=[common], help="move failed files back to queued")
    retry.add_argument("ids", metavar="ID", nargs="*", type=int)
    retry.add_argument("--all-failed", action="store_true")
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. A report whose reader went away (`list --json | head -c 10`) ends
    quietly, without a traceback, with exit 1: the contract's runtime failure (its output
    did not all arrive).

    BrokenPipeError is caught rather than SIGPIPE's default action restored: SIGPIPE would
    also kill `check` (HTTPS to MAVI) silently on a reset connection instead of reporting it,
    and catching lets `finally` blocks close the journal. `run` is left out: its log stream
    handles a reader going away and keeps the daemon running.
    """
    args = _parser().parse_args(argv)
    command = _command(args.command)
    if args.command == "run":
        return command(args)
    try:
        code = command(args)
        sys.stdout.flush()  # here, not at exit: a broken pipe there prints a traceback
        sys.stderr.flush()
        return code
    except BrokenPipeError:
        silence_fd(sys.stdout)  # the exit flush finds nothing to fail on
        silence_fd(sys.stderr)
        return EXIT_FAILURE


def _command(name: str) -> Command:
    module = importlib.import_module(f"mavi_uploader.cli.{MODULES[name]}")
    return cast(Command, module.main)
