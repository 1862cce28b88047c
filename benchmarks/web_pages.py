"""Dashboard server time per page on a big table: 1,000,000 queued jobs and
5,000,000 finished ones, and two flows: a chord of 10,000 jobs and its callback,
a chain of 1,000 steps (the issue's target: under 100 ms a page).

    python -m benchmarks.web_pages [--queued 1000000] [--finished 5000000] [--runs 15]
                                   [--keep DSN] [--out benchmarks/results]

The rows are generated in SQL (``generate_series``), then ``VACUUM ANALYZE``;
each page is requested ``--runs`` times in process (Starlette's TestClient:
the app, its queries and the rendering, no network) after one warm-up, and
the median and the worst time are reported. ``--keep DSN`` reuses an
already-loaded database (build once, measure often).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psycopg

import pgqueue
from benchmarks._db import fresh_database

# Queued jobs per queue (shares of --queued), with 10% of each scheduled later.
QUEUES = {"default": 0.70, "email": 0.20, "reports": 0.09, "webhooks": 0.01}
TARGET_MS = 100.0
NOTES = """Reading: counts come from index-only scans capped at 10,000 and, beyond, estimates
from a block sample of about 30,000 rows; lists read an index in their own order
with a keyset cursor, so the page at the middle of the table costs what the first
does. A dead-letter filter by queue reads `jobs_dead_queue_idx` (queue, finished_at)
WHERE status = 'dead' (migration 0003): before it, a queue with no dead jobs among
50,000 made the page read every dead job (140.6 ms median, the one miss of the first
run). A free-text search has no index: it reads one window of 50,000 ids a page.
A flow's page reads its jobs by `jobs_flow_idx` without their times (decoding
10,000 timestamps cost more than the query), lays the graph out in Python and
draws at most 30 layers of 8 boxes; its table reads 50 jobs a page by keyset."""

FINISHED_SQL = """
INSERT INTO pgqueue.jobs (queue, task, args, status, attempts, run_at, started_at,
                          finished_at, created_at, result, last_error, errors)
SELECT q.name, q.name || '.task', jsonb_build_array(g.i, 'user-' || (g.i %% 5000)),
       s.status, 1, s.f - interval '2 seconds', s.f - interval '1 second', s.f,
       s.f - interval '2 seconds',
       CASE WHEN s.status = 'succeeded' THEN jsonb_build_object('ok', true) END,
       CASE WHEN s.status = 'dead' THEN 'RuntimeError: upstream said no' END,
       CASE WHEN s.status = 'dead' THEN '[{"attempt": 1, "error": "RuntimeError"}]'::jsonb
            ELSE '[]'::jsonb END
FROM generate_series(%(lo)s, %(hi)s) AS g(i)
CROSS JOIN LATERAL (SELECT (ARRAY['default', 'email', 'reports', 'webhooks'])[1 + (g.i / 3) %% 4]
                           AS name) AS q
CROSS JOIN LATERAL (
    SELECT now() - make_interval(secs => 7 * 86400.0 * (%(total)s - g.i) / %(total)s) AS f,
           CASE WHEN g.i %% 100 = 0 THEN 'dead' WHEN g.i %% 100 = 1 THEN 'cancelled'
                ELSE 'succeeded' END AS status) AS s
"""

QUEUED_SQL = """
INSERT INTO pgqueue.jobs (queue, task, args, priority, run_at, created_at)
SELECT %(queue)s, %(queue)s || '.task', jsonb_build_array(g.i, 'user-' || (g.i %% 5000)),
       (g.i %% 3)::smallint,
       CASE WHEN g.i %% 10 = 0 THEN now() + make_interval(secs => g.i %% 86400)
            ELSE now() - make_interval(secs => (%(n)s - g.i) * 0.01) END,
       now() - make_interval(secs => (%(n)s - g.i) * 0.01)
