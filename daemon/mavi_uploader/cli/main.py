"""The `mavi-uploader` command line: each command is a few lines over the modules below it."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from mavi_uploader import __version__
from mavi_uploader.cli.checks import report, require_watch_folders, run_checks
from mavi_uploader.cli.progress import UploadBars
from mavi_uploader.cli.views import (
    bandwidth_document,
    event_document,
    file_documents,
    history_text,
    list_text,
    owed_by_file,
    status_document,
    status_text,
)
from mavi_uploader.cli.waiting import follow
from mavi_uploader.config.model import Config
from mavi_uploader.config.settings import ConfigError, load_config
from mavi_uploader.core.records import State, display_path
from mavi_uploader.journal import HostTaken, JournalError, JournalSettingError, open_for_reports
from mavi_uploader.log import configure_logging, get_logger, silence_fd
from mavi_uploader.redaction import register_secret
from mavi_uploader.service import commands
from mavi_uploader.service.daemon import Daemon
from mavi_uploader.service.fleet import fleet_of, journal_kind
from mavi_uploader.service.install import InstallError, plan_install, plan_uninstall
from mavi_uploader.service.install_apply import apply, describe
from mavi_uploader.service.lock import AlreadyRunning, probe

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_LOCKED = 0, 1, 2, 3
log = get_logger(__name__)


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
    if args.command == "run":
        return _dispatch(args)
    try:
        code = _dispatch(args)
        sys.stdout.flush()  # here, not at exit: a broken pipe there prints a traceback
        sys.stderr.flush()
        return code
    except BrokenPipeError:
        silence_fd(sys.stdout)  # the exit flush finds nothing to fail on
        silence_fd(sys.stderr)
        return EXIT_FAILURE


def _dispatch(args: argparse.Namespace) -> int:
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "check":
            return _check(args)
        if args.command in ("install-service", "uninstall-service"):
            return _service(args)
        configure_logging("console", stream=sys.stderr)
        config = load_config(config_path=args.config, require_api_key=False)
        for secret in config.secrets:
            register_secret(secret)
        handler = {
            "status": _status,
            "list": _list,
            "history": _history,
            "enqueue": _enqueue,
            "forget": _forget,
            "retry": _retry,
        }[args.command]
        return handler(args, config)
    except (ConfigError, AlreadyRunning, InstallError, JournalError) as exc:
        kind = "config error: " if isinstance(exc, ConfigError) else ""
        print(f"mavi-uploader: {kind}{exc}", file=sys.stderr)
        if isinstance(exc, (AlreadyRunning, HostTaken)):
            return EXIT_LOCKED  # this state dir, or this host_id in the fleet, is taken
        if isinstance(exc, JournalSettingError):
            return EXIT_USAGE  # journal_url names no usable database: only config fixes it
        return EXIT_FAILURE if isinstance(exc, JournalError) else EXIT_USAGE


def _run(args: argparse.Namespace) -> int:
    configure_logging(args.log_format)

    def reload_config() -> Config:  # at start and on SIGHUP, which keeps a refused one out
        config = load_config(config_path=args.config, watch_dirs=args.watch)
        require_watch_folders(config)
        return config

    config = reload_config()
    for warning in config.warnings:
        log.warning("config", problem=warning)
    if args.log_format == "json" or not sys.stdout.isatty():
        daemon = Daemon(config, once=args.once, reload_config=reload_config)
        daemon.install_signal_handlers()
        return daemon.run()
    with UploadBars() as bars:  # a person is watching: live bars, log lines above them
        configure_logging("console", stream=bars.log_stream)
        daemon = Daemon(
            config, once=args.once, reload_config=reload_config, show_progress=bars.update
        )
        daemon.install_signal_handlers()
        return daemon.run()


def _service(args: argparse.Namespace) -> int:
    if args.command == "install-service":
        # Without --config the plan reads what the service itself will read.
        config = (
            load_config(config_path=args.config, require_api_key=False) if args.config else None
        )
        plan = plan_install(system=args.system, config=config, user=args.run_as)
    else:
        plan = plan_uninstall(system=args.system)
    if args.dry_run:
        print(describe(plan), end="")
        return EXIT_OK
    messages = apply(plan)
    print("\n".join(messages))
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    def load() -> Config:
        config = load_config(config_path=args.config)
        for secret in config.secrets:
            register_secret(secret)
        return config

    findings = run_checks(load)
    print(report(findings))
    if any(f.config_error for f in findings):
        return EXIT_USAGE
    return EXIT_OK if all(f.ok for f in findings) else EXIT_FAILURE


def _status(args: argparse.Namespace, config: Config) -> int:
    journal = open_for_reports(config.state_dir, fleet_of(config))
    try:
        holder = probe(config.state_dir)
        doc = status_document(
            config.state_dir, journal, holder, kind=journal_kind(config),
            bandwidth=bandwidth_document(config),
        )  # fmt: skip
    finally:
        if journal:
            journal.close()
    print(json.dumps(doc, indent=2) if args.json else status_text(doc))
    return EXIT_OK


def _list(args: argparse.Namespace, config: Config) -> int:
    journal = open_for_reports(config.state_dir, fleet_of(config))
    state = State(args.state) if args.state else None
    records = journal.files(state, args.limit) if journal else []
    if args.json:
        print(json.dumps(file_documents(journal, records) if journal else [], indent=2))
    else:
        print(list_text(records, owed_by_file(journal, records) if journal else None))
    return EXIT_OK


def _history(args: argparse.Namespace, config: Config) -> int:
    journal = open_for_reports(config.state_dir, fleet_of(config))
    records = commands.find(journal, args.target) if journal is not None else []
    if journal is None or not records:
        print(f"mavi-uploader: no file {args.target!r} in the journal", file=sys.stderr)
        return EXIT_FAILURE
    if args.json:
        docs = [
            {"file": doc, "events": [event_document(e) for e in journal.history(doc["id"])]}
            for doc in file_documents(journal, records)
        ]
        print(json.dumps(docs, indent=2))
    else:
        print("\n\n".join(history_text(r, journal.history(r.id)) for r in records))
    return EXIT_OK


def _forget(args: argparse.Namespace, config: Config) -> int:
    journal = commands.open_for_command(config)
    problems = 0
    for target in args.targets:
        records = commands.find(journal, target)
        if not records:
            print(f"{target}: not in the journal; nothing forgotten", file=sys.stderr)
            problems += 1
            continue
        for result in commands.forget(journal, config, records):
            rec = result.record
            if not result.forgotten:
                print(f"#{rec.id} is {rec.state.value}: only finished files", file=sys.stderr)
                problems += 1
                continue
            print(f"forgot #{rec.id} {display_path(rec.path)} ({rec.state.value})")
            for new in result.sighted:
                print(f"{new.state.value} #{new.id} {display_path(new.path)}: to be uploaded")
    journal.close()
    return EXIT_FAILURE if problems else EXIT_OK


def _enqueue(args: argparse.Namespace, config: Config) -> int:
    journal = commands.open_for_command(config)
    refused = 0
    queued: dict[int, State] = {}  # file id -> the state printed for it
    for result in commands.enqueue(journal, config, args.paths, verify=not args.no_verify):
        rec = result.record
        if result.waiting is not None:
            where = f"#{rec.id} " if rec is not None else ""
            print(
                f"settling {where}{display_path(result.path)}: {result.waiting}; it waits until"
                " it is whole (enqueue --no-verify sends it as it is)",
                file=sys.stderr,
            )
            refused += 1
        elif rec is None:
            print(f"{display_path(result.path)}: {result.refused}", file=sys.stderr)
            refused += 1
        elif result.refused is not None:
            shown = display_path(result.path)
            print(f"skipped #{rec.id} {shown}: {result.refused}", file=sys.stderr)
            refused += 1
        else:
            queued[rec.id] = rec.state
            print(f"{rec.state.value} #{rec.id} {display_path(result.path)}")
    try:
        if args.wait and queued:
            if not probe(config.state_dir).running:
                print(
                    "no daemon is running to upload them: start `mavi-uploader run`",
                    file=sys.stderr,
                )
                return EXIT_FAILURE
            poll = config.timers.wait_poll
            if not follow(journal, list(queued), reported=queued, poll=poll):  # no line twice
                refused += 1
    finally:
        journal.close()
    return EXIT_FAILURE if refused else EXIT_OK


def _retry(args: argparse.Namespace, config: Config) -> int:
    if not args.ids and not args.all_failed:
        print("mavi-uploader retry: give file IDs or --all-failed", file=sys.stderr)
        return EXIT_USAGE
    journal = commands.open_for_command(config)
    ids = [r.id for r in journal.in_states([State.FAILED])] if args.all_failed else args.ids
    problems = 0
    for file_id in ids:
        moved = commands.retry(journal, file_id)
        if moved is None:
            rec = journal.get(file_id)
            now = f"is {rec.state.value}" if rec else "does not exist"
            print(f"#{file_id} {now}; only failed files can be retried", file=sys.stderr)
            problems += 1
        else:
            print(f"queued #{file_id} {display_path(moved.path)}")
    journal.close()
    return EXIT_FAILURE if problems else EXIT_OK
