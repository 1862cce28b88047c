"""The worker's batch statements under a pinned MVCC horizon: buffers per statement.

``python -m benchmarks.horizon_batches [--rounds 400] [--every 100] [--batch 128]
[--pin xid|rr|none]``

Load-independent, like ``benchmarks/horizon_maintenance.py``: round after
round one connection enqueues 128 jobs, claims them ``--batch`` at a time and
records their outcome with the worker's ``complete``, while another connection
pins the horizon. The database also carries ``jobs_running_idx (id) WHERE
status = 'running'``, the index migration 0008 dropped, so that it grows as it
did. Every ``--every`` rounds, ``EXPLAIN (ANALYZE, BUFFERS)`` (rolled back) of
the statements that join a batch of held jobs, ``complete``, ``heartbeat`` and
``release``: ``before``, with that index, where the planner read it whole (the
statistics show it nearly empty; under the pin it holds an entry for every job
claimed since), and ``now``, with it dropped inside the rolled-back
transaction, which leaves one primary-key probe per job. ``leases_gone``,
which finds its jobs by primary key either way, for comparison.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from typing import Any

import psycopg

from benchmarks._db import explain as explain_rolled_back
from benchmarks._db import fresh_database
from benchmarks.horizon_claims import BATCH, ENQUEUE, PAYLOAD, pin
from pgqueue._sql import query

NAMES = ("complete", "heartbeat", "release", "leases_gone")
RUNNING_IDX = "CREATE INDEX jobs_running_idx ON pgqueue.jobs (id) WHERE status = 'running'"


def params(name: str, ids: list[int], token: str) -> dict[str, Any]:
    n = len(ids)
    common: dict[str, Any] = {"ids": ids, "tokens": [token] * n}
    extra: dict[str, dict[str, Any]] = {
        "complete": {"statuses": ["succeeded"] * n, "results": [None] * n,
                     "delays": [0.0] * n, "errors": [None] * n, "entries": [None] * n},
        "heartbeat": {"leases": [30.0] * n},
        "release": {"started": [False] * n},
        "leases_gone": {},
    }  # fmt: skip
    return {**common, **extra[name]}


def claim(conn: psycopg.Connection[Any], limit: int) -> tuple[list[int], str]:
    token = str(uuid.uuid4())
    p = {"queues": ["bench"], "limit": limit, "lease": 30.0, "worker_id": "b", "token": token}
    return [row[0] for row in conn.execute(query("claim"), p).fetchall()], token


def explain(
    conn: psycopg.Connection[Any], sql: str, params: dict[str, Any], *, drop_index: bool
) -> dict[str, Any]:
    """Buffers, time and the indexes read by one execution, rolled back."""
    setup = ["DROP INDEX pgqueue.jobs_running_idx"] if drop_index else []
    plan = explain_rolled_back(conn, sql, params, setup=setup)[0][0]
    top = plan["Plan"]
    return {"buffers": int(top["Shared Hit Blocks"]) + int(top["Shared Read Blocks"]),
            "ms": round(float(plan["Execution Time"]), 2),
            "indexes": sorted(set(_indexes(top)))}  # fmt: skip


def _indexes(node: dict[str, Any]) -> list[str]:
    on_jobs = node.get("Relation Name") == "jobs" and "Index Name" in node
    found = [node["Index Name"]] if on_jobs else []
    for child in node.get("Plans", ()):
        found += _indexes(child)
    return found


def run(rounds: int, every: int, batch: int, how: str) -> dict[str, Any]:
    out: dict[str, Any] = {"pin": how, "batch": batch, "samples": []}
    with fresh_database("pgqueue_batches") as dsn, psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(RUNNING_IDX)
        holder = pin(dsn, how)
        try:
            for r in range(rounds + 1):
                conn.execute(ENQUEUE, (PAYLOAD, BATCH))
                if r == 1 or r % every == 0:
                    conn.execute("ANALYZE pgqueue.jobs")  # what autovacuum's analyze sees
                for k in range(BATCH // batch):
                    ids, token = claim(conn, batch)
                    if r % every == 0 and k == 0:
                        sample: dict[str, Any] = {"jobs": r * BATCH}
                        for name in NAMES:
                            p = params(name, ids, token)
                            if name != "leases_gone":
                                sample[f"{name} before"] = explain(conn, query(name), p,
                                                                   drop_index=False)  # fmt: skip
                            sample[f"{name} now"] = explain(conn, query(name), p, drop_index=True)
                        out["samples"].append(sample)
                        print(json.dumps(sample), file=sys.stderr, flush=True)
                    conn.execute(query("complete"), params("complete", ids, token))
        finally:
            holder.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=400)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--batch", type=int, default=128, choices=(16, 32, 64, 128))
    parser.add_argument("--pin", choices=("xid", "rr", "none"), default="xid")
    args = parser.parse_args(argv)
    t0 = time.monotonic()
    result = run(args.rounds, args.every, args.batch, args.pin)
    result["seconds"] = round(time.monotonic() - t0, 1)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
