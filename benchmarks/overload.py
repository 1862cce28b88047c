"""Overload: offered 1.5x what the worker can complete, then back to 1x.

``python -m benchmarks.overload [--quick] [--max-rate R] [--overload 300] [--base 800]``

One pgqueue worker process (concurrency 16) in a fresh database. Its
maximum is measured first (the steady-state shape of
``benchmarks/steady.py``: a queue kept ~4,000 deep, ``--measure-max``
seconds) unless ``--max-rate`` gives it. Then a producer (batches of 128,
256-byte payloads, ``benchmarks.horizon.Producer``) offers the base
rate for ``--before`` seconds (the worker warms up), then 1.5x that
maximum for ``--overload`` seconds, then the base rate (1x: ``--base``,
800 jobs/s, the rate of the issue's pinned-horizon runs) until the backlog
is under 1,000 again or ``--after`` seconds have passed (default: twice the
overload, the target). Sampled every second: jobs completed (by
``finished_at``) and the backlog (offered minus completed during the
overload, re-based on an exact count at each phase start; counted exactly
every second after it, which decides the drain time).

Targets (the issue's): no collapse (here: the completion rate during the
overload at least 90% of the measured maximum, in its last fifth as in its
first), and the backlog gone within 2x the overload duration.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg

from benchmarks import steady
from benchmarks._db import fresh_database, server_dsn
from benchmarks.horizon import Producer, backlog
from benchmarks.load import (
    QUEUE,
    RESULTS,
    cell,
    machine_line,
    machine_note,
    one,
    settings_from,
    sizes,
    verdict,
    write,
)
from benchmarks.load_chart import draw
from benchmarks.suite.procs import WorkerProcess

GONE = 1_000  # backlog under this: drained
NO_COLLAPSE = 0.9


@dataclass(frozen=True)
class Settings:
    concurrency: int = 16
    max_rate: float | None = None  # None: measured first
    measure_max: float = 60.0
    before: float = 30.0
    factor: float = 1.5
    overload: float = 300.0
    base: float = 800.0
    after: float | None = None  # None: 2x overload


QUICK = Settings(measure_max=4.0, before=2.0, overload=4.0, base=400.0)


def completed_since(conn: psycopg.Connection[Any], since: Any) -> tuple[int, Any]:
    row = conn.execute(
        "SELECT count(*), clock_timestamp() FROM pgqueue.jobs"
        " WHERE status = 'succeeded' AND finished_at >= %s",
        (since,),
    ).fetchone()
    assert row is not None
    return int(row[0]), row[1]


class Series:
    """Per-second samples: seconds since start, completed/s, backlog."""

    def __init__(self, conn: psycopg.Connection[Any], producer: Producer) -> None:
        self.conn, self.producer = conn, producer
        self.t0 = time.monotonic()
        self.last = one(conn, "SELECT clock_timestamp()")
        self.completed = 0
        self.points: list[dict[str, float]] = []

    def rebase(self) -> None:
        """Make offered minus completed the exact backlog again (no point recorded)."""
        self.completed = self.producer.offered - backlog(self.conn)

    def sample(self, phase: str, exact: bool = False) -> dict[str, float]:
        """One point; ``exact``: count the backlog instead of offered minus completed
        (a completion batch that started before the last sample and committed after it
        is never counted, so the estimate drifts up under load)."""
        t = time.monotonic()
        done, now = completed_since(self.conn, self.last)
        self.completed += done
        if exact:
            self.rebase()
        seconds = t - (self.points[-1]["_t"] if self.points else self.t0)
        self.last = now
        point = {"_t": t, "t": round(t - self.t0, 1), "phase": phase,
                 "completed_per_s": round(done / seconds, 1) if seconds > 0 else 0.0,
                 "backlog": self.producer.offered - self.completed}  # fmt: skip
        self.points.append(point)
        return point


def run_phase(series: Series, phase: str, seconds: float, until_gone: bool = False) -> float:
    """Sample every second for ``seconds`` (or until the backlog is gone); the time taken."""
    t0 = time.monotonic()
    series.rebase()  # each phase starts from an exact count
    while time.monotonic() - t0 < seconds:
        time.sleep(1.0)
        point = series.sample(phase, exact=until_gone)
        if series.producer.error is not None:
            raise RuntimeError(f"producer failed: {series.producer.error}")
        if until_gone and point["backlog"] < GONE:
            break
    return time.monotonic() - t0


def summary(points: list[dict[str, Any]], phase: str) -> dict[str, Any]:
    rates = [p["completed_per_s"] for p in points if p["phase"] == phase]
    if not rates:
        return {"completed_per_s": None}
    fifth = max(1, len(rates) // 5)
    return {"completed_per_s": round(sum(rates) / len(rates), 1),
            "first_fifth_per_s": round(sum(rates[:fifth]) / fifth, 1),
            "last_fifth_per_s": round(sum(rates[-fifth:]) / fifth, 1),
            "backlog_max": max(p["backlog"] for p in points if p["phase"] == phase)}  # fmt: skip


def run(server: str, s: Settings) -> dict[str, Any]:
    max_rate = s.max_rate
    if max_rate is None:
        probe = steady.run_pg("pgqueue", server, s.concurrency,
                              steady.Settings(warmup=min(10.0, s.measure_max / 2),
                                              measure=s.measure_max))  # fmt: skip
        max_rate = float(probe["rate"])
    after = s.after if s.after is not None else 2 * s.overload
    with (
        fresh_database("pgqueue_overload", server) as dsn,
        psycopg.connect(dsn, autocommit=True) as conn,
    ):
        worker = WorkerProcess("pgqueue", {"dsn": dsn, "burst": False, "queues": [QUEUE],
                                           "concurrency": s.concurrency})  # fmt: skip
        producer = Producer(dsn, s.base)
        try:
            producer.start()
            series = Series(conn, producer)
            run_phase(series, "before", s.before)
            producer.rate = s.factor * max_rate
            offered0 = producer.offered
            over = run_phase(series, "overload", s.overload)
            offered_over = producer.offered - offered0
            at_end = {"backlog": backlog(conn), **sizes(conn)}
            producer.rate = s.base
            drain = run_phase(series, "after", after, until_gone=True)
            drained = backlog(conn) < GONE
        finally:
            producer.halt.set()
            producer.join()
            worker.stop()
            worker.close()
    points = series.points
    for p in points:
        p.pop("_t")
    return {
        "settings": asdict(s) | {"after": after}, "machine": machine_note(server),
        "max_rate": round(max_rate, 1), "offered_overload_per_s": round(offered_over / over, 1),
        "overload": summary(points, "overload"), "after": summary(points, "after"),
        "at_overload_end": at_end, "drain_seconds": round(drain, 1) if drained else None,
        "drained": drained, "series": points,
    }  # fmt: skip


def targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    o = r["overload"]
    floor = NO_COLLAPSE * r["max_rate"]
    collapse_ok = (o["completed_per_s"] is not None and o["completed_per_s"] >= floor
                   and o["last_fifth_per_s"] >= NO_COLLAPSE * o["first_fifth_per_s"])  # fmt: skip
    limit = 2 * r["settings"]["overload"]
    return [
        {"target": "no collapse: completed/s during overload >= 90% of the maximum, last fifth"
         " >= 90% of the first", "value": f"{o['completed_per_s']} of {r['max_rate']} (first"
         f" {o.get('first_fifth_per_s')}, last {o.get('last_fifth_per_s')})", "met": collapse_ok},
        {"target": f"backlog gone (< {GONE:,}) within 2x the overload ({limit:.0f} s)",
         "value": f"{r['drain_seconds']} s" if r["drained"] else "not drained",
         "met": r["drained"] and r["drain_seconds"] <= limit},
    ]  # fmt: skip


def markdown(r: dict[str, Any]) -> str:
    s, m = r["settings"], r["machine"]
    lines = ["# Overload", ""]
    if s["overload"] != Settings().overload:
        lines += [f"**Reduced size** (overload {s['overload']:.0f} s; the issue's: 300 s)."
                  " Figures from such runs are not the headline.", ""]  # fmt: skip
    a, o = r["after"], r["overload"]
    lines += [
        f"One worker at concurrency {s['concurrency']}; maximum {r['max_rate']:,.0f} jobs/s"
        f" ({'given' if s['max_rate'] else 'measured'}); offered {s['factor']}x for"
        f" {s['overload']:.0f} s (actually offered {r['offered_overload_per_s']:,.0f}/s),"
        f" then {s['base']:,.0f}/s. {machine_line(m)}",
        "",
        "| phase | completed/s (mean) | first fifth | last fifth | backlog max |",
        "|---|---|---|---|---|",
        f"| overload | {cell(o['completed_per_s'])} | {cell(o.get('first_fifth_per_s'))}"
        f" | {cell(o.get('last_fifth_per_s'))} | {cell(o.get('backlog_max'))} |",
        f"| after (1x) | {cell(a['completed_per_s'])} | {cell(a.get('first_fifth_per_s'))}"
        f" | {cell(a.get('last_fifth_per_s'))} | {cell(a.get('backlog_max'))} |",
        "",
        f"Backlog at the end of the overload: {r['at_overload_end']['backlog']:,};"
        f" drained in {cell(r['drain_seconds'])} s" if r["drained"] else "not drained",
        "",
        "| target | value | verdict |",
        "|---|---|---|",
    ]  # fmt: skip
    for t in targets(r):
        lines.append(f"| {t['target']} | {cell(t['value'])} | {verdict(t['met'])} |")
    if r.get("chart"):
        lines += ["", f"![overload]({r['chart']})"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="seconds per phase")
    parser.add_argument("--dsn", help="server (maintenance) DSN; default $PGQUEUE_BENCH_DSN")
    for flag in ("max-rate", "measure-max", "before", "overload", "base", "after", "factor"):
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
    report["chart"] = draw(out, f"overload{'-' + tag if tag else ''}", report["series"],
                           "Overload: completed/s and backlog")  # fmt: skip
    write("overload", report, markdown, out, tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
