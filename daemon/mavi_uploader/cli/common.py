"""What the commands share: how a known failure ends, and the config of a command run by hand."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from mavi_uploader.cli.exits import EXIT_FAILURE, EXIT_LOCKED, EXIT_USAGE
from mavi_uploader.config.model import Config
from mavi_uploader.config.settings import ConfigError, load_config
from mavi_uploader.journal import HostTaken, JournalError, JournalSettingError
from mavi_uploader.redaction import register_secret
from mavi_uploader.service.lock import AlreadyRunning

if TYPE_CHECKING:  # only install-service raises it; its module is not light
    from mavi_uploader.service.install import InstallError

# The failures every command reports as one line and an exit code, never a traceback.
FAILURES = (ConfigError, AlreadyRunning, JournalError)


def failed(exc: ConfigError | AlreadyRunning | JournalError | InstallError) -> int:
    """Print a known failure and return its exit code."""
    kind = "config error: " if isinstance(exc, ConfigError) else ""
    print(f"mavi-uploader: {kind}{exc}", file=sys.stderr)
    if isinstance(exc, (AlreadyRunning, HostTaken)):
        return EXIT_LOCKED  # this state dir, or this host_id in the fleet, is taken
    if isinstance(exc, JournalSettingError):
        return EXIT_USAGE  # journal_url names no usable database: only config fixes it
    return EXIT_FAILURE if isinstance(exc, JournalError) else EXIT_USAGE


def command_config(args: argparse.Namespace) -> Config:
    """The config of a command that reads or edits the journal: it needs no API key, and
    whatever secrets it holds are kept out of what the command prints."""
    config = load_config(config_path=args.config, require_api_key=False)
    for secret in config.secrets:
        register_secret(secret)
    return config