FROM generate_series(1, %(n)s) AS g(i)
"""


# A flow as a plain-SQL producer writes it (README, "The SQL contract"): every job
# with the flow's id (its first job's), a child with parent_ids and its edges.
FLOW_SQL = """
WITH ids AS (
    SELECT nextval(pg_get_serial_sequence('pgqueue.jobs', 'id')) AS id
    FROM generate_series(1, %(n)s)
), numbered AS (
    SELECT id, row_number() OVER (ORDER BY id) AS k, min(id) OVER () AS flow,
           lag(id) OVER (ORDER BY id) AS previous
    FROM ids
), header AS (
    SELECT array_agg(id ORDER BY id) FILTER (WHERE k < %(n)s) AS all_but_last FROM numbered
), rows AS (
    SELECT n.id, n.flow, n.k,
           CASE WHEN %(chain)s THEN CASE WHEN n.previous IS NOT NULL THEN ARRAY[n.previous] END
                WHEN n.k = %(n)s THEN h.all_but_last END AS parents
    FROM numbered AS n, header AS h
), ins AS (
    INSERT INTO pgqueue.jobs (id, queue, task, status, flow_id, parent_ids, pending_parents,
                              has_dependents, pass_result, attempts, started_at, finished_at,
                              leased_until)
    OVERRIDING SYSTEM VALUE
    SELECT r.id, 'flows', %(task)s || CASE WHEN r.k = %(n)s THEN '_last' ELSE '' END,
           CASE WHEN r.k <= %(done)s THEN 'succeeded' WHEN r.k = %(done)s + 1 THEN 'running'
                WHEN r.parents IS NULL THEN 'queued' ELSE 'blocked' END,
           r.flow, r.parents,
           CASE WHEN r.parents IS NULL OR r.k <= %(done)s + 1 THEN 0
                WHEN %(chain)s THEN 1 ELSE %(n)s - 1 - %(done)s END,
           %(chain)s OR r.k < %(n)s, CASE WHEN r.parents IS NOT NULL THEN 'previous' END,
           CASE WHEN r.k <= %(done)s + 1 THEN 1 ELSE 0 END,
           CASE WHEN r.k <= %(done)s + 1 THEN now() END, CASE WHEN r.k <= %(done)s THEN now() END,
           CASE WHEN r.k = %(done)s + 1 THEN now() + interval '1 hour' END
    FROM rows AS r
    RETURNING id, parent_ids
)
INSERT INTO pgqueue.job_dependencies (parent_id, child_id)
SELECT unnest(parent_ids), id FROM ins WHERE parent_ids IS NOT NULL
"""


def load_flows(conn: psycopg.Connection[Any]) -> None:
    """A chord of 10,000 jobs (9,000 succeeded, one running) and its callback; a
    chain of 1,000 steps, half done."""
    conn.execute(FLOW_SQL, {"n": 10_001, "chain": False, "done": 9_000, "task": "flows.fetch"})
    conn.execute(FLOW_SQL, {"n": 1_000, "chain": True, "done": 500, "task": "flows.step"})


def load(dsn: str, queued: int, finished: int, chunk: int = 500_000) -> float:
    """Fill the jobs table; returns the seconds it took."""
    t0 = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        for lo in range(1, finished + 1, chunk):
            hi = min(finished, lo + chunk - 1)
            conn.execute(FINISHED_SQL, {"lo": lo, "hi": hi, "total": finished})
            print(f"  finished rows: {hi:,}", flush=True)
        for name, share in QUEUES.items():
            conn.execute(QUEUED_SQL, {"queue": name, "n": int(queued * share)})
            print(f"  queued rows in {name}: {int(queued * share):,}", flush=True)
        conn.execute("INSERT INTO pgqueue.queues (name, max_running, rate_limit) "
                     "VALUES ('email', 50, 100)")  # fmt: skip
        conn.execute("INSERT INTO pgqueue.workers (id, hostname, pid, queues, concurrency) "
                     "VALUES ('bench-1', 'bench', 1, '{default,email}', 10)")  # fmt: skip
        load_flows(conn)
        conn.execute("VACUUM ANALYZE pgqueue.jobs")
    return time.perf_counter() - t0


def pages(dsn: str) -> list[tuple[str, str]]:
    """(label, path) of every page, with ids picked from the loaded table."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        (max_id,) = conn.execute("SELECT max(id) FROM pgqueue.jobs").fetchone() or (0,)
        dead = "SELECT id FROM pgqueue.jobs WHERE status = 'dead' LIMIT 1"
        (dead_id,) = conn.execute(dead).fetchone() or (1,)
        (queued_id,) = conn.execute(
            "SELECT id FROM pgqueue.jobs WHERE status = 'queued' AND queue = 'email' "
            "ORDER BY id DESC LIMIT 1").fetchone() or (1,)  # fmt: skip
        flows = conn.execute("SELECT flow_id, count(*), max(id) FROM pgqueue.jobs"
                             " WHERE flow_id IS NOT NULL GROUP BY flow_id"
                             " ORDER BY count(*) DESC").fetchall()  # fmt: skip
    middle = max_id // 2
    chord, chain = (flows[0], flows[1]) if len(flows) > 1 else ((0, 0, 0), (0, 0, 0))
    return [
        ("overview", "/"),
        ("jobs, newest", "/jobs"),
        ("jobs, page at the middle of the table (keyset)", f"/jobs?before={middle}"),
        ("jobs, status=dead", "/jobs?status=dead"),
        ("jobs, queue=email status=queued", "/jobs?queue=email&status=queued"),
        ("jobs, task filter", "/jobs?task=reports.task"),
        ("jobs, free-text search (matches)", "/jobs?q=user-42"),
        ("jobs, free-text search, no match (one 50,000-id window)", "/jobs?q=no-such-text"),
        ("job detail (dead)", f"/jobs/{dead_id}"),
        ("job detail (queued, limited queue)", f"/jobs/{queued_id}"),
        ("queues", "/queues"),
        ("schedules", "/schedules"),
        ("workers", "/workers"),
        ("dead letters", "/dead"),
        ("dead letters, queue=email", "/dead?queue=email"),
        ("dead letters, replay confirmation", "/dead?queue=email&confirm=replay"),
        ("dead letters, queue without dead jobs (worst case)", "/dead?queue=nosuch"),
        ("flows", "/flows"),
        (f"flow: chord of {chord[1] - 1:,} and its callback", f"/flows/{chord[0]}"),
        ("flow: the chord's blocked jobs", f"/flows/{chord[0]}?status=blocked"),
        (f"flow: chain of {chain[1]:,} steps (30 layers drawn)", f"/flows/{chain[0]}"),
        ("flow: the chain's layers 481-510", f"/flows/{chain[0]}?layer=481"),
        (f"job detail (the chord's callback: {chord[1] - 1:,} parents)", f"/jobs/{chord[2]}"),
    ]


