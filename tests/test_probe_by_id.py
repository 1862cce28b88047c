"""``release`` probes ``pgqueue.jobs`` by id. Read whole instead, ``jobs_running_idx``
holds an entry for every job claimed while the MVCC horizon is pinned
(benchmarks/horizon_batches.py). ``leases_gone`` (no status filter) looks its jobs
up by primary key. (``complete`` and ``heartbeat`` keep the plain join: the probe
made their generic plans quadratic in the batch; see pgqueue/sql/worker.sql.)"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg

import pgqueue
from pgqueue._migrate import migrate_dsn
from pgqueue._sql import query

JOBS = 3000
BATCH = 32


def _claim(conn: psycopg.Connection[Any], limit: int) -> tuple[list[int], str]:
    token = str(uuid.uuid4())
    params = {"queues": ["mail"], "limit": limit, "lease": 30.0, "worker_id": "w",
              "token": token}  # fmt: skip
    return [row[0] for row in conn.execute(query("claim"), params).fetchall()], token


def _scans(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if node.get("Relation Name") == "jobs" and node["Node Type"].endswith("Scan"):
        yield node
    for child in node.get("Plans", ()):
        yield from _scans(child)


def _plan(conn: psycopg.Connection[Any], sql: str, params: dict[str, Any]) -> dict[str, Any]:
    conn.execute("BEGIN")
    try:
        row = conn.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, params).fetchone()
    finally:
        conn.execute("ROLLBACK")
    assert row is not None
    return dict(row[0][0]["Plan"])


def test_release_and_leases_gone_look_up_by_id_under_a_pin(
    fresh_db_dsn: str,
) -> None:
    migrate_dsn(fresh_db_dsn)
    with pgqueue.App(fresh_db_dsn) as app:
        app.enqueue_many([app.task_ref("t", queue="mail").job(i) for i in range(JOBS + BATCH)])
    with (
        psycopg.connect(fresh_db_dsn, autocommit=True) as conn,
        psycopg.connect(fresh_db_dsn) as pin,
    ):
        pin.execute("SELECT txid_current()")  # held open: nothing claimed below is vacuumed
        for _ in range(JOBS // 300):
            ids, token = _claim(conn, 300)
            n = len(ids)
            conn.execute(query("complete"), {
                "ids": ids, "tokens": [token] * n, "statuses": ["succeeded"] * n,
                "results": [None] * n, "delays": [0.0] * n, "errors": [None] * n,
                "entries": [None] * n,
            })  # fmt: skip
        conn.execute("ANALYZE pgqueue.jobs")  # nothing running: the partial index looks empty
        ids, token = _claim(conn, BATCH)
        n = len(ids)
        assert n == BATCH
        statements = {
            "release": {"ids": ids, "tokens": [token] * n, "started": [False] * n},
            "leases_gone": {"ids": ids, "tokens": [token] * n},
        }  # fmt: skip
        for name, params in statements.items():
            plan = _plan(conn, query(name), params)
            scans = list(_scans(plan))
            assert scans, name
            for scan in scans:
                # Each scan of jobs looks up the batch's ids, none reads an index whole.
                cond = scan.get("Index Cond") or scan.get("Recheck Cond") or ""
                assert "id = " in cond, (name, scan["Node Type"], scan.get("Index Name"))
                buffers = scan["Shared Hit Blocks"] + scan["Shared Read Blocks"]
                assert buffers < JOBS // 10, (name, buffers)
        pin.rollback()
