"""The single async enqueue's two paths, interleaved in one process, with PgQueuer's.

``python -m benchmarks.enqueue_async_paths [--jobs 500] [--rounds 8] [--dsn DSN]``

A noisy machine moves every figure of ``benchmarks.enqueue_async`` between
invocations; here the clients take turns in one event loop, ``--jobs`` awaited
enqueues each per round (the order rotating), so each round compares them
under the same load. ``lean``: ``_enqueue.insert_one_async`` as pgqueue runs it
(libpq directly on the pooled connection, ``pgqueue/_lean.py``); ``usual``:
the same call through psycopg's cursor (``_client.enqueue_one_async``, what
every enqueue took before); ``pgqueuer (asyncpg)``: PgQueuer's
``Queries.enqueue`` on one asyncpg connection. Client CPU per job
(``time.process_time``) and jobs/s, medians over the rounds, and the median
of the per-round ratios against PgQueuer. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from benchmarks._db import server_dsn
from benchmarks.suite import db

Loop = Callable[[int], Awaitable[None]]


async def clients(dsn: str, peer_dsn: str | None, stack: list[Any]) -> dict[str, Loop]:
    import pgqueue
    from pgqueue import _client, _enqueue
    from pgqueue._core import enqueue_one_params
    from pgqueue._job import Job

    app = pgqueue.App(dsn)
    await app.__aenter__()
    stack.append(app)
    task = app.task_ref("bench.noop", queue="bench")
    database, registry = app.database, app.registry

    async def lean(n: int) -> None:
        for _ in range(n):
            await _enqueue.insert_one_async(database, registry, app, task.job(), None)

    async def usual(n: int) -> None:
        for _ in range(n):
            spec = task.job()
            params = enqueue_one_params(spec, registry.max_payload)
            async with database.connection_async(None) as conn:
                row = await _client.enqueue_one_async(conn, spec, params,
                                                      database.limited_queues)  # fmt: skip
            Job.from_row(row, app)

    out: dict[str, Loop] = {"lean": lean, "usual": usual}
    if peer_dsn is not None:
        import asyncpg
        from pgqueuer.db import AsyncpgDriver
        from pgqueuer.queries import Queries

        conn = await asyncpg.connect(peer_dsn)
        stack.append(conn)
        queries = Queries(AsyncpgDriver(conn))

        async def pgqueuer(n: int) -> None:
            for _ in range(n):
                await queries.enqueue("bench.noop", None, 0)

        out["pgqueuer (asyncpg)"] = pgqueuer
    return out


async def measure(dsn: str, peer_dsn: str | None, jobs: int, rounds: int) -> dict[str, Any]:
    stack: list[Any] = []
    try:
        loops = await clients(dsn, peer_dsn, stack)
        names = list(loops)
        for loop in loops.values():
            await loop(min(200, jobs))  # warm: pools open, statements prepared
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
        for r in range(rounds):
            for name in names[r % len(names):] + names[: r % len(names)]:
                c0, t0 = time.process_time(), time.perf_counter()
                await loops[name](jobs)
                c1, t1 = time.process_time(), time.perf_counter()
                runs[name].append(((c1 - c0) / jobs * 1000, jobs / (t1 - t0)))
        return runs
    finally:
        for obj in reversed(stack):
            await (obj.close_async() if hasattr(obj, "close_async") else obj.close())


def table(runs: dict[str, list[tuple[float, float]]]) -> str:
    peer = runs.get("pgqueuer (asyncpg)")
    lines = ["| client | CPU ms/job | jobs/s | CPU vs PgQueuer | rate vs PgQueuer |",
             "|---|---|---|---|---|"]  # fmt: skip
    for name, vals in runs.items():
        cpu = statistics.median(c for c, _ in vals)
        rate = statistics.median(r for _, r in vals)
        vs = ["", ""]
        if peer is not None:
            pairs = list(zip(vals, peer, strict=True))
            vs = [f"{statistics.median(a[i] / b[i] for a, b in pairs):.2f}x" for i in (0, 1)]
        lines.append(f"| {name} | {cpu:.4f} | {rate:,.0f} | {vs[0]} | {vs[1]} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", help="server (maintenance) DSN; default $PGQUEUE_BENCH_DSN")
    parser.add_argument("--jobs", type=int, default=500, help="enqueues per client per round")
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args(argv)
    from benchmarks.suite.peers.pgqueuer_peer import PgQueuerPeer

    dbs = db.Databases(args.dsn or server_dsn())
    try:
        dsn = dbs.create("enqueue_paths")
        peer, peer_dsn = PgQueuerPeer(), None
        if not peer.missing():
            peer_dsn = dbs.create("enqueue_paths_pgqueuer", migrate=False)
            peer.setup_schema(peer_dsn)
        runs = asyncio.run(measure(dsn, peer_dsn, args.jobs, args.rounds))
    finally:
        dbs.drop_all()
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"{args.jobs} jobs per client per round, {args.rounds} rounds; load average {load}\n")
    print(table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
