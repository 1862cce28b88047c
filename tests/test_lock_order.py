"""The heartbeat and the completer lock rows in one order (by id): they never deadlock."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
from test_heartbeat import claim_jobs
from test_worker_app import prepare_tables

from pgqueue._sql import query
from pgqueue.worker._claimed import Outcome
from pgqueue.worker._completer import complete_params


def claim_two(dsn: str) -> tuple[list[int], str]:
    """Two of 2,000 running jobs: enough that a join is planned as a loop over the ids
    in the order given (with a handful, a scan of all running jobs in id order wins)."""
    ids, token = claim_jobs(dsn, 2000)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ANALYZE pgqueue.jobs")
    return ids[:2], token


def renew(conn: psycopg.Connection[Any], ids: list[int], token: str) -> list[Any]:
    return conn.execute(query("heartbeat"), {"ids": ids, "tokens": [token] * len(ids),
                                             "leases": [30.0] * len(ids)}).fetchall()  # fmt: skip


def wait_for_lock_wait(dsn: str, pid: int) -> None:
    """Until backend ``pid`` waits for a row lock (a condition, not a timing assertion)."""
    deadline = time.monotonic() + 30
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                               (pid,)).fetchone()  # fmt: skip
            if row and row[0] == "Lock":
                return
            time.sleep(0.02)
    raise AssertionError(f"backend {pid} never waited for a lock")


def test_a_completion_waiting_behind_a_heartbeat_holds_no_row_it_needs(clean_db: str) -> None:
    prepare_tables(clean_db)
    (low, high), token = claim_two(clean_db)
    errors: list[BaseException] = []
    completed: list[int] = []
    with psycopg.connect(clean_db) as beat, psycopg.connect(clean_db, autocommit=True) as done:
        renew(beat, [low], token)  # the heartbeat's transaction holds `low` ...
        pid = done.info.backend_pid

        def complete() -> None:
            # ... while a completion of both arrives, `high` first (the order jobs finished).
            batch = [Outcome(i, token, "succeeded", "null", None, None, None) for i in (high, low)]
            try:
                completed.extend(r[0] for r in done.execute(query("complete"),
                                                            complete_params(batch)).fetchall())
            except BaseException as exc:  # reported below
                errors.append(exc)

        thread = threading.Thread(target=complete)
        thread.start()
        wait_for_lock_wait(clean_db, pid)
        # Locking in id order, the completion waits for `low` without holding `high`, so
        # the heartbeat can still take it. (Each in its own order, this was a deadlock.)
        assert [r[0] for r in renew(beat, [high], token)] == [high]
        beat.commit()
        thread.join(30)
    assert errors == []
    assert sorted(completed) == [low, high]
