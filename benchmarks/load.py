"""What the load workloads share: the producer process, CPU accounting, report files.

The steady-state, overload and soak workloads (``benchmarks/steady.py``,
``overload.py``, ``soak.py``) offer jobs the issue's way: batches of 128
jobs with 256-byte payloads, through each system's own batch API. The
producer runs as a process of its own (``python -m benchmarks.suite.workers
producer CONFIG``) so that its CPU is its own: every half second it prints a
JSON line ``{"t": monotonic, "offered": n, "cpu": seconds}`` (``os.times``
of the process), from which the harness takes the offered count and the CPU
over any window. Two modes:

- ``topup``: keep about ``target`` jobs waiting (the steady state);
- ``rate``: offer ``rate`` jobs/s whatever the queue holds.

A worker's CPU is read from ``/proc/<pid>/stat`` of every process in its
process group (each bench worker is a session of its own), so pools of child
processes count, and the harness's own CPU never does.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, replace
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import psycopg

from benchmarks.suite.procs import WorkerProcess

QUEUE = "bench"
BATCH = 128
PAYLOAD = "p" * 256
TARGET_WAITING = 4_000
RESULTS = Path(__file__).resolve().parent / "results"
TICKS = os.sysconf("SC_CLK_TCK")


# -- CPU -------------------------------------------------------------------------


def group_cpu(pgid: int) -> float:
    """CPU seconds (user + system, reaped children included) of every live process
    in process group ``pgid``."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(entry.path, "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) == pgid:  # field 5 of stat: pgrp
                total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return total / TICKS


# -- the producer process --------------------------------------------------------


class Feeder:
    """One system's side of the producer: a batch enqueue and a waiting count."""

    def enqueue(self, n: int) -> None:
        raise NotImplementedError

    def waiting(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        return None


class PgqueueFeeder(Feeder):
    def __init__(self, dsn: str) -> None:
        import pgqueue

        self.app = pgqueue.App(dsn)
        self.sink = self.app.task_ref("bench.sink", queue=QUEUE)
        self.conn = psycopg.connect(dsn, autocommit=True)

    def enqueue(self, n: int) -> None:
        self.app.enqueue_many([self.sink.job(PAYLOAD) for _ in range(n)])

    def waiting(self) -> int:
        row = self.conn.execute(
            "SELECT count(*) FROM pgqueue.jobs WHERE status IN ('queued', 'failed')"
        ).fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        self.app.close()
        self.conn.close()


def feeder(system: str, dsn: str) -> Feeder:
    if system == "pgqueue":
        return PgqueueFeeder(dsn)
    if system == "pgqueuer":
        from benchmarks.suite.peers.pgqueuer_peer import Feeder as PgQueuerFeeder

        return PgQueuerFeeder(dsn, PAYLOAD)
    if system == "procrastinate":
        from benchmarks.suite.peers.procrastinate_peer import Feeder as ProcrastinateFeeder

        return ProcrastinateFeeder(dsn, PAYLOAD)
    if system == "celery":
        from benchmarks.suite.peers.celery_peer import Feeder as CeleryFeeder

        return CeleryFeeder(dsn, PAYLOAD)
    raise SystemExit(f"unknown system {system!r}")


def run_producer(config: dict[str, Any]) -> int:
    """The producer process (``python -m benchmarks.suite.workers producer CONFIG``)."""
    stop = False

    def halt(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, halt)
    feed = feeder(config["system"], config["dsn"])
    offered, last_line = 0, 0.0

    def line() -> None:
        cpu = os.times()
        print(json.dumps({"t": time.monotonic(), "offered": offered,
                          "cpu": cpu.user + cpu.system}), flush=True)  # fmt: skip

    try:
        next_at = time.monotonic()
        while not stop:
            if config["mode"] == "topup":
                missing = int(config["target"]) - feed.waiting()
                for _ in range(max(0, math.ceil(missing / BATCH))):
                    feed.enqueue(BATCH)
                    offered += BATCH
                if missing <= 0:
                    time.sleep(0.002)
            else:
                feed.enqueue(BATCH)
                offered += BATCH
                next_at += BATCH / float(config["rate"])
                time.sleep(max(0.0, next_at - time.monotonic()))
            if time.monotonic() - last_line >= 0.5:
                last_line = time.monotonic()
                line()
    finally:
        line()
        feed.close()
    return 0


class ProducerProcess:
    """The harness's handle on a producer process."""

    def __init__(self, system: str, dsn: str, *, target: int = TARGET_WAITING,
                 rate: float | None = None) -> None:  # fmt: skip
        mode = "topup" if rate is None else "rate"
        self.proc = WorkerProcess("producer", {
            "system": system, "dsn": dsn, "mode": mode, "target": target, "rate": rate,
            "burst": False,
        })  # fmt: skip

    def lines(self) -> list[dict[str, float]]:
        out = []
        for text in self.proc.output().splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(text))
        return out

    def mark(self) -> dict[str, float]:
        """The producer's latest report (offered, CPU) after a fresh one arrived."""
        seen = len(self.lines())
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and self.proc.running():
            lines = self.lines()
            if len(lines) > seen:
                return lines[-1]
            time.sleep(0.05)
        lines = self.lines()
        if not lines:
            raise RuntimeError(f"the producer reported nothing: {self.proc.log_tail()}")
        return lines[-1]

    def failure(self) -> str | None:
        return None if self.proc.running() else f"producer exited: {self.proc.log_tail()}"

    def stop(self) -> None:
        self.proc.stop()
        self.proc.close()


