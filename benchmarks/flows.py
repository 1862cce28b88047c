"""Workflows: a chord against plain jobs, hand-off along a chain, enqueueing a flow.

``python -m benchmarks.flows [--quick] [--jobs 10000] [--chain 1000] [--rounds 3]``

Each in a fresh database (``benchmarks._db``), sync no-op tasks, one worker:

1. **Chord drain.** ``--jobs`` independent no-op jobs drained by a burst worker
   (``app.run_worker(until_empty=True)``, concurrency 100), then a chord of
   ``--jobs`` no-op jobs plus its callback (which receives the ``--jobs``
   results), drained the same way; the two alternate for ``--rounds``. Time:
   each batch's span from the server's clock, first ``started_at`` to last
   ``finished_at`` (the callback's, for the chord). Target: chord <= 1.5x.
2. **Chain hand-off.** An idle worker process (concurrency 10); a chain of
   ``--chain`` no-op steps (each receives the previous result). Per step,
   ``started_at`` of the child minus ``finished_at`` of its parent (server
   clock): the time from the parent's completion committing to the child's
   claim. p50/p95/p99/max. Target: p50 <= 5 ms. Then, as a reference for the
   machine's load, the same worker's wake-up for independent jobs enqueued 10 ms
   apart (enqueue to claim).
3. **Enqueue.** ``app.enqueue_many`` of ``--jobs`` independent jobs against
   ``app.enqueue_flow`` of a ``--jobs``-job flow, as a chord (``--jobs - 1``
   jobs and a callback) and as a group, in one call each, interleaved (each form
   first in turn) over ``2 * --rounds + 1`` rounds, the table emptied after each
   call; jobs/s over the call, building the specs included. Target: a flow at
   >= 50% of the rate.

Writes ``benchmarks/results/<date>-flows.md`` and ``.json`` (``--out`` elsewhere;
``-quick`` in the name for ``--quick``). Figures are noisy on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import psycopg

import pgqueue
from benchmarks._db import fresh_database, server_dsn

RESULTS = Path(__file__).resolve().parent / "results"
QUEUE = "bench"
TARGETS = {"chord_ratio_max": 1.5, "handoff_p50_ms_max": 5.0, "enqueue_ratio_min": 0.5}


def noop(*_: Any) -> None:
    """A step: takes (and ignores) the previous step's result when there is one."""
    return None


def merge(results: list[Any]) -> int:
    return len(results)


def make_app(dsn: str) -> pgqueue.App:
    app = pgqueue.App(dsn)
    app.task(name="bench.noop", queue=QUEUE)(noop)
    app.task(name="bench.merge", queue=QUEUE)(merge)
    return app


