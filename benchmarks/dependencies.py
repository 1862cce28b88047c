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
one connection), and the server's own execution time of one claim and one
complete of ``--batch`` jobs (EXPLAIN ANALYZE, the minimum of ten per round).
Alternating in one database, on one connection, keeps the comparison fair on
a shared machine better than two worker runs would; it
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
        conn.execute(query("complete"), complete_params([r[0] for r in rows], token),
                     prepare=False)  # fmt: skip
    return jobs / (time.perf_counter() - t0)


def complete_params(ids: list[int], token: str) -> dict[str, str]:
    n = len(ids)
    return {
        "ids": "{" + ",".join(map(str, ids)) + "}",
        "tokens": "{" + ",".join([token] * n) + "}",
        "statuses": "{" + ",".join(["succeeded"] * n) + "}",
        "results": "{" + ",".join(["NULL"] * n) + "}",
        "delays": "{" + ",".join(["NULL"] * n) + "}",
        "errors": "{" + ",".join(["NULL"] * n) + "}",
        "entries": "{" + ",".join(["NULL"] * n) + "}",
    }


def server_times(conn: psycopg.Connection[Any], claim_sql: str, batch: int) -> tuple[float, float]:
    """The server's own execution time (ms, EXPLAIN ANALYZE) of one claim and one
    complete of ``batch`` jobs: what the machine's other load disturbs least."""
    conn.execute("TRUNCATE pgqueue.jobs")
    conn.execute("INSERT INTO pgqueue.jobs (queue, task) SELECT 'bench', 'bench.noop'"
                 " FROM generate_series(1, %s)", (batch,))  # fmt: skip
    token = str(uuid.uuid4())
    params = {"queues": ["bench"], "limit": batch, "lease": 30.0, "worker_id": "b",
              "token": token}  # fmt: skip
    explain = "EXPLAIN (ANALYZE, FORMAT JSON) "
    row = conn.execute(explain + claim_sql, params).fetchone()
    claim_ms = float(row[0][0]["Execution Time"]) if row else 0.0
    ids = [r[0] for r in conn.execute("SELECT id FROM pgqueue.jobs")]
    row = conn.execute(explain + query("complete"), complete_params(ids, token)).fetchone()
    return claim_ms, float(row[0][0]["Execution Time"]) if row else 0.0


def main(argv: list[str] | None = None) -> int:
    args = script_args(
        "python -m benchmarks.dependencies", __doc__ or "", argv,
        ("--jobs", int, 20000), ("--batch", int, 100), ("--rounds", int, 5),
    )  # fmt: skip
    rates: dict[str, list[float]] = {"before": [], "after": []}
    times: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
    with fresh_database("pgqueue_bench_deps", args.dsn or server_dsn()) as dsn:
        conn = psycopg.connect(dsn, autocommit=True)
        try:
            for n in range(args.rounds):
                # Each round in the other order, so that a load that drifts
                # over the run favours neither variant.
                for variant in ("before", "after") if n % 2 == 0 else ("after", "before"):
                    enabled = "ENABLE" if variant == "after" else "DISABLE"
                    conn.execute(f"ALTER TABLE pgqueue.jobs {enabled} TRIGGER USER")
                    claim_sql = query("claim") if variant == "after" else before_claim()
                    rates[variant].append(drain(conn, claim_sql, args.jobs, args.batch))
                    for _ in range(10):
                        times[variant].append(server_times(conn, claim_sql, args.batch))
        finally:
            conn.close()
    report = {
        v: {"median_per_s": round(statistics.median(r)), "best_per_s": round(max(r)),
            "runs": [round(x) for x in r],
            "claim_ms_min": round(min(t[0] for t in times[v]), 3),
            "complete_ms_min": round(min(t[1] for t in times[v]), 3)}
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
        for v, r in report.items():
            print(f"  {v:6}: server time of one claim / complete of {args.batch} (min):"
                  f" {r['claim_ms_min']} ms / {r['complete_ms_min']} ms")  # fmt: skip
        print(f"  after / before (medians): {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