@contextlib.contextmanager
def running(*procs: WorkerProcess | ProducerProcess) -> Iterator[None]:
    """Stop every process given (producers first), whatever happens inside."""
    try:
        yield
    finally:
        for p in procs:
            if isinstance(p, ProducerProcess):
                p.stop()
        for p in procs:
            if isinstance(p, WorkerProcess):
                p.stop()
                p.close()


# -- database facts --------------------------------------------------------------


def one(conn: psycopg.Connection[Any], sql: str, params: Any = None) -> Any:
    row = conn.execute(sql, params).fetchone()
    return row[0] if row else None


def sizes(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Size of ``pgqueue.jobs``, of its claim index and of all its indexes; dead tuples."""
    row = conn.execute(
        "SELECT pg_relation_size('pgqueue.jobs'), pg_relation_size('pgqueue.jobs_claim_idx'),"
        " pg_indexes_size('pgqueue.jobs'),"
        " (SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = 'pgqueue.jobs'::regclass),"
        " (SELECT n_live_tup FROM pg_stat_user_tables WHERE relid = 'pgqueue.jobs'::regclass)"
    ).fetchone()
    assert row is not None
    return {"table_bytes": row[0], "claim_index_bytes": row[1], "indexes_bytes": row[2],
            "n_dead_tup": row[3] or 0, "n_live_tup": row[4] or 0}  # fmt: skip


def pgqueue_window(conn: psycopg.Connection[Any], start: Any, end: Any) -> dict[str, Any]:
    """Jobs finished in [start, end) and their pickup (enqueue to start) p50/p95/p99, ms."""
    row = conn.execute(
        "SELECT count(*), percentile_disc(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP"
        " (ORDER BY extract(epoch FROM started_at - created_at)::float8 * 1000)"
        " FROM pgqueue.jobs WHERE status = 'succeeded' AND finished_at >= %s AND finished_at < %s",
        (start, end),
    ).fetchone()
    assert row is not None
    cuts = row[1] or [None, None, None]
    return {"completed": int(row[0]), "pickup_p50_ms": _round(cuts[0]),
            "pickup_p95_ms": _round(cuts[1]), "pickup_p99_ms": _round(cuts[2])}  # fmt: skip


def _round(v: float | None) -> float | None:
    return None if v is None else round(float(v), 2)


# -- reports ---------------------------------------------------------------------


SERVER_SETTINGS = ("server_version", "autovacuum", "synchronous_commit", "fsync")


def machine_note(server: str | None = None) -> dict[str, Any]:
    """What a reader needs to judge the figures: cores and load while they ran, and
    the server settings that change them (autovacuum above all)."""
    note: dict[str, Any] = {"cores": os.cpu_count(), "python": sys.version.split()[0],
                            "loadavg": [round(x, 2) for x in os.getloadavg()]}  # fmt: skip
    if server:
        with contextlib.suppress(psycopg.Error), psycopg.connect(server) as conn:
            note["server"] = {k: one(conn, f"SHOW {k}") for k in SERVER_SETTINGS}
    return note


def machine_line(m: dict[str, Any]) -> str:
    """The report's sentence on the machine, with a warning when autovacuum is off."""
    line = f"{m['cores']} cores, load average at the end {m['loadavg']}"
    settings = m.get("server") or {}
    if settings:
        line += (f"; PostgreSQL {settings['server_version']}, synchronous_commit"
                 f" {settings['synchronous_commit']}, autovacuum {settings['autovacuum']}")
    line += "."
    if settings.get("autovacuum") == "off":
        line += (" **autovacuum is off on this server**: nothing removes dead tuples"
                 " between phases, so sizes and dead tuples only grow.")
    return line


S = TypeVar("S")


def settings_from(args: argparse.Namespace, quick: S, full: S) -> S:
    """The settings of a run: ``quick`` or ``full`` (dataclasses), then each field
    given on the command line (an argparse attribute of the same name) over them."""
    base: Any = quick if args.quick else full
    given = {k: getattr(args, k) for k in asdict(base) if getattr(args, k, None) is not None}
    return replace(base, **given)  # type: ignore[no-any-return]


def write(name: str, report: dict[str, Any], markdown: Callable[[dict[str, Any]], str],
          out: Path | None, tag: str = "") -> Path:  # fmt: skip
    """``<date>-<name>[-tag].json`` and ``.md`` in ``out`` (default benchmarks/results);
    the Markdown on stdout. Returns the Markdown's path."""
    out = out or RESULTS
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{date.today().isoformat()}-{name}{'-' + tag if tag else ''}"
    (out / f"{stem}.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    text = markdown(report)
    (out / f"{stem}.md").write_text(text)
    print(text)
    return out / f"{stem}.md"


def verdict(met: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "not measured"}[met]


def cell(v: Any, fmt: str = "{}") -> str:
    return "" if v is None else fmt.format(v)


def mb(n: int | None) -> str:
    return "" if n is None else f"{n / 1e6:.1f}"
