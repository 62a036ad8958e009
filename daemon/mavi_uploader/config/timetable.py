"""bandwidth_limit: one rate, or rclone's timetable of rates by time of day and weekday.

A timetable is entries `[WEEKDAY-]HH:MM,RATE` separated by spaces or semicolons, as rclone's
`--bwlimit` takes them. An entry without a weekday stands for that time on every day. The entry
in force at a moment is the latest one at or before it in the week; before the week's first
entry the week's last one is still in force (it wraps round), as rclone's documentation says
(its code wraps round to the entry written last: the same for entries written in week order).
Of two entries for the same minute the one written later wins, as in rclone. RATE is what a
plain value may be (bytes per second: "512k", "2M", "2MiB", 0; not rclone's KiB), `off`
(unlimited) or `pause` (no new upload starts).

Pure: the caller reads the local wall clock (naive datetimes) and passes it in, so tests run
on an injected clock, free of DST; the daemon re-reads the timetable when `until` is reached.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from mavi_uploader.units import BANDWIDTH_HINT, parse_bandwidth

DAY = 24 * 60  # minutes
WEEK = 7 * DAY
_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_ENTRY = re.compile(r"(?:([^-]*)-)?([0-9]{2}):([0-9]{2}),(.*)", re.DOTALL)
EXAMPLE = '"Mon-08:00,512k 08:00,2M 19:00,off 23:00,pause"'
TIMETABLE_HINT = (
    f'a timetable of "[WEEKDAY-]HH:MM,RATE" entries separated by spaces, e.g. {EXAMPLE}'
    ' (RATE: bytes per second like "512k" or "2M", off or pause)'
)
LIMIT_HINT = f'{BANDWIDTH_HINT}; "off"; "pause"; or {TIMETABLE_HINT}'


@dataclass(frozen=True)
class Limit:
    """One rate: bytes per second (0 = unlimited), or a pause (no new upload starts)."""

    bytes_per_second: int
    paused: bool = False
    text: str = field(default="", compare=False)  # as written, for `status`

    @property
    def label(self) -> str:
        """ "pause", "off", or the rate as written ("2M")."""
        if self.paused:
            return "pause"
        return "off" if self.bytes_per_second == 0 else self.text or str(self.bytes_per_second)


OFF = Limit(0, text="off")
PAUSE = Limit(0, paused=True, text="pause")


@dataclass(frozen=True)
class InForce:
    limit: Limit
    # The pace of uploads in flight: the limit's rate; in a pause, the rate of the latest entry
    # before it that is not a pause (uploads that started before the window finish at it).
    pace: int
    until: datetime | None  # when the limit in force next changes; None: never


@dataclass(frozen=True)
class Timetable:
    """Limits by minute of the week (Monday 00:00 = 0), sorted, one per minute."""

    entries: tuple[tuple[int, Limit], ...]
    text: str = field(default="", compare=False)  # as configured

    @classmethod
    def steady(cls, limit: Limit | int, text: str = "") -> Timetable:
        """The same limit all week: a plain value."""
        held = limit if isinstance(limit, Limit) else Limit(limit, text=str(limit))
        return cls(((0, held),), text or held.label)

    def in_force(self, at: datetime) -> InForce:
        """The limit in force at `at` (local wall-clock time) and when it next changes."""
        minute = at.weekday() * DAY + at.hour * 60 + at.minute
        index = bisect.bisect_right([m for m, _ in self.entries], minute) - 1  # -1: wraps
        limit = self.entries[index][1]
        return InForce(limit, self._pace(index), self._next_change(index, minute, at))

    def _pace(self, index: int) -> int:
        count = len(self.entries)
        for back in range(count):
            limit = self.entries[(index - back) % count][1]
            if not limit.paused:
                return limit.bytes_per_second
        return 0  # a pause all week: nothing started before it is limited either

    def _next_change(self, index: int, minute: int, at: datetime) -> datetime | None:
        count = len(self.entries)
        limit = self.entries[index][1]
        for ahead in range(1, count):
            start, later = self.entries[(index + ahead) % count]
            if later != limit:
                wait = (start - minute) % WEEK or WEEK
                return at.replace(second=0, microsecond=0) + timedelta(minutes=wait)
        return None


@dataclass(frozen=True)
class LocalClock:
    """The local wall-clock time the timetable is read at: now plus `shift` (the hidden
    `timetable_shift` timer, 0 in service)."""

    shift: float = 0.0

    def __call__(self) -> datetime:
        return datetime.now() + timedelta(seconds=self.shift)

    def real(self, wall: datetime) -> datetime:
        """A time of this clock as the real moment, with the local UTC offset (for ISO-8601)."""
        return (wall - timedelta(seconds=self.shift)).astimezone()


def parse_bandwidth_limit(value: str | int) -> Timetable:
    """bandwidth_limit as configured: a plain value (bytes/s, "20M", off, pause) or, when it
    holds a comma, a timetable. ValueError says what is wrong and how to write it."""
    if isinstance(value, str) and "," in value:
        return _parse_timetable(value)
    if isinstance(value, str) and value.strip().lower() in ("off", "pause"):
        word = value.strip().lower()
        return Timetable.steady(PAUSE if word == "pause" else OFF)
    try:
        rate = parse_bandwidth(value)
    except ValueError:
        raise ValueError(f"expected {LIMIT_HINT}") from None
    return Timetable.steady(Limit(rate, text=str(value).strip()))


def _parse_timetable(text: str) -> Timetable:
    by_minute: dict[int, Limit] = {}
    tokens = [t for t in re.split(r"[\s;]+", text) if t]
    for token in tokens:
        weekday, minute, limit = _parse_entry(token)
        for day in range(7) if weekday is None else (weekday,):
            by_minute[day * DAY + minute] = limit  # later entries win, as in rclone
    return Timetable(tuple(sorted(by_minute.items(), key=lambda e: e[0])), text.strip())


def _parse_entry(token: str) -> tuple[int | None, int, Limit]:
    """(weekday, minute of the day, limit) of one entry; Monday is weekday 0."""
    match = _ENTRY.fullmatch(token)
    if match is None:
        raise ValueError(f"entry {token!r} is not [WEEKDAY-]HH:MM,RATE; expected {TIMETABLE_HINT}")
    day, hours, minutes, rate = match.groups()
    weekday = None
    if day is not None:
        names = [n for n in _DAYS if day.lower() in (n, n[:3])]
        if not names:
            raise ValueError(
                f"entry {token!r}: {day!r} is not a weekday (Mon, Tue, ... or Monday, ...);"
                f" expected {TIMETABLE_HINT}"
            )
        weekday = _DAYS.index(names[0])
    if int(hours) > 23 or int(minutes) > 59:
        raise ValueError(
            f"entry {token!r}: {hours}:{minutes} is not a time from 00:00 to 23:59;"
            f" expected {TIMETABLE_HINT}"
        )
    return weekday, int(hours) * 60 + int(minutes), _parse_rate(token, rate)


def _parse_rate(token: str, rate: str) -> Limit:
    word = rate.lower()
    if word in ("off", "pause"):
        return PAUSE if word == "pause" else OFF
    if ":" in rate:
        raise ValueError(
            f"entry {token!r}: upload:download pairs are rclone's; this daemon only uploads,"
            " so give one rate"
        )
    try:
        return Limit(parse_bandwidth(rate), text=rate)
    except ValueError:
        raise ValueError(
            f"entry {token!r}: rate {rate!r} is not understood; expected {TIMETABLE_HINT}"
        ) from None
