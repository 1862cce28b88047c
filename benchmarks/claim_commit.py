"""What a durable claim costs: drain throughput with the claim committed at
``synchronous_commit = on`` (durable, the server default) and ``off``.

    python -m benchmarks.claim_commit --jobs 20000 --concurrency 100 --rounds 3

Each round drains ``--jobs`` no-op jobs with a burst worker (one process, in
this process) once per variant, the order alternating between rounds; the
``off`` variant sets ``pgqueue.claim_commit = 'off'`` on the database (the
claim then commits without waiting for its WAL flush, as earlier versions
always did). Completions commit durably in both. The server must run with
``synchronous_commit = on`` and ``fsync = on`` for the figures to mean
anything (printed at the start). Reports the median, min and max jobs/s of the
jobs' own span (first claim to last completion, server clock).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import psycopg
from psycopg import sql

import pgqueue
from benchmarks._db import fresh_database, script_args, server_dsn, spread
from benchmarks.drain import ENQUEUE_CHUNK, drained, noop


def set_claim_commit(conn: psycopg.Connection[tuple[object, ...]], sync: bool) -> None:
    """Durable claims (the default) or ``pgqueue.claim_commit = 'off'``, for new sessions."""
    db = sql.Identifier(str(conn.info.dbname))
    if sync:
        conn.execute(sql.SQL("ALTER DATABASE {} RESET pgqueue.claim_commit").format(db))
    else:
        conn.execute(sql.SQL("ALTER DATABASE {} SET pgqueue.claim_commit = 'off'").format(db))


def drain_once(dsn: str, jobs: int, concurrency: int, sync: bool) -> float:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE pgqueue.jobs")
    app = pgqueue.App(dsn)
    task = app.task(name="bench.noop", queue="bench")(noop)
    for start in range(0, jobs, ENQUEUE_CHUNK):
        app.enqueue_many([task.job() for _ in range(min(ENQUEUE_CHUNK, jobs - start))])
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE pgqueue.jobs")
        conn.execute("CHECKPOINT")  # neither variant pays for the other's dirty pages
        set_claim_commit(conn, sync)
    try:
        code = app.run_worker("bench", concurrency=concurrency, until_empty=True, rescue=False)
    finally:
        app.close()
    done, span = drained(dsn)
    if code != 0 or done != jobs or not span:
        raise RuntimeError(f"drain failed: exit {code}, {done} of {jobs} succeeded")
    return float(jobs / span)


def main(argv: list[str] | None = None) -> int:
    args = script_args("python -m benchmarks.claim_commit", __doc__ or "", argv,
                       ("--jobs", int, 20000), ("--concurrency", int, 100),
                       ("--rounds", int, 3))  # fmt: skip
    rates: dict[str, list[float]] = {"on": [], "off": []}
    with fresh_database("pgqueue_bench_claim") as dsn:
        with psycopg.connect(dsn) as conn:
            settings = {
                name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
                for name in ("synchronous_commit", "fsync", "server_version")
            }
        print(f"server: {server_dsn()} {settings}", file=sys.stderr)
        for r in range(args.rounds):
            order = ("on", "off") if r % 2 == 0 else ("off", "on")
            for variant in order:
                rate = drain_once(dsn, args.jobs, args.concurrency, variant == "on")
                rates[variant].append(rate)
                print(f"round {r + 1} claim sync {variant:>3}: {rate:,.0f} jobs/s",
                      file=sys.stderr)  # fmt: skip
    summary: dict[str, Any] = {
        "jobs": args.jobs,
        "concurrency": args.concurrency,
        "settings": settings,
        **{f"claim_sync_{v}": spread(xs) for v, xs in rates.items()},
    }
    on, off = summary["claim_sync_on"]["median"], summary["claim_sync_off"]["median"]
    summary["durable_over_async"] = round(on / off, 3)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for v in ("on", "off"):
            s = summary[f"claim_sync_{v}"]
            print(f"claim synchronous_commit={v:<3}: {s['median']:>7,} jobs/s"
                  f" (min {s['min']:,}, max {s['max']:,})")  # fmt: skip
        print(f"durable claims: {summary['durable_over_async']:.1%} of the async-commit rate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
