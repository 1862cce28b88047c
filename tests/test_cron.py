"""Cron expressions in time zones, across daylight-saving changes: pure, injected times."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

import pgqueue
from pgqueue._cron import parse_cron

UTC = timezone.utc
PARIS = "Europe/Paris"
NEW_YORK = "America/New_York"


def local(cron_fires: list[datetime], zone: str) -> list[str]:
    return [f.astimezone(ZoneInfo(zone)).strftime("%m-%d %H:%M:%S%z") for f in cron_fires]


def fires(expr: str, zone: str, start: datetime, end: datetime) -> list[datetime]:
    return list(parse_cron(expr, zone).fires(start, end))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[arg-type,misc]


# -- expressions ---------------------------------------------------------------


def test_five_fields_are_minute_hour_day_month_weekday() -> None:
    cron = parse_cron("15 9 * * 1-5", "UTC")  # weekdays at 09:15
    assert cron.next_after(utc(2026, 1, 2, 9, 15)) == utc(2026, 1, 5, 9, 15)  # Fri -> Mon


def test_six_fields_put_seconds_first() -> None:
    cron = parse_cron("30 */15 * * * *", "UTC")  # second 30 of every 15th minute
    got = list(cron.fires(utc(2026, 1, 1), utc(2026, 1, 1, 0, 31)))
    assert got == [utc(2026, 1, 1, 0, m, 30) for m in (0, 15, 30)]


def test_every_second() -> None:
    start = utc(2026, 1, 1, 12)
    assert fires("* * * * * *", "UTC", start, start + timedelta(seconds=3)) == [
        start + timedelta(seconds=i) for i in (1, 2, 3)]  # fmt: skip


def test_aliases() -> None:
    assert parse_cron("@hourly", "UTC").next_after(utc(2026, 1, 1, 0, 5)) == utc(2026, 1, 1, 1)
    assert parse_cron("@daily", "UTC").next_after(utc(2026, 1, 1, 0, 5)) == utc(2026, 1, 2)


def test_next_is_strictly_after_and_prev_strictly_before() -> None:
    cron = parse_cron("0 9 * * *", "UTC")
    assert cron.next_after(utc(2026, 1, 1, 9)) == utc(2026, 1, 2, 9)
    assert cron.prev_before(utc(2026, 1, 1, 9)) == utc(2025, 12, 31, 9)
    assert cron.prev_before(utc(2026, 1, 1, 9, 0, 1)) == utc(2026, 1, 1, 9)


def test_hashed_field_is_stable_per_schedule_name() -> None:
    a = parse_cron("H 9 * * *", "UTC", name="report-a").next_after(utc(2026, 1, 1))
    again = parse_cron("H 9 * * *", "UTC", name="report-a").next_after(utc(2026, 1, 1))
    assert a == again and a.hour == 9


@pytest.mark.parametrize(
    "expr, message",
    [
        ("61 * * * *", "invalid cron expression"),
        ("* * *", "has 3 fields"),
        ("0 0 1 1 * 2027 x", "has 7 fields"),
        ("0 0 30 2 *", "invalid cron expression"),  # February 30th never comes
        ("@often", "unknown cron alias"),
        ("", "empty cron expression"),
        ("0 9 * * mon-xyz", "invalid cron expression"),
    ],
)
def test_invalid_expression_is_a_schedule_error_naming_the_schedule(
    expr: str, message: str
) -> None:
    with pytest.raises(pgqueue.ScheduleError, match=message) as info:
        parse_cron(expr, "UTC", name="nightly-report")
    assert "'nightly-report'" in str(info.value)


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "", "../etc/passwd", "UTC+2"])
def test_unknown_time_zone_is_a_schedule_error(zone: str) -> None:
    with pytest.raises(pgqueue.ScheduleError, match="time zone") as info:
        parse_cron("0 9 * * *", zone, name="nightly-report")
    assert "'nightly-report'" in str(info.value)


def test_fires_are_computed_in_the_schedule_zone() -> None:
    # 09:00 in Paris is 08:00 UTC in winter, 07:00 UTC in summer.
    assert parse_cron("0 9 * * *", PARIS).next_after(utc(2026, 1, 10)) == utc(2026, 1, 10, 8)
    assert parse_cron("0 9 * * *", PARIS).next_after(utc(2026, 7, 10)) == utc(2026, 7, 10, 7)


# -- daylight saving: wall-clock schedules (fixed hours) -------------------------------


def test_paris_spring_forward_daily_0230_runs_once_at_the_transition() -> None:
    # 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day.
    got = fires("30 2 * * *", PARIS, utc(2026, 3, 27), utc(2026, 3, 31))
    assert local(got, PARIS) == [
        "03-27 02:30:00+0100", "03-28 02:30:00+0100",
        "03-29 03:00:00+0200",  # once, as the clock jumps
        "03-30 02:30:00+0200",
    ]  # fmt: skip


def test_paris_fall_back_daily_0230_runs_once() -> None:
    # 2026-10-25: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice.
    got = fires("30 2 * * *", PARIS, utc(2026, 10, 24), utc(2026, 10, 27))
    assert local(got, PARIS) == [
        "10-24 02:30:00+0200", "10-25 02:30:00+0200", "10-26 02:30:00+0100"]  # fmt: skip


def test_fixed_hour_every_few_minutes_in_a_repeated_hour_runs_once_per_minute_mark() -> None:
    got = fires("*/20 2 * * *", PARIS, utc(2026, 10, 24, 12), utc(2026, 10, 25, 12))
    assert local(got, PARIS) == [
        "10-25 02:00:00+0200", "10-25 02:20:00+0200", "10-25 02:40:00+0200"]  # fmt: skip


def test_skipped_minutes_of_a_fixed_hour_collapse_into_one_fire() -> None:
    got = fires("5,35 2 * * *", PARIS, utc(2026, 3, 28, 12), utc(2026, 3, 29, 12))
    assert local(got, PARIS) == ["03-29 03:00:00+0200"]


def test_new_york_spring_forward_and_fall_back() -> None:
    # 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00 EST.
    spring = fires("30 2 * * *", NEW_YORK, utc(2026, 3, 7), utc(2026, 3, 10))
    assert local(spring, NEW_YORK) == [
        "03-07 02:30:00-0500", "03-08 03:00:00-0400", "03-09 02:30:00-0400"]  # fmt: skip
    fall = fires("30 1 * * *", NEW_YORK, utc(2026, 10, 31), utc(2026, 11, 3))
    assert local(fall, NEW_YORK) == [
        "10-31 01:30:00-0400", "11-01 01:30:00-0400", "11-02 01:30:00-0500"]  # fmt: skip


# -- daylight saving: elapsed-time schedules (hour field `*`) --------------------------


def test_hourly_fires_in_both_passes_of_a_repeated_hour() -> None:
    got = fires("0 * * * *", NEW_YORK, utc(2026, 11, 1, 4), utc(2026, 11, 1, 8))
    assert local(got, NEW_YORK) == [
        "11-01 01:00:00-0400", "11-01 01:00:00-0500", "11-01 02:00:00-0500",
        "11-01 03:00:00-0500"]  # fmt: skip
    gaps = {b - a for a, b in pairwise(got)}
    assert gaps == {timedelta(hours=1)}  # elapsed time, evenly


def test_every_half_hour_skips_the_missing_hour_and_repeats_the_doubled_one() -> None:
    spring = fires("*/30 * * * *", PARIS, utc(2026, 3, 28, 23), utc(2026, 3, 29, 2))
    assert local(spring, PARIS) == [
        "03-29 00:30:00+0100", "03-29 01:00:00+0100", "03-29 01:30:00+0100",
        "03-29 03:00:00+0200", "03-29 03:30:00+0200", "03-29 04:00:00+0200"]  # fmt: skip
    fall = fires("*/30 * * * *", PARIS, utc(2026, 10, 25), utc(2026, 10, 25, 2))
    assert {b - a for a, b in pairwise(fall)} == {timedelta(minutes=30)}
    assert len(fall) == 4


# -- next/prev against a brute-force reference ------------------------------------------


def reference(expr: str, zone: str, start: datetime, end: datetime) -> list[datetime]:
    """Fires in (start, end] by scanning every minute, straight from the DST rules."""
    tz = ZoneInfo(zone)
    interval = expr.split()[1].startswith("*")
    out: set[datetime] = set()
    first = start.astimezone(tz).replace(tzinfo=None, second=0, microsecond=0) - timedelta(hours=3)
    stop = end.astimezone(tz).replace(tzinfo=None) + timedelta(hours=3)
    walls = croniter(expr, first - timedelta(minutes=1))  # matching local times (naive)
    matching = set()
    while (w := walls.get_next(datetime)) <= stop:
        matching.add(w)
    if interval:  # every instant whose local time matches
        u = start.replace(second=0, microsecond=0)
        while u <= end:
            if u > start and u.astimezone(tz).replace(tzinfo=None) in matching:
                out.add(u)
            u += timedelta(minutes=1)
        return sorted(out)
    # wall clock: each matching local time once: its first instant, or the transition
    w = first
    while w <= stop:
        if w in matching:
            u = w.replace(tzinfo=tz, fold=0).astimezone(UTC)
            if u.astimezone(tz).replace(tzinfo=None) != w:  # a gap: first minute past it
                u = w.replace(tzinfo=tz, fold=1).astimezone(UTC)
                while u.astimezone(tz).replace(tzinfo=None) < w:
                    u += timedelta(minutes=1)
            if start < u <= end:
                out.add(u)
        w += timedelta(minutes=1)
    return sorted(out)


@pytest.mark.parametrize("zone, around", [
    (PARIS, utc(2026, 3, 29)), (PARIS, utc(2026, 10, 25)),
    (NEW_YORK, utc(2026, 3, 8)), (NEW_YORK, utc(2026, 11, 1)),
    ("Australia/Lord_Howe", utc(2026, 4, 4, 15)),  # a half-hour shift
])  # fmt: skip
@pytest.mark.parametrize("expr", [
    "30 2 * * *", "0 1 * * *", "*/20 2 * * *", "0 * * * *", "*/15 * * * *",
    "45 */2 * * *", "0,30 1-3 * * *", "10 2,3 * * *",
])  # fmt: skip
def test_next_and_prev_match_the_brute_force_reference(
    zone: str, around: datetime, expr: str
) -> None:
    start, end = around - timedelta(days=1), around + timedelta(days=1)
    expected = reference(expr, zone, start, end)
    assert fires(expr, zone, start, end) == expected
    cron = parse_cron(expr, zone)
    backwards = []
    t = end + timedelta(microseconds=1)
    while (t := cron.prev_before(t)) > start:
        backwards.append(t)
    assert backwards[::-1] == expected
    half = timedelta(milliseconds=500)  # from instants between whole seconds, too
    assert [cron.next_after(f - half) for f in expected] == expected
    assert [cron.prev_before(f + half) for f in expected] == expected
