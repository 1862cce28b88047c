"""Missed-window policies as pure functions of (schedule, next_run_at, now)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

import pgqueue
from pgqueue._cron import check_policy, parse_cron, plan

UTC = timezone.utc
T0 = datetime(2026, 1, 1, tzinfo=UTC)  # an hourly schedule was due at T0 ...
OUTAGE = T0 + timedelta(hours=5, minutes=10)  # ... and everything was down until 05:10
HOURLY = parse_cron("0 * * * *", "UTC")


def hours(*offsets: int) -> tuple[datetime, ...]:
    return tuple(T0 + timedelta(hours=h) for h in offsets)


def test_not_due_yet_changes_nothing() -> None:
    p = plan(HOURLY, T0, T0 - timedelta(seconds=1))
    assert p.fires == () and p.next_run_at == T0


def test_on_time_fire_is_enqueued_under_every_policy() -> None:
    for missed in ("skip", "latest", "all"):
        p = plan(HOURLY, T0, T0 + timedelta(seconds=2), missed=missed)
        assert p.fires == hours(0) and p.next_run_at == T0 + timedelta(hours=1)
        assert not p.dropped


def test_skip_enqueues_nothing_and_moves_to_the_next_future_fire() -> None:
    p = plan(HOURLY, T0, OUTAGE, missed="skip")
    assert p.fires == () and p.next_run_at == T0 + timedelta(hours=6) and p.dropped


def test_latest_enqueues_the_most_recent_missed_fire_once() -> None:
    p = plan(HOURLY, T0, OUTAGE, missed="latest")
    assert p.fires == hours(5) and p.next_run_at == T0 + timedelta(hours=6) and p.dropped


def test_all_catches_up_every_missed_fire() -> None:
    p = plan(HOURLY, T0, OUTAGE, missed="all", max_catchup=10)
    assert p.fires == hours(0, 1, 2, 3, 4, 5) and not p.dropped


def test_all_is_bounded_by_max_catchup_keeping_the_most_recent() -> None:
    p = plan(HOURLY, T0, OUTAGE, missed="all", max_catchup=3)
    assert p.fires == hours(3, 4, 5) and p.next_run_at == T0 + timedelta(hours=6) and p.dropped


def test_grace_window_late_fire_still_counts_as_on_time() -> None:
    at_edge = T0 + timedelta(seconds=60)
    assert plan(HOURLY, T0, at_edge, missed="skip", grace=60).fires == hours(0)
    just_past = T0 + timedelta(seconds=60, microseconds=1)
    assert plan(HOURLY, T0, just_past, missed="skip", grace=60).fires == ()
    assert plan(HOURLY, T0, just_past, missed="skip", grace=3600).fires == hours(0)


def test_latest_yields_to_an_on_time_fire() -> None:
    # Down from 00:00 to 05:00:30: the 05:00 fire is on time; it is the catch-up.
    p = plan(HOURLY, T0, T0 + timedelta(hours=5, seconds=30), missed="latest", grace=60)
    assert p.fires == hours(5) and p.dropped


def test_all_adds_the_missed_fires_before_the_on_time_ones() -> None:
    every_minute = parse_cron("* * * * *", "UTC")
    p = plan(every_minute, T0, T0 + timedelta(minutes=10), missed="all", max_catchup=2,
             grace=150)  # fmt: skip
    minutes = [int((f - T0).total_seconds() // 60) for f in p.fires]
    assert minutes == [6, 7, 8, 9, 10]  # 6, 7 missed (the 2 most recent); 8..10 on time


def test_a_long_outage_costs_the_fires_enqueued_not_its_length() -> None:
    every_second = parse_cron("* * * * * *", "UTC")
    started = time.perf_counter()
    p = plan(every_second, T0, T0 + timedelta(days=3650), missed="all", max_catchup=5, grace=1)
    assert time.perf_counter() - started < 0.5
    assert len(p.fires) == 5 + 2  # five caught up, two within the 1 s grace
    assert p.next_run_at == T0 + timedelta(days=3650, seconds=1)


def test_a_tick_enqueues_at_most_limit_fires_and_leaves_the_rest_due() -> None:
    every_second = parse_cron("* * * * * *", "UTC")
    p = plan(every_second, T0, T0 + timedelta(seconds=59), grace=60, limit=25)
    assert len(p.fires) == 25 and p.next_run_at == T0 + timedelta(seconds=25)
    rest = plan(every_second, p.next_run_at, T0 + timedelta(seconds=59), grace=60, limit=25)
    assert rest.fires[0] == T0 + timedelta(seconds=25)


def test_plans_across_a_dst_change_use_the_zone() -> None:
    paris = parse_cron("30 2 * * *", "Europe/Paris")
    due = datetime(2026, 3, 28, 1, 30, tzinfo=UTC)  # 02:30 CET on the 28th
    p = plan(paris, due, datetime(2026, 3, 30, 12, tzinfo=UTC), missed="all")
    assert [f.isoformat() for f in p.fires] == [
        "2026-03-28T01:30:00+00:00",  # 02:30 CET
        "2026-03-29T01:00:00+00:00",  # 03:00 CEST: 02:30 did not exist
        "2026-03-30T00:30:00+00:00",  # 02:30 CEST
    ]


@pytest.mark.parametrize(
    "missed, max_catchup, grace, message",
    [
        ("sometimes", 10, 60.0, "missed must be one of skip, latest, all"),
        ("all", 0, 60.0, "max_catchup"),
        ("all", 10, -1.0, "grace_seconds"),
    ],
)
def test_invalid_policy_is_a_schedule_error(
    missed: str, max_catchup: int, grace: float, message: str
) -> None:
    with pytest.raises(pgqueue.ScheduleError, match=message):
        check_policy("nightly", missed, max_catchup, grace)
