"""The maintenance and operator scans under a pinned MVCC horizon: buffers per statement.

``python -m benchmarks.horizon_maintenance [--rounds 800] [--every 200] [--pin xid|rr]``

Load-independent, like ``benchmarks/horizon_claims.py`` (whose loop it
reuses): round after round one connection enqueues 128 jobs, claims them 32
at a time with the worker's bounded claim and completes them, while another
pins the horizon. A few jobs stay running with an expired lease (what the
rescuer is for). Every ``--every`` rounds, ``EXPLAIN (ANALYZE, BUFFERS)``
(rolled back) of: the rescuer's ``rescue`` (a full pass, and a bounded pass
from the cutoff of one ``INTERVAL`` ago), ``pgqueue stats``'
``queue_stats``, the metrics collector's ``metrics_queues`` and the
``pgqueue.queue_stats`` view. Each claimed and completed job leaves dead
entries in ``jobs_running_idx`` and dead heap tuples that the pin keeps.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import psycopg

from benchmarks._db import explain as explain_rolled_back
from benchmarks._db import fresh_database
from benchmarks.horizon_claims import BATCH, CLAIM, ENQUEUE, PAYLOAD, claim_params, pin
from pgqueue._sql import query

Params = Callable[[psycopg.Connection[Any]], dict[str, Any]]


def since_last_pass(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """A bounded rescue pass: from the cutoff of a pass ``INTERVAL`` seconds ago."""
    row = conn.execute("SELECT now() - make_interval(secs => %s)", (INTERVAL,)).fetchone()
    assert row is not None
    return {"limit": 100, "after": row[0]}


INTERVAL = 5.0  # the rescuer's default interval
STATEMENTS: dict[str, tuple[Callable[[], str], Params]] = {
    "rescue": (lambda: query("rescue"), lambda _: {"limit": 100, "after": None}),  # full pass
    "rescue bounded": (lambda: query("rescue"), since_last_pass),
    "queue_stats": (lambda: query("queue_stats"), lambda _: {}),
    "metrics_queues": (lambda: query("metrics_queues"), lambda _: {}),
    "queue_stats view": (lambda: "SELECT * FROM pgqueue.queue_stats", lambda _: {}),
}
COMPLETE = ("UPDATE pgqueue.jobs SET status = 'succeeded', finished_at = now(),"
            " leased_until = NULL WHERE id = ANY(%s)")  # fmt: skip


def explain(conn: psycopg.Connection[Any], sql: str, params: dict[str, Any]) -> dict[str, Any]:
    plan = explain_rolled_back(conn, sql, params)[0][0]
    top = plan["Plan"]
    return {"buffers": int(top["Shared Hit Blocks"]) + int(top["Shared Read Blocks"]),
            "ms": round(float(plan["Execution Time"]), 2)}  # fmt: skip


def text_plan(conn: psycopg.Connection[Any], sql: str, params: dict[str, Any]) -> str:
    return "\n".join(explain_rolled_back(conn, sql, params, "ANALYZE, BUFFERS, COSTS OFF"))


def run(rounds: int, every: int, how: str, plans: bool, lease: float = 30.0) -> dict[str, Any]:
    out: dict[str, Any] = {"pin": how, "lease": lease, "samples": []}
    with fresh_database("pgqueue_maint") as dsn, psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(ENQUEUE, (PAYLOAD, 4))  # four jobs left running, lease expired
        conn.execute("UPDATE pgqueue.jobs SET status = 'running', attempts = 1,"
                     " leased_until = now() - interval '1 minute'")  # fmt: skip
        conn.execute("VACUUM ANALYZE pgqueue.jobs")
        holder = pin(dsn, how)
        try:
            for r in range(rounds + 1):
                if r % every == 0:
                    sample: dict[str, Any] = {"jobs": r * BATCH}
                    for name, (sql, params) in STATEMENTS.items():
                        sample[name] = explain(conn, sql(), params(conn))
                    out["samples"].append(sample)
                    print(json.dumps(sample), file=sys.stderr, flush=True)
                conn.execute(ENQUEUE, (PAYLOAD, BATCH))
                for _ in range(BATCH // CLAIM):
                    params = {**claim_params(CLAIM), "lease": lease}
                    rows = conn.execute(query("claim"), params).fetchall()
                    ids = [row[0] for row in rows]
                    conn.execute(COMPLETE, (ids,))
            if plans:
                out["plans"] = {name: text_plan(conn, sql(), params(conn))
                                for name, (sql, params) in STATEMENTS.items()}  # fmt: skip
        finally:
            holder.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=800)
    parser.add_argument("--every", type=int, default=200)
    parser.add_argument("--pin", choices=("xid", "rr", "none"), default="xid")
    parser.add_argument("--plans", action="store_true", help="text plans after the last round")
    parser.add_argument("--lease", type=float, default=30.0,
                        help="the claims' lease (0: every completed job's entry has lapsed)")
    args = parser.parse_args(argv)
    t0 = time.monotonic()
    result = run(args.rounds, args.every, args.pin, args.plans, args.lease)
    result["seconds"] = round(time.monotonic() - t0, 1)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
