"""The daemon's timers: settings with defaults, so tests never wait out wall-clock constants.

Hidden: not in the README's config reference (the defaults suit systemd's WatchdogSec=60 and
TimeoutStopSec=30, and MAVI's limits). Tests shorten them: in process with `Timers(...)`, and
for a daemon run as a subprocess with a `[timers]` table in its config file. They live at the
bottom of the house so the config can validate them and every layer takes its own from here.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from mavi_uploader.config.tomltable import ConfigError, Table, positive, show


@dataclass(frozen=True)
class Timers:
    """Seconds, every one > 0 but `timetable_shift`. Field names are the keys of the hidden
    `[timers]` table."""

    # service/: the supervisor and its periodic jobs
    tick: float = 1.0  # the supervisor's pass while running as a daemon (signals wake it)
    once_poll: float = 0.2  # the same for `run --once`, which watches for its end
    report_every: float = 5.0  # STATUS= and WATCHDOG=1 (at least twice per WatchdogSec)
    stale_beat: float = 30.0  # a settle/watcher loop silent this long withholds WATCHDOG=1
    rescan_stall: float = 900.0  # a rescan that made no progress this long does too
    watch_retry: float = 10.0  # look again for missing or replaced watch folders
    prune_every: float = 3600.0  # journal retention and after_upload left owed (also at start)
    stop_grace: float = 20.0  # a warm stop waits this long for its threads, in all
    guard_pause: float = 1.0  # before a loop that raised starts again
    once_unreachable: float = 120.0  # `run --once` ends after MAVI was silent this long
    # watch/
    unreadable_retry: float = 30.0  # a file that could not be read or stat'ed is tried again
    rescan_retry: float = 10.0  # a rescan that failed (journal unwritable) is tried again
    closed_quiet: float = 1.0  # a closed (moved-in) file takes the fast path after this quiet
    # upload/ (the backoffs double from their first delay, with jitter, up to core/retry's caps)
    retry_first: float = 1.0  # a failed attempt is tried again after 0.5-1x this, then 2x...
    confirm_first: float = 1.0  # MAVI is asked again about an unconfirmed upload after this
    first_check: float = 3.0  # the first check after an upload, until one is learned
    pause_probe_every: float = 60.0  # while paused (401/402/403): one probe per this long
    lease: float = 900.0  # a claim's lease, renewed while bytes move; longer than any wait
    progress_every: float = 2.0  # journal the bytes sent (and renew the lease) this often
    sweep_grace: float = 60.0  # a row finished this recently is left to its worker
    # service/handoffs.py: the on_done command and the webhook
    handoff_first: float = 5.0  # a failed hand-off is tried again after 0.5-1x this, then 2x...
    handoff_poll: float = 1.0  # an idle hand-off runner looks for due ones this often
    webhook_timeout: float = 30.0  # a webhook receiver's connect, then each byte of its answer
    # mavi/ (a request waits this long to connect, then this long for each byte of the answer)
    connect_timeout: float = 15.0
    read_timeout: float = 120.0
    # cli/
    wait_poll: float = 0.5  # `enqueue --wait` reads the journal this often
    # The bandwidth timetable is read at the local time plus this (any sign; 0 in service): a
    # test puts a window's end seconds away instead of waiting for a whole minute to come round.
    timetable_shift: float = 0.0


def finite(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


TIMER_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Timers))


def load_timers(raw: object, where: str) -> Timers:
    """The `[timers]` table of a config file (`where` names the file); ConfigError if wrong."""
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{where}timers = {show(raw)} is not valid: expected a table, e.g.\n"
            "[timers]\nwatch_retry = 0.5"
        )
    table = Table(raw, where, "[timers] ")
    table.check_keys(TIMER_NAMES, (), {})
    values: dict[str, Any] = {
        name: table.num(name, 0.0, "seconds > 0, e.g. 0.5", positive)
        for name in raw
        if name != "timetable_shift"
    }
    if "timetable_shift" in raw:
        values["timetable_shift"] = table.num("timetable_shift", 0.0, "seconds, e.g. -30", finite)
    timers = Timers(**values)
    if timers.lease <= timers.progress_every:
        raise ConfigError(
            f"{where}[timers] lease = {timers.lease:g} is not valid: it must be longer than"
            f" progress_every ({timers.progress_every:g}), which renews it"
        )
    return timers
