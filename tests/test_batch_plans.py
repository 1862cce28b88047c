"""The worker's batch statements look their jobs up by primary key, one probe per
job, even when the statistics show no running job and the MVCC horizon is pinned:
no partial index matches ``status = 'running'`` alone (migration 0008), and the
old ``jobs_running_idx``, read whole, held an entry for every job claimed since
the pin (benchmarks/horizon_batches.py). And a batch is read once, however large:
the fence compares with ``(SELECT 'running')``, a parameter (pgqueue/sql/worker.sql)."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

import pgqueue
from pgqueue._migrate import migrate_dsn
from pgqueue._sql import query

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._db import explain  # noqa: E402

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
    return dict(explain(conn, sql, params)[0][0]["Plan"])


def test_batch_statements_probe_the_primary_key_under_a_pin(
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
            "complete": {"ids": ids, "tokens": [token] * n, "statuses": ["succeeded"] * n,
                         "results": [None] * n, "delays": [0.0] * n, "errors": [None] * n,
                         "entries": [None] * n},
            "heartbeat": {"ids": ids, "tokens": [token] * n, "leases": [30.0] * n},
            "release": {"ids": ids, "tokens": [token] * n, "started": [False] * n},
            "leases_gone": {"ids": ids, "tokens": [token] * n},
        }  # fmt: skip
        for name, params in statements.items():
            plan = _plan(conn, query(name), params)
            scans = list(_scans(plan))
            assert scans, name
            for scan in scans:
                # Each scan of jobs probes the primary key, none reads an index whole.
                cond = scan.get("Index Cond") or ""
                assert scan.get("Index Name") == "jobs_pkey", (name, scan["Node Type"])
                assert "id = " in cond, (name, cond)
                buffers = scan["Shared Hit Blocks"] + scan["Shared Read Blocks"]
                assert buffers < JOBS // 10, (name, buffers)
                assert scan["Actual Rows"] * scan["Actual Loops"] == n, name
        pin.rollback()


def _function_scans(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if node["Node Type"] == "Function Scan":
        yield node
    for child in node.get("Plans", ()):
        yield from _function_scans(child)


def test_a_large_batch_on_a_small_table_reads_the_batch_once(fresh_db_dsn: str) -> None:
    # `status = 'running'` as a constant made the planner take the whole table as
    # the outer side of a nested loop and rescan the batch for every running job.
    migrate_dsn(fresh_db_dsn)
    with pgqueue.App(fresh_db_dsn) as app:
        app.enqueue_many([app.task_ref("t", queue="mail").job(i) for i in range(50_000)])
    with psycopg.connect(fresh_db_dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE pgqueue.jobs")  # nothing running in the statistics
        ids, token = _claim(conn, 1000)
        n = len(ids)
        assert n == 1000
        statements = {
            "complete": {"ids": ids, "tokens": [token] * n, "statuses": ["succeeded"] * n,
                         "results": [None] * n, "delays": [0.0] * n, "errors": [None] * n,
                         "entries": [None] * n},
            "heartbeat": {"ids": ids, "tokens": [token] * n, "leases": [30.0] * n},
            "release": {"ids": ids, "tokens": [token] * n, "started": [False] * n},
        }  # fmt: skip
        for name, params in statements.items():
            plan = _plan(conn, query(name), params)
            batches = [s for s in _function_scans(plan) if s["Actual Rows"] == n]
            assert batches, name
            assert all(s["Actual Loops"] == 1 for s in batches), (name, batches[0]["Actual Loops"])
            assert plan["Actual Rows"] == n, name
