"""Claims from moving lower bounds (``claim_after``, ``pgqueue/worker/_bounds.py``).

The bounded claim skips the claimed prefix of jobs_claim_idx, which a pinned
MVCC horizon leaves full of dead entries; the plain claim, run at least every
rescan, still finds the jobs that land behind a bound.
"""

from __future__ import annotations

import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
from test_worker import running_worker
from test_worker_app import wait_until

import pgqueue
from pgqueue._sql import query
from pgqueue.worker._bounds import MAX_LEVELS, ClaimBounds

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.horizon_claims import explain_buffers  # noqa: E402


@pytest.fixture
def db(clean_db: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(clean_db, autocommit=True) as conn:
        yield conn


def params(limit: int = 32, queues: list[str] | None = None) -> dict[str, Any]:
    return {"queues": queues or ["default"], "limit": limit, "lease": 30.0, "worker_id": "w",
            "token": str(uuid.uuid4())}  # fmt: skip


def enqueue(db: psycopg.Connection[Any], n: int, *, priority: int = 0, ago: float = 0.0,
            queue: str = "default") -> list[int]:  # fmt: skip
    rows = db.execute(
        "INSERT INTO pgqueue.jobs (queue, task, priority, run_at)"
        " SELECT %s, 't', %s, now() - make_interval(secs => %s) FROM generate_series(1, %s)"
        " RETURNING id",
        (queue, priority, ago, n),
    ).fetchall()
    return [r[0] for r in rows]


def claim_with(db: psycopg.Connection[Any], bounds: ClaimBounds, limit: int = 32,
               queues: list[str] | None = None) -> list[int]:  # fmt: skip
    """One claim as the worker makes it: plain when due, else from the bounds."""
    queues = queues or ["default"]
    if bounds.plain_due():
        started = bounds.clock()
        rows = db.execute(query("claim"), params(limit, queues)).fetchall()
        bounds.plain_done(started)
    else:
        segments = bounds.segments(queues)
        rows = db.execute(query("claim_after"), {**params(limit, queues), **segments}).fetchall()
    bounds.advance(rows)
    return [r[0] for r in rows]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_segments_go_by_priority_with_unbounded_spans_between() -> None:
    bounds = ClaimBounds(slack=0.5)
    t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    bounds.advance([(1, "a", 5, t), (2, "a", 0, t), (3, "a", 0, t + timedelta(seconds=2))])
    seg = bounds.segments(["a", "b"])
    assert seg["seg_queue"] == ["a"] * 5 + ["b"]
    # above 5 | level 5 | between 0 and 5 | level 0 | below 0 | queue b whole
    assert seg["seg_priority"] == [None, 5, None, 0, None, None]
    assert seg["seg_above"] == [5, 5, 0, 0, -32769, -32769]
    assert seg["seg_below"] == [32768, 5, 5, 0, 0, 32768]
    assert seg["seg_after"][1] == t - timedelta(seconds=0.5)
    assert seg["seg_after"][3] == t + timedelta(seconds=1.5)  # the newest run_at claimed


def test_levels_per_queue_are_capped() -> None:
    bounds = ClaimBounds()
    t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    bounds.advance([(i, "a", i, t) for i in range(MAX_LEVELS + 5)])
    assert len(bounds.levels["a"]) == MAX_LEVELS


def test_plain_claims_come_every_rescan_and_no_more_than_the_duty_allows() -> None:
    clock = Clock()
    bounds = ClaimBounds(rescan=1.0, duty=20.0, clock=clock)
    assert bounds.plain_due()  # nothing bounded yet
    bounds.levels["a"] = {0: datetime.now(timezone.utc)}
    bounds.plain_done(started=clock.now)
    assert not bounds.plain_due()
    clock.now += 1.0
    assert bounds.plain_due()
    started = clock.now
    clock.now += 0.25  # a slow plain claim (a pinned horizon): the next one 5 s later
    bounds.plain_done(started)
    clock.now += 4.5
    assert not bounds.plain_due()
    clock.now += 0.5
    assert bounds.plain_due()


def test_bounded_claims_skip_the_prefix_and_plain_claims_find_what_is_behind(
    db: psycopg.Connection[Any],
) -> None:
    clock = Clock()
    bounds = ClaimBounds(slack=0.0, rescan=1.0, clock=clock)
    first = enqueue(db, 4, ago=10)
    assert sorted(claim_with(db, bounds)) == first  # plain: nothing bounded yet
    late = enqueue(db, 2, ago=60)  # behind the bound (a long transaction's enqueue)
    fresh = enqueue(db, 3)
    urgent = enqueue(db, 1, priority=9, ago=120)  # a higher priority is never behind
    assert sorted(claim_with(db, bounds, limit=2)) == sorted(urgent + fresh[:1])
    assert sorted(claim_with(db, bounds)) == fresh[1:]
    assert claim_with(db, bounds) == []  # the late ones wait for the plain claim
    clock.now += 1.0
    assert sorted(claim_with(db, bounds)) == late


def test_bounded_claims_skip_paused_and_limited_queues(db: psycopg.Connection[Any]) -> None:
    t = datetime.now(timezone.utc) - timedelta(hours=1)
    bounds = ClaimBounds()
    bounds.levels = {"a": {0: t}, "b": {0: t}, "c": {0: t}}
    enqueue(db, 1, queue="a")
    enqueue(db, 1, queue="b")
    (c,) = enqueue(db, 1, queue="c")
    db.execute("INSERT INTO pgqueue.queues (name, paused) VALUES ('a', true)")
    db.execute("INSERT INTO pgqueue.queues (name, max_running) VALUES ('b', 5)")
    segments = bounds.segments(["a", "b", "c"])
    rows = db.execute(query("claim_after"), {**params(10, ["a", "b", "c"]), **segments}).fetchall()
    assert [r[0] for r in rows] == [c]


def test_under_a_pinned_horizon_the_bounded_claim_stays_flat(
    db: psycopg.Connection[Any], clean_db: str
) -> None:
    # Buffers, not time: the plain claim walks every dead entry of the claimed
    # prefix (the horizon keeps them), the bounded claim starts after them.
    bounds = ClaimBounds(slack=0.0, rescan=3600.0)
    with psycopg.connect(clean_db) as holder:
        holder.execute("SELECT txid_current()")  # idle in transaction, holding an XID
        for _ in range(40):
            enqueue(db, 128, ago=1)
            while claim_with(db, bounds):
                pass
        enqueue(db, 32)
        front = explain_buffers(db, query("claim"), params())
        segments = bounds.segments(["default"])
        bounded = explain_buffers(db, query("claim_after"), {**params(), **segments})
        holder.rollback()
    assert front["rows"] == bounded["rows"] == 32
    assert front["scan_buffers"] > 5 * bounded["scan_buffers"], (front, bounded)


def test_a_worker_runs_jobs_that_land_behind_its_bounds(clean_db: str) -> None:
    app = pgqueue.App(clean_db)
    done: list[int] = []
    lock = threading.Lock()

    @app.task
    def note(n: int) -> None:
        with lock:
            done.append(n)

    try:
        with running_worker(app):
            for n in range(5):
                note.enqueue(n)
            wait_until(lambda: len(done) == 5)
            # A job whose run_at is an hour old, as a long transaction's enqueue
            # or a released job may have: the bounded claims never see it.
            with app.database.connection() as conn:
                conn.execute(
                    "INSERT INTO pgqueue.jobs (queue, task, args, run_at)"
                    " VALUES ('default', %s, '[99]', now() - interval '1 hour')",
                    (note.name,),
                )
                conn.execute("NOTIFY pgqueue_jobs, 'default'")
            wait_until(lambda: 99 in done, timeout=10)
    finally:
        app.close()
