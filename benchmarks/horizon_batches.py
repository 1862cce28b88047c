"""The worker's batch statements under a pinned MVCC horizon: buffers per statement.

``python -m benchmarks.horizon_batches [--rounds 400] [--every 100] [--pin xid|rr|none]``

Load-independent, like ``benchmarks/horizon_maintenance.py``: round after
round one connection enqueues 128 jobs, claims them 32 at a time and records
their outcome with the worker's ``complete``, while another connection pins
the horizon. Every ``--every`` rounds, ``EXPLAIN (ANALYZE, BUFFERS)`` (rolled
back) of the statements that join a batch of 32 held jobs: ``complete``,
``heartbeat`` and ``release``, each as shipped and, where it differs, as it was
at commit ``ee211f9`` (read with ``git show``, so from a git checkout only).
``release`` selects ``pgqueue.jobs`` by ``id = ANY(...)`` now; joined through
``unnest()`` alone, as ``complete`` and ``heartbeat`` still are, the planner may
read all of ``jobs_running_idx``, which holds an entry for every job claimed
since the pin. ``leases_gone``, which finds its jobs by primary key, for
comparison.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

from benchmarks._db import fresh_database
from benchmarks.horizon_claims import BATCH, CLAIM, ENQUEUE, PAYLOAD, pin
from benchmarks.horizon_maintenance import explain
from pgqueue._sql import query

NAMES = ("complete", "heartbeat", "release", "leases_gone")
BEFORE = "ee211f9"  # the last commit whose batch statements joined through unnest() alone


def before() -> dict[str, str]:
    """The batch statements as they were at ``BEFORE`` (empty outside a git checkout)."""
    try:
        text = subprocess.run(
            ["git", "show", f"{BEFORE}:pgqueue/sql/worker.sql"], capture_output=True,
            text=True, check=True, cwd=Path(__file__).resolve().parent,
        ).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return {}
    parts = re.split(r"^-- name: (\w+)\s*$", text, flags=re.MULTILINE)
    return {n: b.strip() for n, b in zip(parts[1::2], parts[2::2], strict=True) if n in NAMES}


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


def run(rounds: int, every: int, how: str) -> dict[str, Any]:
    out: dict[str, Any] = {"pin": how, "samples": []}
    old = before()
    with fresh_database("pgqueue_batches") as dsn, psycopg.connect(dsn, autocommit=True) as conn:
        holder = pin(dsn, how)
        try:
            for r in range(rounds + 1):
                conn.execute(ENQUEUE, (PAYLOAD, BATCH))
                if r == 1:
                    conn.execute("ANALYZE pgqueue.jobs")  # what autovacuum's analyze sees
                for k in range(BATCH // CLAIM):
                    ids, token = claim(conn, CLAIM)
                    if r % every == 0 and k == 0:
                        sample: dict[str, Any] = {"jobs": r * BATCH}
                        for name in NAMES:
                            sql = query(name)
                            sample[name] = explain(conn, sql, params(name, ids, token))
                            if name in old and old[name] != sql:
                                sample[f"{name} before"] = explain(
                                    conn, old[name], params(name, ids, token)
                                )
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
    parser.add_argument("--pin", choices=("xid", "rr", "none"), default="xid")
    args = parser.parse_args(argv)
    t0 = time.monotonic()
    result = run(args.rounds, args.every, args.pin)
    result["seconds"] = round(time.monotonic() - t0, 1)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
