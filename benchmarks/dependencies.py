"""What dependencies cost jobs that have none: the claim and complete statements A/B.

    python -m benchmarks.dependencies --jobs 20000 --batch 100 --rounds 5

Migration 0004 adds a row trigger on ``pgqueue.jobs`` (its WHEN clause filters
out every job without dependents) and two columns to the claim's RETURNING (a
CASE that skips the parents' results for jobs without parents). This script
drains ``--jobs`` plain jobs with the worker's own ``claim`` and ``complete``
statements, ``--batch`` at a time, in one database, alternating two variants
round after round:

- ``before``: the trigger disabled and the claim's RETURNING as it was before 0004;
- ``after``: the schema and statements as shipped.

It reports the median and best jobs/s of each (claim + complete, end to end,
one connection). Alternating in one database, on one connection, keeps the
comparison fair on a shared machine better than two worker runs would; it
measures the statements, not the worker's Python.
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid
from typing import Any

import psycopg

from benchmarks._db import fresh_database, script_args, server_dsn
from pgqueue._sql import query


def before_claim() -> str:
    """The claim as it was before 0004: RETURNING without pass_result and the parents."""
    text = query("claim")
    start = text.index("jobs.pass_result,")
    end = text.index("jobs.priority, jobs.run_at")
    return text[:start] + text[end:]


def drain(conn: psycopg.Connection[Any], claim_sql: str, jobs: int, batch: int) -> float:
    conn.execute("TRUNCATE pgqueue.jobs")
    conn.execute(
        "INSERT INTO pgqueue.jobs (queue, task) SELECT 'bench', 'bench.noop'"
        " FROM generate_series(1, %s)",
        (jobs,),
    )
    conn.execute("VACUUM ANALYZE pgqueue.jobs")
    t0 = time.perf_counter()
    while True:
        token = str(uuid.uuid4())
        params = {"queues": ["bench"], "limit": batch, "lease": 30.0, "worker_id": "b",
                  "token": token}  # fmt: skip
        rows = conn.execute(claim_sql, params).fetchall()
        if not rows:
            break
        ids = [r[0] for r in rows]
        n = len(ids)
        conn.execute(query("complete"), {
            "ids": "{" + ",".join(map(str, ids)) + "}",
            "tokens": "{" + ",".join([token] * n) + "}",
            "statuses": "{" + ",".join(["succeeded"] * n) + "}",
            "results": "{" + ",".join(["NULL"] * n) + "}",
            "delays": "{" + ",".join(["NULL"] * n) + "}",
            "errors": "{" + ",".join(["NULL"] * n) + "}",
            "entries": "{" + ",".join(["NULL"] * n) + "}",
        }, prepare=False)  # fmt: skip
    return jobs / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    args = script_args(
        "python -m benchmarks.dependencies", __doc__ or "", argv,
        ("--jobs", int, 20000), ("--batch", int, 100), ("--rounds", int, 5),
    )  # fmt: skip
    rates: dict[str, list[float]] = {"before": [], "after": []}
    with fresh_database("pgqueue_bench_deps", args.dsn or server_dsn()) as dsn:
        conn = psycopg.connect(dsn, autocommit=True)
        try:
            for _ in range(args.rounds):
                for variant in ("before", "after"):
                    enabled = "ENABLE" if variant == "after" else "DISABLE"
                    conn.execute(f"ALTER TABLE pgqueue.jobs {enabled} TRIGGER USER")
                    claim_sql = query("claim") if variant == "after" else before_claim()
                    rates[variant].append(drain(conn, claim_sql, args.jobs, args.batch))
        finally:
            conn.close()
    report = {
        v: {"median_per_s": round(statistics.median(r)), "best_per_s": round(max(r)),
            "runs": [round(x) for x in r]}
        for v, r in rates.items()
    }  # fmt: skip
    ratio = report["after"]["median_per_s"] / report["before"]["median_per_s"]
    if args.json:
        import json

        print(json.dumps({**report, "after_over_before": round(ratio, 3)}, indent=2))
    else:
        print(f"claim + complete of {args.jobs} jobs without dependencies, {args.batch} a batch")
        for v, r in report.items():
            print(f"  {v:6}: median {r['median_per_s']:>7} jobs/s, best {r['best_per_s']:>7}"
                  f"  (runs: {r['runs']})")  # fmt: skip
        print(f"  after / before (medians): {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
