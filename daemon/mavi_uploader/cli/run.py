"""`run`: the daemon in the foreground, with progress bars when a person is watching."""

from __future__ import annotations

import argparse
import sys

from mavi_uploader.cli.checks import require_watch_folders
from mavi_uploader.cli.common import FAILURES, failed
from mavi_uploader.cli.progress import UploadBars
from mavi_uploader.config.model import Config
from mavi_uploader.config.settings import load_config
from mavi_uploader.log import configure_logging, get_logger
from mavi_uploader.service.daemon import Daemon

log = get_logger(__name__)


def main(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except FAILURES as exc:
        return failed(exc)


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
