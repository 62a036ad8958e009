"""Which journal a config names: the fleet's shared one (journal_url) or this host's SQLite."""

from __future__ import annotations

import os

from mavi_uploader.config.model import Config
from mavi_uploader.journal import Fleet


def fleet_of(config: Config) -> Fleet | None:
    """The fleet this config joins; None without journal_url (SQLite in the state dir)."""
    if config.journal_url is None:
        return None
    # realpath, as watch/roots.WatchRoot takes it: a share's files are matched by that prefix.
    shares = {w.share: os.path.realpath(w.path) for w in config.watches if w.share is not None}
    return Fleet(
        url=config.journal_url,
        host_id=config.host_id,
        shares=shares,
        host_timeout=config.host_timeout_seconds,
    )


def journal_kind(config: Config) -> str:
    """What `status --json` says under "journal" before any journal exists."""
    return "sqlite" if config.journal_url is None else "postgresql"
