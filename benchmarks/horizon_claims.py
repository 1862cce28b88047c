"""Claim designs side by side under a pinned MVCC horizon: buffers per claim.

``python -m benchmarks.horizon_claims [--rounds N] [--pin xid|rr]``

Load-independent: no worker, no timing. One connection enqueues 128 jobs,
claims them 32 at a time and completes them, round after round, while a
second connection pins the horizon (``xid``: ``BEGIN; SELECT txid_current()``
left idle; ``rr``: a REPEATABLE READ transaction that has counted
``pgqueue.jobs``). Every few rounds an ``EXPLAIN (ANALYZE, BUFFERS)`` of one
claim of 32 (rolled back) gives the shared buffers it touched. Candidates:

- ``today``: the ``claim`` statement of ``pgqueue/sql/worker.sql``.
- ``cursor``: the worker's claim now: ``claim_after`` from moving lower
  bounds per queue and priority (``pgqueue/worker/_bounds.py``), with a
  plain ``claim`` from the front at most every second (``plain_claims``).
- ``receipts``: ready rows never updated (a separate ``ready`` table) and
  claims recorded as receipts (awa-like, without a cursor).
- rotating partitions (PgQ, pg-boss) are judged by ``rotation_blocked``:
  whether a partition can be truncated while the pinning session holds it.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Callable
from typing import Any

import psycopg

from benchmarks._db import explain, fresh_database
from pgqueue._sql import query
from pgqueue.worker._bounds import SLACK, ClaimBounds

BATCH, CLAIM = 128, 32
PAYLOAD = "x" * 256
ENQUEUE = (
    "INSERT INTO pgqueue.jobs (queue, task, args)"
    " SELECT 'bench', 'bench.noop', jsonb_build_array(%s::text) FROM generate_series(1, %s)"
)
COMPLETE = "UPDATE pgqueue.jobs SET status = 'succeeded', finished_at = now() WHERE id = ANY(%s)"
RECEIPTS_DDL = """
CREATE TABLE pgqueue.ready (id bigint PRIMARY KEY, queue text NOT NULL,
                            priority smallint NOT NULL, run_at timestamptz NOT NULL);
