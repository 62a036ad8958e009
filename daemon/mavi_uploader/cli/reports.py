"""`status`, `list` and `history`: read the journal and print it.

Scripts and monitoring run these every few seconds, so this module imports only what reading
needs: the config, the journal and the views; not the daemon's HTTP, watching or terminal
libraries (tests/test_startup.py holds it to that).
"""

from __future__ import annotations

import argparse
import json
import sys

from mavi_uploader.cli.common import FAILURES, command_config, failed
from mavi_uploader.cli.exits import EXIT_FAILURE, EXIT_OK
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
from mavi_uploader.config.model import Config
from mavi_uploader.core.records import State
from mavi_uploader.journal import open_for_reports
from mavi_uploader.service.fleet import fleet_of, journal_kind
from mavi_uploader.service.lock import probe
from mavi_uploader.service.targets import find


def main(args: argparse.Namespace) -> int:
    try:
        config = command_config(args)
        if config.journal_url is not None:
            # Only in fleet mode, where psycopg's pool logs through stdlib logging and its lines
            # must pass the redaction: logging's set-up (structlog, ~50 ms) is imported here
            # because a report on SQLite logs nothing and must start fast.
            from mavi_uploader.log import configure_logging  # noqa: PLC0415

            configure_logging("console", stream=sys.stderr)
        handler = {"status": _status, "list": _list, "history": _history}[args.command]
        return handler(args, config)
    except FAILURES as exc:
        return failed(exc)


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
    records = find(journal, args.target) if journal is not None else []
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
