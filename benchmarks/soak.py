"""Soak: 30 minutes of steady state with the pruner on a short retention.

``python -m benchmarks.soak [--quick] [--duration 1800] [--every 10] [--retention 60]``

The steady-state shape of ``benchmarks/steady.py`` (a producer process
keeping ~4,000 jobs waiting, batches of 128, 256-byte payloads; one pgqueue
worker process at concurrency 16) with the worker's pruner deleting
succeeded jobs ``--retention`` seconds after they finish. After a warm-up,
every ``--every`` seconds: jobs completed and pickup p99 over the interval,
the size of ``pgqueue.jobs``, of ``jobs_claim_idx`` and of all its indexes,
dead and live tuples. The first minute and the last one are compared
(rate and pickup p99 of each, measured over that minute), and the sizes go
into a PNG chart.

Targets (the issue's): the last minute's rate at least 95% of the first's;
the claim index does not grow without bound (here: its size at the end at
most twice its median over the first half of the run).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg

from benchmarks._db import server_dsn
from benchmarks.load import (
    QUEUE,
    RESULTS,
    TARGET_WAITING,
    ProducerProcess,
    cell,
    machine_line,
    machine_note,
    one,
    pgqueue_window,
    running,
    settings_from,
    sizes,
    verdict,
    write,
)  # fmt: skip
from benchmarks.load_chart import draw
from benchmarks.steady import watch
from benchmarks.suite import db
from benchmarks.suite.procs import WorkerProcess

MINUTE = 60.0


@dataclass(frozen=True)
class Settings:
    duration: float = 1800.0
    warmup: float = 30.0
    every: float = 10.0
    retention: float = 60.0
    concurrency: int = 16
    target: int = TARGET_WAITING


QUICK = Settings(duration=8.0, warmup=2.0, every=2.0, retention=2.0)


def run(server: str, s: Settings) -> dict[str, Any]:
    window = min(MINUTE, s.duration / 4)  # "a minute", shorter in a short run
    dbs = db.Databases(server)
    dsn = dbs.create("soak")
    try:
        worker = WorkerProcess("pgqueue", {"dsn": dsn, "burst": False, "queues": [QUEUE],
                                           "concurrency": s.concurrency,
                                           "options": {"retention": s.retention}})  # fmt: skip
        producer = ProducerProcess("pgqueue", dsn, target=s.target)
        points: list[dict[str, Any]] = []
        with running(producer, worker), psycopg.connect(dsn, autocommit=True) as conn:
            watch(s.warmup, worker, producer)
            start = last = one(conn, "SELECT clock_timestamp()")
            t0 = time.monotonic()
            first: dict[str, Any] | None = None
            while (elapsed := time.monotonic() - t0) < s.duration:
                watch(min(s.every, s.duration - elapsed), worker, producer)
                now = one(conn, "SELECT clock_timestamp()")
                seconds = (now - last).total_seconds()
                win = pgqueue_window(conn, last, now)
                facts = sizes(conn)
                points.append({
                    "t": round(time.monotonic() - t0, 1),
                    "completed_per_s": round(win["completed"] / seconds, 1),
                    "pickup_p99_ms": win["pickup_p99_ms"],
                    "table_mb": round(facts["table_bytes"] / 1e6, 2),
                    "claim_index_mb": round(facts["claim_index_bytes"] / 1e6, 3),
                    "indexes_mb": round(facts["indexes_bytes"] / 1e6, 2),
                    "n_dead_tup": facts["n_dead_tup"], "n_live_tup": facts["n_live_tup"],
                })  # fmt: skip
                last = now
                if first is None and (now - start).total_seconds() >= window:
                    first = minute(conn, start, window)
            end = one(conn, "SELECT clock_timestamp()")
            final = minute(conn, end, -window)
    finally:
        dbs.drop_all()
    return {"settings": asdict(s), "machine": machine_note(server), "window_s": window,
            "first": first, "last": final, "series": points}  # fmt: skip


def minute(conn: psycopg.Connection[Any], at: Any, seconds: float) -> dict[str, Any]:
    """Rate and pickup figures over ``seconds`` from ``at`` (negative: up to ``at``)."""
    start, end = sorted([at, one(conn, "SELECT %s::timestamptz + make_interval(secs => %s)",
                                 (at, seconds))])  # fmt: skip
    win = pgqueue_window(conn, start, end)
    return {**win, "rate": round(win["completed"] / abs(seconds), 1)}


def targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    first, last, series = r["first"], r["last"], r["series"]
    share = last["rate"] / first["rate"] if first and first["rate"] else None
    half = [p["claim_index_mb"] for p in series[: max(1, len(series) // 2)]]
    end_idx = series[-1]["claim_index_mb"] if series else None
    bound = 2 * statistics.median(half) if half else None
    return [
        {"target": "last minute's rate >= 95% of the first's",
         "value": None if share is None else f"{last['rate']:,.0f} vs {first['rate']:,.0f}"
         f" ({share:.0%})", "met": None if share is None else share >= 0.95},
        {"target": "claim index bounded (end <= 2x its median over the first half)",
         "value": None if bound is None else f"{end_idx} MB vs median {bound / 2:.3f} MB",
         "met": None if bound is None or end_idx is None else end_idx <= bound},
    ]  # fmt: skip


def markdown(r: dict[str, Any]) -> str:
    s, m = r["settings"], r["machine"]
    lines = ["# Soak", ""]
    if s["duration"] != Settings().duration:
        lines += [f"**Reduced size** ({s['duration']:.0f} s; the issue's: 1,800 s)."
                  " Figures from such runs are not the headline.", ""]  # fmt: skip
    lines += [
        f"Steady state (~{s['target']:,} waiting, batches of 128, 256-byte payloads), one"
        f" worker at concurrency {s['concurrency']}, pruner retention {s['retention']:.0f} s,"
        f" {s['duration']:.0f} s after a {s['warmup']:.0f} s warm-up; a sample every"
        f" {s['every']:.0f} s. {machine_line(m)}",
        "",
        f"| window ({r['window_s']:.0f} s) | completed/s | pickup p50 ms | p95 | p99 |",
        "|---|---|---|---|---|",
    ]  # fmt: skip
    for name in ("first", "last"):
        w = r[name]
        if w:
            lines.append(f"| {name} | {w['rate']:,.0f} | {cell(w['pickup_p50_ms'])}"
                         f" | {cell(w['pickup_p95_ms'])} | {cell(w['pickup_p99_ms'])} |")
    series = r["series"]
    if series:
        lines += ["", "| t (s) | completed/s | pickup p99 ms | table MB | claim idx MB"
                  " | indexes MB | dead tuples | live tuples |", "|---" * 8 + "|"]
        step = max(1, len(series) // 12)
        for p in [*series[::step][:-1], series[-1]] if len(series) > 1 else series:
            lines.append(f"| {p['t']} | {p['completed_per_s']:,.0f} | {cell(p['pickup_p99_ms'])}"
                         f" | {p['table_mb']} | {p['claim_index_mb']} | {p['indexes_mb']}"
                         f" | {p['n_dead_tup']} | {p['n_live_tup']} |")  # fmt: skip
    lines += ["", "| target | value | verdict |", "|---|---|---|"]
    for t in targets(r):
        lines.append(f"| {t['target']} | {cell(t['value'])} | {verdict(t['met'])} |")
    if r.get("chart"):
        lines += ["", f"![soak]({r['chart']})"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="seconds, not minutes")
    parser.add_argument("--dsn", help="server (maintenance) DSN; default $PGQUEUE_BENCH_DSN")
    for flag in ("duration", "warmup", "every", "retention"):
        parser.add_argument(f"--{flag}", type=float)
    parser.add_argument("--concurrency", type=int)
    parser.add_argument("--out", type=Path, help="results folder (default benchmarks/results)")
    parser.add_argument("--tag", default="", help="suffix of the report's file name")
    args = parser.parse_args(argv)
    settings = settings_from(args, QUICK, Settings())
    report = run(args.dsn or server_dsn(), settings)
    report["targets"] = targets(report)
    tag = args.tag or ("quick" if args.quick else "")
    out = args.out or RESULTS
    report["chart"] = draw(out, f"soak{'-' + tag if tag else ''}", report["series"],
                           "Soak: rate, pickup p99, sizes")  # fmt: skip
    write("soak", report, markdown, out, tag)
    return 0 if report["series"] else 1


if __name__ == "__main__":
    sys.exit(main())
