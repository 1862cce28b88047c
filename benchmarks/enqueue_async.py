"""Single enqueue through the async API: client CPU per job and rate, pgqueue vs PgQueuer.

``python -m benchmarks.enqueue_async [--quick] [--jobs 10000] [--runs 3] [--profile]``

One job per call, awaited in a loop on one event loop, each call its own
transaction (the producer shape of an async web handler): pgqueue's
``await task.enqueue_async()`` (its async pool) against PgQueuer's
``await Queries.enqueue(entrypoint, payload, priority)`` on one asyncpg
connection (its fast driver) and on one psycopg async connection (the driver
pgqueue uses). Client CPU: ``time.process_time()`` of this process over the
loop (it runs nothing else), per job; rate: jobs over wall time. Each
figure is the median of ``--runs`` runs. ``--profile``: pyinstrument over
one more pgqueue run; its text report goes next to the results. ``--floor``:
the drivers alone on one connection (``SELECT 1``, a 0.5 ms ``pg_sleep``, an
autocommit ``INSERT ... RETURNING``), psycopg async against asyncpg: what
a statement costs the client before pgqueue adds anything.

Targets (the issue's): pgqueue's client CPU per job at most PgQueuer's, and
its rate at least 1.2x.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

import psycopg

from benchmarks._db import server_dsn
from benchmarks.load import RESULTS, cell, machine_line, machine_note, verdict, write
from benchmarks.suite import db

Loop = Callable[[int], Awaitable[None]]


@dataclass(frozen=True)
class Settings:
    jobs: int = 10_000
    runs: int = 3
    profile: bool = False
    floor: bool = False


QUICK = Settings(jobs=300, runs=1)


async def measure(loop: Loop, jobs: int, runs: int) -> dict[str, Any]:
    await loop(min(200, jobs))  # warm: pools open, statements prepared
    cpu, rate = [], []
    for _ in range(runs):
        c0, t0 = time.process_time(), time.perf_counter()
        await loop(jobs)
        c1, t1 = time.process_time(), time.perf_counter()
        cpu.append((c1 - c0) / jobs * 1000)
        rate.append(jobs / (t1 - t0))
    return {"cpu_ms_per_job": round(statistics.median(cpu), 4),
            "rate": round(statistics.median(rate), 1),
            "runs_cpu": cpu, "runs_rate": rate}  # fmt: skip


async def pgqueue_run(dsn: str, s: Settings, profile_to: Path | None) -> dict[str, Any]:
    import pgqueue

    async with pgqueue.App(dsn) as app:
        task = app.task_ref("bench.noop", queue="bench")

        async def loop(n: int) -> None:
            for _ in range(n):
                await task.enqueue_async()

        out = await measure(loop, s.jobs, s.runs)
        if profile_to is not None:
            out["profile"] = await profile(loop, s.jobs, profile_to)
        return out


async def profile(loop: Loop, jobs: int, path: Path) -> str | None:
    try:
        from pyinstrument import Profiler
    except ImportError:
        return None
    profiler = Profiler(interval=0.0002, async_mode="enabled")
    with profiler:
        await loop(jobs)
    path.write_text(profiler.output_text(unicode=False, show_all=False))
    return path.name


async def pgqueuer_run(dsn: str, s: Settings, driver: str) -> dict[str, Any]:
    from pgqueuer.queries import Queries

    if driver == "asyncpg":
        import asyncpg
        from pgqueuer.db import AsyncpgDriver

        conn: Any = await asyncpg.connect(dsn)
        queries = Queries(AsyncpgDriver(conn))
    else:
        from pgqueuer.db import PsycopgDriver

        conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
        queries = Queries(PsycopgDriver(conn))

    async def loop(n: int) -> None:
        for _ in range(n):
            await queries.enqueue("bench.noop", None, 0)

    try:
        return await measure(loop, s.jobs, s.runs)
    finally:
        await conn.close()


FLOOR = (("SELECT 1", "SELECT 1"), ("pg_sleep 0.5 ms", "SELECT pg_sleep(0.0005)"),
         ("INSERT RETURNING", "INSERT INTO floor (x) VALUES (1) RETURNING id"))  # fmt: skip


async def driver_floor(dsn: str, s: Settings) -> dict[str, Any]:
    """Client CPU per statement of each driver alone (see the module docstring)."""
    import asyncpg

    pconn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    aconn = await asyncpg.connect(dsn)
    await pconn.execute("CREATE TABLE IF NOT EXISTS floor (id bigserial PRIMARY KEY, x int)")
    out: dict[str, Any] = {}
    try:
        for label, sql in FLOOR:

            async def p_loop(n: int, sql: str = sql) -> None:
                for _ in range(n):
                    await (await pconn.execute(sql)).fetchone()

            async def a_loop(n: int, sql: str = sql) -> None:
                for _ in range(n):
                    await aconn.fetchval(sql)

            out[label] = {"psycopg": await measure(p_loop, s.jobs, s.runs),
                          "asyncpg": await measure(a_loop, s.jobs, s.runs)}  # fmt: skip
    finally:
        await pconn.close()
        await aconn.close()
    return out


def run(server: str, s: Settings, out: Path) -> dict[str, Any]:
    from benchmarks.suite.peers.pgqueuer_peer import PgQueuerPeer

    dbs = db.Databases(server)
    results: dict[str, Any] = {}
    try:
        dsn = dbs.create("enqueue_async")
        path = out / f"{date.today().isoformat()}-enqueue-async-profile.txt" if s.profile else None
        results["pgqueue"] = asyncio.run(pgqueue_run(dsn, s, path))
        peer = PgQueuerPeer()
        reason = peer.missing()
        for driver in ("asyncpg", "psycopg"):
            key = f"pgqueuer ({driver})"
            if reason:
                results[key] = {"status": reason}
                continue
            peer_dsn = dbs.create(f"enqueue_async_pgqueuer_{driver}", migrate=False)
            peer.setup_schema(peer_dsn)
            results[key] = asyncio.run(pgqueuer_run(peer_dsn, s, driver))
        floor = asyncio.run(driver_floor(dsn, s)) if s.floor and not reason else None
    finally:
        dbs.drop_all()
    report = {"settings": asdict(s), "machine": machine_note(server), "results": results}
    if floor:
        report["floor"] = floor
    report["targets"] = targets(report)
    return report


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    ours = report["results"]["pgqueue"]
    peers = [(k, v) for k, v in report["results"].items() if k != "pgqueue" and "rate" in v]
    if not peers:
        return [{"target": "client CPU per job <= PgQueuer's; rate >= 1.2x", "value": None,
                 "met": None}]  # fmt: skip
    best_cpu = min(peers, key=lambda kv: kv[1]["cpu_ms_per_job"])
    best_rate = max(peers, key=lambda kv: kv[1]["rate"])
    return [
        {"target": "client CPU per job at most PgQueuer's (its best driver)",
         "value": f"{ours['cpu_ms_per_job']} vs {best_cpu[1]['cpu_ms_per_job']} ms"
         f" ({best_cpu[0]})", "met": ours["cpu_ms_per_job"] <= best_cpu[1]["cpu_ms_per_job"]},
        {"target": "rate at least 1.2x PgQueuer's (its best driver)",
         "value": f"{ours['rate'] / best_rate[1]['rate']:.2f}x ({best_rate[0]})",
         "met": ours["rate"] >= 1.2 * best_rate[1]["rate"]},
    ]  # fmt: skip


def markdown(r: dict[str, Any]) -> str:
    s, m = r["settings"], r["machine"]
    lines = ["# Single enqueue, async API", ""]
    if s["jobs"] != Settings().jobs:
        lines += [f"**Reduced size** ({s['jobs']:,} jobs per run)."
                  " Figures from such runs are not the headline.", ""]  # fmt: skip
    lines += [
        f"{s['jobs']:,} awaited single enqueues per run, median of {s['runs']};"
        f" {machine_line(m)}",
        "", "| client | client CPU ms/job | jobs/s | status |", "|---|---|---|---|",
    ]  # fmt: skip
    for name, v in r["results"].items():
        rate = cell(v.get("rate"), "{:,.0f}")
        lines.append(f"| {name} | {cell(v.get('cpu_ms_per_job'))} | {rate}"
                     f" | {v.get('status', 'ok')} |")  # fmt: skip
    lines += ["", "| target | value | verdict |", "|---|---|---|"]
    for t in r["targets"]:
        lines.append(f"| {t['target']} | {cell(t['value'])} | {verdict(t['met'])} |")
    if r.get("floor"):
        lines += ["", "The drivers alone (one connection, awaited one at a time): client CPU"
                  " ms per statement, and statements per second (an autocommit INSERT waits"
                  " for its commit's WAL flush, as every enqueue does):", "",
                  "| statement | psycopg async CPU | asyncpg CPU | psycopg async /s |"
                  " asyncpg /s |", "|---|---|---|---|---|"]
        for label, v in r["floor"].items():
            p, a = v["psycopg"], v["asyncpg"]
            lines.append(f"| {label} | {p['cpu_ms_per_job']} | {a['cpu_ms_per_job']}"
                         f" | {p['rate']:,.0f} | {a['rate']:,.0f} |")  # fmt: skip
    prof = r["results"]["pgqueue"].get("profile")
    if prof:
        lines += ["", f"Profile of pgqueue's loop (pyinstrument): `{prof}`."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few hundred jobs")
    parser.add_argument("--dsn", help="server (maintenance) DSN; default $PGQUEUE_BENCH_DSN")
    parser.add_argument("--jobs", type=int)
    parser.add_argument("--runs", type=int)
    parser.add_argument("--profile", action="store_true", help="pyinstrument one pgqueue run")
    parser.add_argument("--floor", action="store_true", help="the drivers alone, too")
    parser.add_argument("--out", type=Path, help="results folder (default benchmarks/results)")
    parser.add_argument("--tag", default="", help="suffix of the report's file name")
    args = parser.parse_args(argv)
    base = asdict(QUICK if args.quick else Settings())
    for key in ("jobs", "runs"):
        if getattr(args, key) is not None:
            base[key] = getattr(args, key)
    base["profile"] = args.profile
    base["floor"] = args.floor
    out = args.out or RESULTS
    out.mkdir(parents=True, exist_ok=True)
    report = run(args.dsn or server_dsn(), Settings(**base), out)
    write("enqueue-async", report, markdown, out, args.tag or ("quick" if args.quick else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
