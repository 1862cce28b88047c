"""The price of indexing ``leased_until`` (``jobs_lease_idx``): claim, heartbeat, completion.

``python -m benchmarks.lease_index [--rounds 6] [--jobs 4096] [--beats 3]``

One connection, A/B interleaved: each round runs both variants in turn (the
index dropped, then created again; the order alternates by round). A variant
enqueues ``--jobs``, claims them 32 at a time (``claim``), renews every lease
``--beats`` times 64 at a time (``heartbeat``), completes them 32 at a time
(``complete``), then deletes them and vacuums. Each statement runs under
``EXPLAIN (ANALYZE, WAL, BUFFERS)``, so it reports its own WAL and buffers
(the server is shared: its WAL position moves with everyone's). Per phase and
job: microseconds (wall clock, EXPLAIN's overhead included: noisy), WAL
records, full-page images and bytes, buffers; and the share of HOT updates.
With the index the heartbeat's updates cannot be HOT: each renewal adds an
entry to every index of the row.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg

from benchmarks._db import fresh_database
from benchmarks.horizon_claims import ENQUEUE, PAYLOAD
from pgqueue._sql import query
from pgqueue.worker._claimed import Outcome
from pgqueue.worker._completer import complete_params

CLAIM, BEAT, COMPLETE = 32, 64, 32
CREATE = ("CREATE INDEX jobs_lease_idx ON pgqueue.jobs (leased_until)"
          " WHERE status = 'running' AND leased_until IS NOT NULL")  # fmt: skip
DROP = "DROP INDEX IF EXISTS pgqueue.jobs_lease_idx"
PHASES = ("claim", "heartbeat", "complete")


def _explained(conn: psycopg.Connection[Any], sql: str, params: dict[str, Any]) -> dict[str, int]:
    """Run ``sql`` (for real) under EXPLAIN ANALYZE: its own WAL and buffers, no one else's."""
    row = conn.execute("EXPLAIN (ANALYZE, WAL, BUFFERS, FORMAT JSON) " + sql, params).fetchone()
    assert row is not None
    top = row[0][0]["Plan"]
    return {"wal_records": int(top.get("WAL Records", 0)), "wal_fpi": int(top.get("WAL FPI", 0)),
            "wal_bytes": int(top.get("WAL Bytes", 0)),
            "buffers": int(top["Shared Hit Blocks"]) + int(top["Shared Read Blocks"])}  # fmt: skip


def _hot_updates(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    """(updates, HOT updates) of pgqueue.jobs so far (this backend's pending counts flushed)."""
    conn.execute("SELECT pg_stat_force_next_flush()")
    row = conn.execute("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables"
                       " WHERE relid = 'pgqueue.jobs'::regclass").fetchone()  # fmt: skip
    assert row is not None
    return int(row[0]), int(row[1])


Statements = Iterator[tuple[str, dict[str, Any]]]


def _measure(conn: psycopg.Connection[Any], jobs: int, statements: Statements) -> dict[str, float]:
    """Per job: wall-clock microseconds (with EXPLAIN's overhead), WAL, buffers; HOT share."""
    upd0, hot0 = _hot_updates(conn)
    total = {"wal_records": 0, "wal_fpi": 0, "wal_bytes": 0, "buffers": 0}
    t0 = time.perf_counter()
    for sql, params in statements:
        for key, value in _explained(conn, sql, params).items():
            total[key] += value
    seconds = time.perf_counter() - t0
    upd, hot = _hot_updates(conn)
    out = {f"{key}_per_job": value / jobs for key, value in total.items()}
    return {"us_per_job": seconds / jobs * 1e6, **out,
            "hot_share": (hot - hot0) / max(upd - upd0, 1)}  # fmt: skip


def one_variant(conn: psycopg.Connection[Any], jobs: int, beats: int) -> dict[str, Any]:
    conn.execute(ENQUEUE, (PAYLOAD, jobs))
    token = str(uuid.uuid4())
    params = {"queues": ["bench"], "limit": CLAIM, "lease": 30.0, "worker_id": "bench",
              "token": token}  # fmt: skip
    claims = ((query("claim"), params) for _ in range(jobs // CLAIM))
    out = {"claim": _measure(conn, jobs, claims)}
    held = [row[0] for row in conn.execute(
        "SELECT id FROM pgqueue.jobs WHERE status = 'running' ORDER BY id").fetchall()]
    assert len(held) == jobs, len(held)

    def renewals() -> Statements:
        for _ in range(beats):
            for i in range(0, len(held), BEAT):
                ids = held[i:i + BEAT]
                yield query("heartbeat"), {"ids": ids, "tokens": [token] * len(ids),
                                           "leases": [30.0] * len(ids)}  # fmt: skip

    def completions() -> Statements:
        for i in range(0, len(held), COMPLETE):
            batch = [Outcome(j, token, "succeeded", "null", None, None, None)
                     for j in held[i:i + COMPLETE]]  # fmt: skip
            yield query("complete"), complete_params(batch)

    out["heartbeat"] = _measure(conn, jobs * beats, renewals())
    out["complete"] = _measure(conn, jobs, completions())
    assert _count(conn, "succeeded") == jobs
    conn.execute("DELETE FROM pgqueue.jobs")
    conn.execute("VACUUM pgqueue.jobs")
    return out


def _count(conn: psycopg.Connection[Any], status: str) -> int:
    row = conn.execute("SELECT count(*) FROM pgqueue.jobs WHERE status = %s", (status,)).fetchone()
    assert row is not None
    return int(row[0])


def run(rounds: int, jobs: int, beats: int) -> dict[str, Any]:
    samples: dict[str, list[dict[str, Any]]] = {"without": [], "with": []}
    with fresh_database("pgqueue_lease_idx") as dsn, psycopg.connect(dsn, autocommit=True) as conn:
        for r in range(rounds):
            order = ("without", "with") if r % 2 == 0 else ("with", "without")
            for variant in order:
                conn.execute(DROP)
                if variant == "with":
                    conn.execute(CREATE)
                samples[variant].append(one_variant(conn, jobs, beats))
                print(json.dumps({"round": r, variant: samples[variant][-1]}), file=sys.stderr,
                      flush=True)  # fmt: skip
    medians = {v: {p: {k: round(statistics.median(s[p][k] for s in runs), 3)
                       for k in runs[0][p]} for p in PHASES}
               for v, runs in samples.items()}  # fmt: skip
    ratios = {p: round(medians["with"][p]["us_per_job"] / medians["without"][p]["us_per_job"], 3)
              for p in PHASES}  # fmt: skip
    return {"rounds": rounds, "jobs": jobs, "beats": beats, "medians": medians,
            "time_ratio_with_over_without": ratios}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--jobs", type=int, default=4096)
    parser.add_argument("--beats", type=int, default=3)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.rounds, args.jobs, args.beats), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