def measure(dsn: str, runs: int) -> list[dict[str, Any]]:
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    from starlette.testclient import TestClient

    from pgqueue.web import asgi_app

    results = []
    with pgqueue.App(dsn) as app, TestClient(asgi_app(app)) as client:
        for label, path in pages(dsn):
            status = client.get(path).status_code  # warm-up (plans, pool)
            # A page that reads every row gets a few runs only.
            times: list[float] = []
            while len(times) < runs and (len(times) < 3 or sum(times) < 5000):
                t0 = time.perf_counter()
                status = client.get(path).status_code
                times.append((time.perf_counter() - t0) * 1000)
            median = statistics.median(times)
            results.append({"page": label, "path": path, "status": status, "runs": len(times),
                            "median_ms": median, "max_ms": max(times)})  # fmt: skip
            print(f"  {label:52} {statistics.median(times):8.1f} ms  (max {max(times):.1f}, "
                  f"HTTP {status})", flush=True)  # fmt: skip
    return results


def report(results: list[dict[str, Any]], meta: dict[str, Any], out: Path) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# Dashboard server time per page ({stamp})",
        "",
        f"Table: {meta['queued']:,} queued jobs (10% scheduled later) in 4 queues and "
        f"{meta['finished']:,} finished ones (1% dead, 1% cancelled) over 7 days; "
        f"loaded in {meta['load_seconds']:.0f} s. {meta['runs']} requests per page after a "
        f"warm-up, in process (Starlette TestClient: queries and rendering, no network), "
        f"on {meta['machine']}, PostgreSQL {meta['server_version']}, shared with other work.",
        "",
        f"Target: under {TARGET_MS:.0f} ms per page.",
        "",
        "| page | path | HTTP | runs | median ms | max ms | under target |",
        "| --- | --- | --- | ---: | ---: | ---: | --- |",
    ]
    for r in results:
        ok = "yes" if r["median_ms"] < TARGET_MS else "**no**"
        lines.append(f"| {r['page']} | `{r['path']}` | {r['status']} | {r['runs']} | "
                     f"{r['median_ms']:.1f} | {r['max_ms']:.1f} | {ok} |")  # fmt: skip
    command = f"python -m benchmarks.web_pages {meta['args']}".strip()
    lines += ["", NOTES, "", f"Command: `{command}` (`make bench-web`)"]
    path = out / f"{stamp}-web.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / f"{stamp}-web.json").write_text(json.dumps({"meta": meta, "results": results},
                                                      indent=2, default=str))  # fmt: skip
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queued", type=int, default=1_000_000)
    parser.add_argument("--finished", type=int, default=5_000_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--keep", metavar="DSN", help="measure this loaded database")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    meta: dict[str, Any] = {"queued": args.queued, "finished": args.finished, "runs": args.runs,
                            "machine": f"{platform.machine()}, {_cores()} cores",
                            "args": " ".join(argv or __import__("sys").argv[1:])}  # fmt: skip
    if args.keep:
        meta["load_seconds"] = 0.0
        return _run(args.keep, args, meta)
    with fresh_database("pgqueue_bench_web") as dsn:
        print(f"loading {args.queued:,} queued + {args.finished:,} finished jobs", flush=True)
        meta["load_seconds"] = load(dsn, args.queued, args.finished)
        return _run(dsn, args, meta)


def _run(dsn: str, args: argparse.Namespace, meta: dict[str, Any]) -> int:
    with psycopg.connect(dsn) as conn:
        meta["server_version"] = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
    results = measure(dsn, args.runs)
    path = report(results, meta, args.out)
    print(f"report: {path}")
    return 0


def _cores() -> int:
    import os

    return os.cpu_count() or 1


if __name__ == "__main__":
    raise SystemExit(main())
