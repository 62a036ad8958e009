"""bandwidth_limit as a timetable (config/timetable.py): rclone's syntax, what is in force when.

Times are naive local wall-clock datetimes, as the daemon reads them: no DST in these tests.
2024-01-01 is a Monday.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mavi_uploader.config.settings import ConfigError, load_config
from mavi_uploader.config.timetable import (
    OFF,
    PAUSE,
    Limit,
    LocalClock,
    Timetable,
    parse_bandwidth_limit,
)

MON = datetime(2024, 1, 1)  # a Monday, 00:00
KEY = "mk-test-0123456789abcdef"


def at(day: int, hhmm: str) -> datetime:
    """Day 0 = Monday 2024-01-01; "HH:MM"."""
    hours, minutes = hhmm.split(":")
    return MON + timedelta(days=day, hours=int(hours), minutes=int(minutes))


def rate(table: Timetable, when: datetime) -> str:
    return table.in_force(when).limit.label


# ---- plain values keep working exactly as before -------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, Limit(0)), ("0", Limit(0)), (1000, Limit(1000)), ("20M", Limit(20_000_000)),
        (" 20 MB ", Limit(20_000_000)), ("2MiB", Limit(2 * 1024**2)),
        ("off", OFF), ("OFF", OFF), ("pause", PAUSE), (" Pause ", PAUSE),
    ],
)  # fmt: skip
def test_a_plain_value_is_one_limit_all_week(value: str | int, expected: Limit) -> None:
    table = parse_bandwidth_limit(value)
    assert table == Timetable.steady(expected)
    force = table.in_force(at(3, "12:34"))
    assert (force.limit, force.until) == (expected, None)


def test_a_plain_value_keeps_its_text_for_status() -> None:
    assert parse_bandwidth_limit("20M").in_force(MON).limit.label == "20M"
    assert parse_bandwidth_limit(1000).in_force(MON).limit.label == "1000"
    assert parse_bandwidth_limit(0).in_force(MON).limit.label == "off"


# ---- rclone's examples, read as its documentation reads them -------------------------------

DAYTIME = "08:00,512k 12:00,10M 13:00,512k 18:00,30M 23:00,off"


@pytest.mark.parametrize(
    ("when", "limit", "until"),
    [
        (at(0, "00:00"), "off", at(0, "08:00")),  # before the first entry: the last one wraps
        (at(0, "07:59"), "off", at(0, "08:00")),
        (at(0, "08:00"), "512k", at(0, "12:00")),  # an entry is in force from its minute
        (at(2, "12:30"), "10M", at(2, "13:00")),
        (at(4, "13:00"), "512k", at(4, "18:00")),
        (at(5, "22:59"), "30M", at(5, "23:00")),
        (at(6, "23:30"), "off", at(7, "08:00")),  # Sunday night: wraps to Monday's 08:00
    ],
)  # fmt: skip
def test_entries_without_a_weekday_apply_every_day(
    when: datetime, limit: str, until: datetime
) -> None:
    force = parse_bandwidth_limit(DAYTIME).in_force(when)
    assert (force.limit.label, force.until) == (limit, until)


WEEKLY = "Mon-00:00,512 Fri-23:59,10M Sat-10:00,1M Sun-20:00,off"


@pytest.mark.parametrize(
    ("when", "limit", "until"),
    [
        (at(0, "00:00"), "512", at(4, "23:59")),
        (at(3, "15:00"), "512", at(4, "23:59")),
        (at(4, "23:59"), "10M", at(5, "10:00")),
        (at(5, "10:00"), "1M", at(6, "20:00")),
        (at(6, "01:00"), "1M", at(6, "20:00")),  # Sunday morning: still Saturday's entry
        (at(6, "20:00"), "off", at(7, "00:00")),
    ],
)  # fmt: skip
def test_weekday_entries_hold_until_the_next_one(
    when: datetime, limit: str, until: datetime
) -> None:
    force = parse_bandwidth_limit(WEEKLY).in_force(when)
    assert (force.limit.label, force.until) == (limit, until)


def test_rclones_expansion_example_reads_the_same_as_its_expanded_form() -> None:
    short = parse_bandwidth_limit("Mon-00:00,512 12:00,1M Sun-20:00,off")
    days = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
    expanded = parse_bandwidth_limit(
        "Mon-00:00,512 " + " ".join(f"{d}-12:00,1M" for d in days) + " Sun-20:00,off"
    )
    assert short == expanded
    assert rate(short, at(1, "11:00")) == "1M"  # Monday noon's 1M holds till Tuesday noon


def test_weekdays_may_be_whole_words_in_any_case_and_entries_split_by_semicolons() -> None:
    words = parse_bandwidth_limit("monday-08:00,1M;FRIDAY-18:00,off")
    assert words == parse_bandwidth_limit("Mon-08:00,1M Fri-18:00,off")


def test_entries_may_be_written_in_any_order() -> None:
    assert parse_bandwidth_limit("23:00,off 08:00,512k") == parse_bandwidth_limit(
        "08:00,512k 23:00,off"
    )
    assert rate(parse_bandwidth_limit("23:00,off 08:00,512k"), at(6, "03:00")) == "off"


def test_of_two_entries_for_one_minute_the_later_written_wins() -> None:
    table = parse_bandwidth_limit("Mon-08:00,1M 08:00,2M Tue-08:00,3M")
    assert rate(table, at(0, "09:00")) == "2M"  # the every-day entry came later
    assert rate(table, at(1, "09:00")) == "3M"


def test_a_change_to_the_same_rate_is_no_change() -> None:
    table = parse_bandwidth_limit("08:00,1M 12:00,1000k 18:00,off")
    force = table.in_force(at(0, "09:00"))
    assert force.until == at(0, "18:00")  # 12:00 keeps 1 MB/s, however it is written
    assert parse_bandwidth_limit("08:00,1M 20:00,1M").in_force(MON).until is None


# ---- pause and off -------------------------------------------------------------------------


def test_a_pause_window_keeps_the_rate_before_it_for_uploads_in_flight() -> None:
    table = parse_bandwidth_limit("08:00,2M 09:00,pause 17:00,off 23:00,pause")
    day = table.in_force(at(0, "10:00"))
    assert (day.limit, day.pace, day.until) == (PAUSE, 2_000_000, at(0, "17:00"))
    night = table.in_force(at(0, "23:30"))
    assert (night.limit, night.pace, night.until) == (PAUSE, 0, at(1, "08:00"))  # after off
    assert parse_bandwidth_limit("pause").in_force(MON).pace == 0


def test_off_and_zero_are_both_unlimited() -> None:
    table = parse_bandwidth_limit("08:00,0 12:00,off")
    assert table.in_force(at(0, "09:00")).limit == OFF
    assert table.in_force(at(0, "09:00")).until is None  # 0 and off: the same limit


# ---- mistakes: a clear ValueError naming the entry -----------------------------------------


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("25:00,1M", "'25:00,1M': 25:00 is not a time from 00:00 to 23:59"),
        ("08:60,1M", "08:60 is not a time"),
        ("8:00,1M", "'8:00,1M' is not [WEEKDAY-]HH:MM,RATE"),
        ("08:00", "is not understood"),  # no comma: read as a plain value
        ("08:00 2M", "is not understood"),
        ("Mox-08:00,1M", "'Mox' is not a weekday"),
        ("-08:00,1M", "'' is not a weekday"),
        ("08:00,fast", "rate 'fast' is not understood"),
        ("08:00,", "rate '' is not understood"),
        ("08:00,0.5", "rate '0.5' is not understood"),
        ("08:00,10M:1M", "upload:download pairs are rclone's"),
        ("08:00,1M,2M", "rate '1M,2M' is not understood"),
        (",", "',' is not [WEEKDAY-]HH:MM,RATE"),
        ("08:00,1M 09:00", "'09:00' is not [WEEKDAY-]HH:MM,RATE"),
        ("", "is not understood"),
    ],
)
def test_a_mistake_names_the_entry_and_the_way_to_write_it(value: str, says: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_bandwidth_limit(value)
    message = str(info.value)
    assert says in message or "expected bytes per second" in message, message
    assert "HH:MM,RATE" in message or "upload:download" in message


@pytest.mark.parametrize(
    ("toml", "shown", "fix"),
    [
        ('bandwidth_limit = "08:00,2M 25:00,off"', '"08:00,2M 25:00,off"', "'25:00,off'"),
        ('bandwidth_limit = "Mon-8:00,2M"', '"Mon-8:00,2M"', "[WEEKDAY-]HH:MM,RATE"),
        ('bandwidth_limit = "08:00,2M:1M"', '"08:00,2M:1M"', "give one rate"),
        (
            'bandwidth_limit = "fast"',
            '"fast"',
            '"20M", "1.5G", "2MiB"; "off"; "pause"; or a timetable',
        ),
    ],
)
def test_a_bad_timetable_in_the_file_is_a_config_error_naming_key_and_fix(
    tmp_path: Path, toml: str, shown: str, fix: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(toml + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(config_path=str(path), env={"MAVI_API_KEY": KEY})
    message = str(info.value)
    assert message.startswith(f"{path}: bandwidth_limit = {shown} is not valid: "), message
    assert fix in message, message


def test_a_timetable_in_the_file_is_loaded(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('bandwidth_limit = "Mon-08:00,512k 19:00,off"\n')
    config = load_config(config_path=str(path), env={"MAVI_API_KEY": KEY})
    assert config.bandwidth_limit == parse_bandwidth_limit("Mon-08:00,512k 19:00,off")
    assert config.bandwidth_limit.text == "Mon-08:00,512k 19:00,off"


def test_the_local_clock_is_shifted_and_back() -> None:
    clock = LocalClock(shift=3600.0)
    before = datetime.now()
    read = clock()
    assert timedelta(seconds=3599) < read - before < timedelta(seconds=3601)
    assert abs(clock.real(read).timestamp() - before.timestamp()) < 1.0


# ---- properties ----------------------------------------------------------------------------

ENTRY_PIECES = st.sampled_from(
    ["Mon-", "tue-", "Sunday-", "Xyz-", "-", "", "08:00", "23:59", "24:00", "7:5", ",", ";",
     " ", "512k", "2M", "off", "pause", "0", "1.5G", "2MiB", ":", "\t", "\n", "1e3", "9" * 30]
)  # fmt: skip


def parse_or_error(value: str | int) -> Timetable | None:
    """The contract: a timetable or a ValueError, nothing else (other errors fail the test)."""
    try:
        return parse_bandwidth_limit(value)
    except ValueError as exc:
        assert str(exc)  # a message to show
        return None


@settings(max_examples=300, deadline=1000)
@given(st.one_of(st.text(max_size=200), st.integers(), st.lists(ENTRY_PIECES).map("".join)))
def test_any_value_is_a_timetable_or_a_clear_value_error(value: str | int) -> None:
    table = parse_or_error(value)
    if table is not None:
        assert table.entries and all(0 <= m < 7 * 24 * 60 for m, _ in table.entries)
        assert [m for m, _ in table.entries] == sorted({m for m, _ in table.entries})


ENTRIES = st.lists(
    st.tuples(
        st.one_of(st.none(), st.sampled_from(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"])),
        st.integers(0, 23),
        st.integers(0, 59),
        st.sampled_from(["512k", "1M", "2M", "off", "pause", "0"]),
    ),
    min_size=1,
    max_size=12,
)
MOMENTS = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1))


def written(entries: list[tuple[str | None, int, int, str]]) -> str:
    return " ".join(f"{d + '-' if d else ''}{h:02}:{m:02},{r}" for d, h, m, r in entries)


@settings(max_examples=300, deadline=1000)
@given(ENTRIES, MOMENTS)
def test_the_limit_holds_until_the_moment_it_says_it_changes(
    entries: list[tuple[str | None, int, int, str]], when: datetime
) -> None:
    table = parse_bandwidth_limit(written(entries))
    force = table.in_force(when)
    if force.until is None:  # one limit all week: the same a week of moments later
        for hours in range(0, 7 * 24, 5):
            assert table.in_force(when + timedelta(hours=hours)).limit == force.limit
        return
    assert when < force.until <= when + timedelta(days=7)
    assert force.until.second == 0 and force.until.microsecond == 0
    last_minute = force.until - timedelta(minutes=1)
    assert table.in_force(max(when, last_minute)).limit == force.limit
    assert table.in_force(force.until).limit != force.limit


@settings(max_examples=300, deadline=1000)
@given(ENTRIES, MOMENTS)
def test_the_entry_in_force_is_the_latest_at_or_before_the_moment(
    entries: list[tuple[str | None, int, int, str]], when: datetime
) -> None:
    """Against a plain reading: walk back day by day to the latest entry written for a time
    at or before the moment (of entries for the same minute, the last written)."""
    table = parse_bandwidth_limit(written(entries))
    names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    for back in range(8):
        day = names[(when.weekday() - back) % 7]
        latest = (when.hour, when.minute) if back == 0 else (23, 59)
        times = [(h, m) for d, h, m, _ in entries if d in (None, day) and (h, m) <= latest]
        if times:
            hm = max(times)
            (*_, rate_written) = [r for d, h, m, r in entries if d in (None, day) and (h, m) == hm]
            expected = parse_bandwidth_limit(f"00:00,{rate_written}").entries[0][1]
            assert table.in_force(when).limit == expected
            return
    raise AssertionError("no entry in a whole week")