def _span(dsn: str, ids: list[int]) -> tuple[int, float]:
    """Succeeded jobs among ``ids`` and their span in seconds (first start, last finish)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE status = 'succeeded'),"
            " extract(epoch FROM max(finished_at) - min(started_at))::float8"
            " FROM pgqueue.jobs WHERE id = ANY(%s)",
            (ids,),
        ).fetchone()
    assert row is not None
    return int(row[0]), float(row[1] or 0.0)


def _drain(app: pgqueue.App) -> float:
    app.close()  # the worker takes its own connections
    t0 = time.perf_counter()
    app.run_worker(QUEUE, concurrency=100, until_empty=True, rescue=False)
    return time.perf_counter() - t0


def _vacuum(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE pgqueue.jobs")


def chord_drain(dsn: str, jobs: int, rounds: int) -> dict[str, Any]:
    app = make_app(dsn)
    step, cb = app.tasks["bench.noop"], app.tasks["bench.merge"]
    plain: list[float] = []
    chord: list[float] = []
    walls: dict[str, list[float]] = {"plain": [], "chord": []}
    ok = True
    for r in range(rounds):
        for kind in ("plain", "chord") if r % 2 == 0 else ("chord", "plain"):
            if kind == "plain":
                ids = [j.id for j in app.enqueue_many([step.job() for _ in range(jobs)])]
            else:
                flow = pgqueue.chord([step.job() for _ in range(jobs)], cb.job())
                ids = [j.id for j in app.enqueue_flow(flow).jobs]
            _vacuum(dsn)
            walls[kind].append(_drain(app))
            done, span = _span(dsn, ids)
            ok = ok and done == len(ids)
            (plain if kind == "plain" else chord).append(span)
    app.close()
    p, c = statistics.median(plain), statistics.median(chord)
    return {
        "jobs": jobs, "rounds": rounds, "all_succeeded": ok,
        "plain_span_s": [round(s, 3) for s in plain], "chord_span_s": [round(s, 3) for s in chord],
        "plain_wall_s": [round(s, 3) for s in walls["plain"]],
        "chord_wall_s": [round(s, 3) for s in walls["chord"]],
        "plain_per_s": round(jobs / p) if p else None,
        "chord_per_s": round((jobs + 1) / c) if c else None,
        "ratio": round(c / p, 3) if p else None,
    }  # fmt: skip


def _idle_worker(dsn: str) -> None:
    sys.exit(make_app(dsn).run_worker(QUEUE, concurrency=10, rescue=False))


def _quantiles(ms: list[float]) -> dict[str, float]:
    q = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else [ms[0]] * 99
    return {"p50_ms": round(q[49], 2), "p95_ms": round(q[94], 2), "p99_ms": round(q[98], 2),
            "max_ms": round(max(ms), 2), "mean_ms": round(statistics.fmean(ms), 2)}  # fmt: skip


def chain_handoff(dsn: str, steps: int) -> dict[str, Any]:
    app = make_app(dsn)
    step = app.tasks["bench.noop"]
    proc = multiprocessing.get_context("spawn").Process(target=_idle_worker, args=(dsn,))
    proc.start()
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            deadline = time.monotonic() + 60
            while not conn.execute("SELECT count(*) FROM pgqueue.live_workers").fetchone()[0]:  # type: ignore[index]
                if time.monotonic() > deadline:
                    raise RuntimeError("the chain's worker did not start")
                time.sleep(0.05)
            time.sleep(0.5)  # idle now
            handle = app.enqueue_flow(pgqueue.chain(*(step.job() for _ in range(steps))))
            ids = [j.id for j in handle.jobs]
            deadline = time.monotonic() + max(60.0, steps * 0.2)
            while conn.execute("SELECT count(*) FROM pgqueue.jobs WHERE id = ANY(%s)"
                               " AND status NOT IN ('succeeded', 'dead', 'cancelled')",
                               (ids,)).fetchone()[0]:  # type: ignore[index]  # fmt: skip
                if time.monotonic() > deadline:
                    raise RuntimeError("the chain did not finish")
                time.sleep(0.05)
            rows = conn.execute(
                "SELECT c.status, extract(epoch FROM c.started_at - p.finished_at)::float8 * 1000,"
                " extract(epoch FROM c.started_at - c.created_at)::float8 * 1000"
                " FROM unnest(%s::bigint[]) WITH ORDINALITY AS s(id, n)"
                " JOIN pgqueue.jobs AS c ON c.id = s.id"
                " LEFT JOIN pgqueue.jobs AS p ON p.id = (%s::bigint[])[s.n - 1]"
                " ORDER BY s.n",
                (ids, ids),
            ).fetchall()
            baseline = _wake_ups(conn, app, min(steps, 200))
    finally:
        proc.terminate()
        proc.join(30)
        app.close()
    handoffs = [float(r[1]) for r in rows[1:] if r[1] is not None]
    ok = all(r[0] == "succeeded" for r in rows)
    total = sum(handoffs)
    return {"steps": steps, "all_succeeded": ok, "first_step_wait_ms": round(rows[0][2], 2),
            "handoff_total_s": round(total / 1000, 3), **_quantiles(handoffs),
            "baseline": baseline}  # fmt: skip


def _wake_ups(conn: psycopg.Connection[Any], app: pgqueue.App, jobs: int) -> dict[str, float]:
    """The same idle worker's wake-up for independent jobs enqueued 10 ms apart: enqueue
    to claim, server clock (what the machine's load does to a wake-up, same run)."""
    step = app.tasks["bench.noop"]
    ids = []
    for _ in range(jobs):
        ids.append(step.enqueue().id)
        time.sleep(0.010)
    deadline = time.monotonic() + 60
    while conn.execute("SELECT count(*) FROM pgqueue.jobs WHERE id = ANY(%s)"
                       " AND status <> 'succeeded'", (ids,)).fetchone()[0]:  # type: ignore[index]  # fmt: skip
        if time.monotonic() > deadline:
            raise RuntimeError("the wake-up jobs did not finish")
        time.sleep(0.05)
    rows = conn.execute("SELECT extract(epoch FROM started_at - created_at)::float8 * 1000"
                        " FROM pgqueue.jobs WHERE id = ANY(%s)", (ids,)).fetchall()  # fmt: skip
    return _quantiles([float(r[0]) for r in rows])


def enqueue_rates(dsn: str, jobs: int, rounds: int) -> dict[str, Any]:
    app = make_app(dsn)
    step, cb = app.tasks["bench.noop"], app.tasks["bench.merge"]
    forms = {
        "enqueue_many": lambda: app.enqueue_many([step.job() for _ in range(jobs)]),
        "chord": lambda: app.enqueue_flow(
            pgqueue.chord([step.job() for _ in range(jobs - 1)], cb.job())),
        "group": lambda: app.enqueue_flow(pgqueue.group(step.job() for _ in range(jobs))),
    }  # fmt: skip
    rates: dict[str, list[float]] = {k: [] for k in forms}
    forms["enqueue_many"]()  # warm the pool, the statements and the sequence
    order = list(forms)
    for r in range(rounds):
        for kind in order[r % 3:] + order[: r % 3]:  # each form first in turn
            t0 = time.perf_counter()
            forms[kind]()
            rates[kind].append(jobs / (time.perf_counter() - t0))
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("TRUNCATE pgqueue.jobs, pgqueue.job_dependencies")
    app.close()
    med = {k: statistics.median(v) for k, v in rates.items()}
    out: dict[str, Any] = {"jobs": jobs, "rounds": rounds}
    for kind, values in rates.items():
        out[kind] = {"per_s": round(med[kind]), "min": round(min(values)),
                     "max": round(max(values))}  # fmt: skip
    out["chord_ratio"] = round(med["chord"] / med["enqueue_many"], 3)
    out["group_ratio"] = round(med["group"] / med["enqueue_many"], 3)
    return out


def run(server: str, jobs: int, steps: int, rounds: int) -> dict[str, Any]:
    report: dict[str, Any] = {"date": date.today().isoformat(), "cpus": os.cpu_count(),
                              "machine": platform.machine(), "python": platform.python_version(),
                              "targets": TARGETS}  # fmt: skip
    with fresh_database("pgqueue_bench_flows", server) as dsn:
        with psycopg.connect(dsn) as conn:
            report["server"] = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
        report["chord"] = chord_drain(dsn, jobs, rounds)
    with fresh_database("pgqueue_bench_flows", server) as dsn:
        report["chain"] = chain_handoff(dsn, steps)
    with fresh_database("pgqueue_bench_flows", server) as dsn:
        report["enqueue"] = enqueue_rates(dsn, jobs, max(rounds * 2 + 1, 3))
    report["met"] = {
        "chord": report["chord"]["ratio"] is not None
        and report["chord"]["ratio"] <= TARGETS["chord_ratio_max"],
        "handoff": report["chain"]["p50_ms"] <= TARGETS["handoff_p50_ms_max"],
        "enqueue": report["enqueue"]["chord_ratio"] >= TARGETS["enqueue_ratio_min"],
    }
    return report


def _yes(met: bool) -> str:
    return "yes" if met else "**no**"


def markdown(r: dict[str, Any]) -> str:
    c, ch, e, met = r["chord"], r["chain"], r["enqueue"], r["met"]
    return "\n".join([
        f"# Workflows ({r['date']})",
        "",
        f"{r['cpus']} CPUs ({r['machine']}), PostgreSQL {r['server']} on the same machine,"
        f" Python {r['python']}; sync no-op tasks, one worker process. Spans from the server's"
        " clock. The machine may be shared with other work: read the ratios.",
        "",
        "| measurement | figure | target | met |",
        "|---|---|---|---|",
        f"| chord of {c['jobs']:,} + callback vs {c['jobs']:,} independent jobs, drain span"
        f" (median of {c['rounds']}) | {c['ratio']}x ({c['chord_per_s']:,}/s vs"
        f" {c['plain_per_s']:,}/s) | <= {TARGETS['chord_ratio_max']}x | {_yes(met['chord'])} |",
        f"| hand-off along a {ch['steps']:,}-step chain, idle worker | p50 {ch['p50_ms']} ms,"
        f" p95 {ch['p95_ms']} ms, p99 {ch['p99_ms']} ms, max {ch['max_ms']} ms |"
        f" p50 <= {TARGETS['handoff_p50_ms_max']:g} ms | {_yes(met['handoff'])} |",
        f"| enqueue a {e['jobs']:,}-job chord in one call vs `enqueue_many` (median of"
        f" {e['rounds']}) | {e['chord_ratio']:.0%} ({e['chord']['per_s']:,}/s vs"
        f" {e['enqueue_many']['per_s']:,}/s) | >= {TARGETS['enqueue_ratio_min']:.0%}"
        f" | {_yes(met['enqueue'])} |",
        f"| enqueue a {e['jobs']:,}-job group in one call vs `enqueue_many` | "
        f"{e['group_ratio']:.0%} ({e['group']['per_s']:,}/s) | (no target) | |",
        "",
        f"- Chord spans (s): {c['chord_span_s']}; independent: {c['plain_span_s']}; burst"
        f" worker wall time (s, start-up included): chord {c['chord_wall_s']}, independent"
        f" {c['plain_wall_s']}. Every job succeeded: {c['all_succeeded']}.",
        f"- Chain: mean hand-off {ch['mean_ms']} ms, {ch['handoff_total_s']} s over the chain;"
        f" the same idle worker woke for independent jobs (enqueue to claim, 10 ms apart) at"
        f" p50 {ch['baseline']['p50_ms']} ms, p95 {ch['baseline']['p95_ms']} ms (a reference"
        " for the machine's load during the run);"
        f" the first step waited {ch['first_step_wait_ms']} ms from enqueue to claim. Every"
        f" step succeeded: {ch['all_succeeded']}.",
        f"- Enqueue jobs/s (median, min-max): enqueue_many {e['enqueue_many']['per_s']:,}"
        f" ({e['enqueue_many']['min']:,}-{e['enqueue_many']['max']:,}), chord"
        f" {e['chord']['per_s']:,} ({e['chord']['min']:,}-{e['chord']['max']:,}), group"
        f" {e['group']['per_s']:,} ({e['group']['min']:,}-{e['group']['max']:,}).",
        "",
        "Command: `python -m benchmarks.flows" + (" --quick`" if r.get("quick") else "`"),
        "",
    ])  # fmt: skip


def write(report: dict[str, Any], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{report['date']}-flows{'-quick' if report.get('quick') else ''}"
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    path = out / f"{stem}.md"
    path.write_text(markdown(report))
    return path


QUICK = {"jobs": 300, "chain": 30, "rounds": 1}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.flows",
                                     description=__doc__.splitlines()[0])  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="tiny sizes: proves it runs")
    parser.add_argument("--dsn", help="server (maintenance) DSN; default $PGQUEUE_BENCH_DSN")
    parser.add_argument("--jobs", type=int, help="jobs per chord and per enqueue (10000)")
    parser.add_argument("--chain", type=int, help="steps of the chain (1000)")
    parser.add_argument("--rounds", type=int, help="rounds of the drain comparison (3)")
    parser.add_argument("--out", type=Path, help=f"directory for the report (default {RESULTS})")
    args = parser.parse_args(argv)
    sizes = dict(QUICK) if args.quick else {"jobs": 10_000, "chain": 1000, "rounds": 3}
    for key in sizes:
        if getattr(args, key) is not None:
            sizes[key] = getattr(args, key)
    if sizes["jobs"] < 2 or sizes["chain"] < 2 or sizes["rounds"] < 1:
        parser.error("--jobs and --chain need at least 2, --rounds at least 1")
    report = run(args.dsn or server_dsn(), sizes["jobs"], sizes["chain"], sizes["rounds"])
    report["quick"] = args.quick
    path = write(report, args.out or RESULTS)
    print(path.read_text())
    ok = report["chord"]["all_succeeded"] and report["chain"]["all_succeeded"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
