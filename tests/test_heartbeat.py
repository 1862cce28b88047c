"""The heartbeat's lost-lease report: real losses once, never a job recorded meanwhile."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

import pgqueue
from pgqueue._sql import query
from pgqueue.worker._heartbeat import Heartbeat


@pytest.fixture
def app(clean_db: str) -> Iterator[pgqueue.App]:
    with pgqueue.App(clean_db) as app:
        yield app


def claim_jobs(dsn: str, count: int) -> tuple[list[int], str]:
    """Enqueue and claim ``count`` jobs (30 s lease): their ids in order, and the lease token."""
    token = str(uuid.uuid4())
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO pgqueue.jobs (task) SELECT 't' FROM generate_series(1, %s)",
                     (count,))  # fmt: skip
        params = {"queues": ["default"], "limit": count, "lease": 30.0, "worker_id": "w",
                  "token": token}  # fmt: skip
        ids = sorted(row[0] for row in conn.execute(query("claim"), params).fetchall())
    return ids, token


def test_lost_leases_are_reported_once_and_recorded_jobs_never(
    app: pgqueue.App, clean_db: str
) -> None:
    (kept, relet, recorded), token = claim_jobs(clean_db, 3)
    held: list[list[tuple[int, str, float]]] = []
    lost: list[list[int]] = []

    def snapshot() -> list[tuple[int, str, float]]:
        return held.pop(0)

    beat = Heartbeat(app.database, worker_id="w", queues=["default"], concurrency=3, interval=60,
                     held=snapshot, on_lost=lost.append, on_cancel=lambda ids: None)  # fmt: skip
    with psycopg.connect(clean_db, autocommit=True) as conn:
        # `relet` was rescued and claimed by another worker (another token);
        # `recorded` finished, and the completer recorded it while the heartbeat ran:
        # the snapshot before the query still holds it, the one after does not.
        conn.execute("UPDATE pgqueue.jobs SET lease_token = gen_random_uuid() WHERE id = %s",
                     (relet,))  # fmt: skip
        conn.execute("UPDATE pgqueue.jobs SET status = 'succeeded' WHERE id = %s", (recorded,))
        conn.execute("UPDATE pgqueue.jobs SET leased_until = now()")
    every = [(i, token, 30.0) for i in (kept, relet, recorded)]
    held += [every, [(kept, token, 30.0), (relet, token, 30.0)]]
    beat.beat()
    assert lost == [[relet]]
    held += [[(kept, token, 30.0), (relet, token, 30.0)]] * 2
    beat.beat()  # still held, still gone: not reported again
    assert lost == [[relet]]
    with psycopg.connect(clean_db) as conn:
        row: Any = conn.execute(
            "SELECT leased_until > now() + interval '20 seconds' FROM pgqueue.jobs WHERE id = %s",
            (kept,),
        ).fetchone()
    assert row == (True,)  # the held lease was renewed (30 s)
    beat.stop()


def test_a_worker_row_pruned_meanwhile_is_registered_again(app: pgqueue.App, clean_db: str) -> None:
    beat = Heartbeat(app.database, worker_id="w", queues=["default"], concurrency=1, interval=60,
                     held=list, on_lost=print, on_cancel=print)  # fmt: skip
    beat.beat()
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute("DELETE FROM pgqueue.workers")  # as the rescuer's workers_prune would
        beat.beat()
        assert conn.execute("SELECT id FROM pgqueue.workers").fetchall() == [("w",)]
    beat.stop()
