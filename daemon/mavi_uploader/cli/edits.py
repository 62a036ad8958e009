"""`enqueue`, `forget` and `retry`: the commands that change the journal by hand."""

from __future__ import annotations

import argparse
import sys

from mavi_uploader.cli.common import FAILURES, command_config, failed
from mavi_uploader.cli.exits import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from mavi_uploader.cli.waiting import follow
from mavi_uploader.config.model import Config
from mavi_uploader.core.records import State, display_path
from mavi_uploader.log import configure_logging
from mavi_uploader.service import commands
from mavi_uploader.service.lock import probe
from mavi_uploader.service.targets import find


def main(args: argparse.Namespace) -> int:
    try:
        configure_logging("console", stream=sys.stderr)
        config = command_config(args)
        handler = {"enqueue": _enqueue, "forget": _forget, "retry": _retry}[args.command]
        return handler(args, config)
    except FAILURES as exc:
        return failed(exc)


def _forget(args: argparse.Namespace, config: Config) -> int:
    journal = commands.open_for_command(config)
    problems = 0
    for target in args.targets:
        records = find(journal, target)
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