CREATE INDEX ready_claim_idx ON pgqueue.ready (queue, priority DESC, run_at, id);
CREATE TABLE pgqueue.receipts (job_id bigint PRIMARY KEY, token uuid NOT NULL);
"""
RECEIPTS_CLAIM = """
WITH candidates AS (
    SELECT r.id FROM pgqueue.ready AS r
    WHERE r.queue = 'bench' AND r.run_at <= now()
      AND NOT EXISTS (SELECT 1 FROM pgqueue.receipts AS c WHERE c.job_id = r.id)
    ORDER BY r.priority DESC, r.run_at, r.id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
INSERT INTO pgqueue.receipts (job_id, token)
SELECT id, %(token)s::uuid FROM candidates
RETURNING job_id
"""


def claim_params(limit: int) -> dict[str, Any]:
    return {
        "queues": ["bench"],
        "limit": limit,
        "lease": 30.0,
        "worker_id": "proto",
        "token": str(uuid.uuid4()),
    }


class Candidate:
    """One claim design: set up, enqueue, claim (returning ids), complete."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.plain = 0  # claims that scanned from the front of the index

    def setup(self) -> None:
        return None

    def enqueue(self) -> None:
        self.conn.execute(ENQUEUE, (PAYLOAD, BATCH))

    def statement(self, limit: int) -> tuple[str, dict[str, Any]]:
        return query("claim"), claim_params(limit)

    def claim(self, limit: int) -> list[int]:
        sql, params = self.statement(limit)
        return [row[0] for row in self.conn.execute(sql, params).fetchall()]

    def complete(self, ids: list[int]) -> None:
        self.conn.execute(COMPLETE, (ids,))


class Cursor(Candidate):
    """The worker's claim: ClaimBounds deciding between claim_after and claim."""

    slack = SLACK

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        super().__init__(conn)
        self.bounds = ClaimBounds(slack=self.slack)

    def statement(self, limit: int) -> tuple[str, dict[str, Any]]:
        params = claim_params(limit)
        if not self.bounds.levels:
            return query("claim"), params
        return query("claim_after"), {**params, **self.bounds.segments(["bench"])}

    def claim(self, limit: int) -> list[int]:
        bounds = self.bounds
        params = claim_params(limit)
        if bounds.plain_due():
            self.plain += 1
            started = bounds.clock()
            rows = self.conn.execute(query("claim"), params).fetchall()
            bounds.plain_done(started)
        else:
            segments = bounds.segments(["bench"])
            rows = self.conn.execute(query("claim_after"), {**params, **segments}).fetchall()
        bounds.advance(rows)
        return [row[0] for row in rows]


class Receipts(Candidate):
    def setup(self) -> None:
        self.conn.execute(RECEIPTS_DDL)

    def enqueue(self) -> None:
        with self.conn.transaction():
            ids = self.conn.execute(ENQUEUE + " RETURNING id", (PAYLOAD, BATCH)).fetchall()
            self.conn.execute(
                "INSERT INTO pgqueue.ready SELECT id, queue, priority, run_at"
                " FROM pgqueue.jobs WHERE id = ANY(%s)",
                ([i for (i,) in ids],),
            )

    def statement(self, limit: int) -> tuple[str, dict[str, Any]]:
        return RECEIPTS_CLAIM, {"limit": limit, "token": str(uuid.uuid4())}

    def claim(self, limit: int) -> list[int]:
        sql, params = self.statement(limit)
        return [row[0] for row in self.conn.execute(sql, params).fetchall()]


CANDIDATES: dict[str, Callable[[psycopg.Connection[Any]], Candidate]] = {
    "today": Candidate,
    "cursor": Cursor,
    "receipts": Receipts,
}


def pin(dsn: str, how: str) -> psycopg.Connection[Any]:
    """A connection holding the horizon back until closed (``none``: idle, no transaction)."""
    conn = psycopg.connect(dsn, autocommit=how == "none")
    if how == "rr":
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.execute("SELECT count(*) FROM pgqueue.jobs")
    elif how == "xid":
        conn.execute("SELECT txid_current()")
    return conn


def _buffers(node: dict[str, Any]) -> int:
    return int(node["Shared Hit Blocks"]) + int(node["Shared Read Blocks"])


def _find(node: dict[str, Any], subplan: str) -> dict[str, Any] | None:
    if node.get("Subplan Name") == subplan:
        return node
    for child in node.get("Plans", ()):
        found = _find(child, subplan)
        if found is not None:
            return found
    return None


def explain_buffers(
    conn: psycopg.Connection[Any], sql: str, params: dict[str, Any]
) -> dict[str, int]:
    """Shared buffers (hit + read) one claim touches, in all and in its candidate
    scan (the ``candidates`` CTE, when the plan has one), and the jobs it claimed;
    the claim is rolled back."""
    top = explain(conn, sql, params)[0][0]["Plan"]
    scan = _find(top, "CTE candidates")
    return {
        "buffers": _buffers(top),
        "scan_buffers": _buffers(scan or top),
        "rows": int(top["Actual Rows"]),
    }


def explain_text(conn: psycopg.Connection[Any], sql: str, params: dict[str, Any]) -> str:
    """The text plan of one claim (EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)), rolled back."""
    return "\n".join(explain(conn, sql, params, "ANALYZE, BUFFERS, COSTS OFF"))


def run(name: str, rounds: int, how: str, every: int, plan: bool = False) -> dict[str, Any]:
    with fresh_database("pgqueue_proto") as dsn, psycopg.connect(dsn, autocommit=True) as conn:
        cand = CANDIDATES[name](conn)
        cand.setup()
        holder = pin(dsn, how)
        samples: list[dict[str, int]] = []
        try:
            for n in range(rounds):
                cand.enqueue()
                if n % every == 0:
                    sql, params = cand.statement(CLAIM)
                    samples.append({"claimed": n * BATCH, **explain_buffers(conn, sql, params)})
                for _ in range(BATCH // CLAIM):
                    cand.complete(cand.claim(CLAIM))
            if plan:
                cand.enqueue()
                print(
                    f"-- {name}, {how}:\n{explain_text(conn, *cand.statement(CLAIM))}",
                    file=sys.stderr,
                )
            (dead,) = conn.execute(
                "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = 'pgqueue.jobs'::regclass"
            ).fetchone() or (0,)
        finally:
            holder.close()
        claims = rounds * BATCH // CLAIM
        return {"samples": samples, "plain_claims": cand.plain or claims, "claims": claims,
                "n_dead_tup": dead}  # fmt: skip


def rotation_blocked(how: str) -> bool:
    """Can a ready partition be truncated while the pinning session is open?"""
    with fresh_database("pgqueue_proto") as dsn, psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE pgqueue.ready_p (id bigint, gen int) PARTITION BY LIST (gen);"
            " CREATE TABLE pgqueue.ready_p0 PARTITION OF pgqueue.ready_p FOR VALUES IN (0);"
            " CREATE TABLE pgqueue.ready_p1 PARTITION OF pgqueue.ready_p FOR VALUES IN (1)"
        )
        holder = psycopg.connect(dsn)
        if how == "rr":
            holder.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            holder.execute("SELECT count(*) FROM pgqueue.ready_p")  # a report over the queue
        else:
            holder.execute("SELECT txid_current()")
        try:
            conn.execute("SET lock_timeout = '200ms'")
            conn.execute("TRUNCATE pgqueue.ready_p0")
        except psycopg.errors.LockNotAvailable:
            return True
        finally:
            holder.close()
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=400, help="rounds of 128 jobs")
    parser.add_argument("--every", type=int, default=50, help="EXPLAIN every N rounds")
    parser.add_argument("--pin", choices=("xid", "rr", "none"), default="xid")
    parser.add_argument("--only", choices=sorted(CANDIDATES), action="append")
    parser.add_argument("--slack", type=float, default=SLACK, help="cursor: seconds")
    parser.add_argument("--plans", action="store_true", help="print each last claim's plan")
    args = parser.parse_args(argv)
    Cursor.slack = args.slack
    out: dict[str, Any] = {"pin": args.pin, "batch": BATCH, "claim": CLAIM, "slack": args.slack}
    for name in args.only or CANDIDATES:
        out[name] = run(name, args.rounds, args.pin, args.every, args.plans)
        samples = " ".join(
            f"{s['claimed']}:{s['buffers']}/{s['scan_buffers']}" for s in out[name]["samples"]
        )
        print(name, samples, file=sys.stderr)
    if args.pin != "none":
        out["rotation_blocked"] = rotation_blocked(args.pin)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
