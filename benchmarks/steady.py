"""Steady state: producers keep ~4,000 jobs waiting, one worker process completes them.

``python -m benchmarks.steady [--quick] [--warmup 30] [--measure 180]
[--concurrency 16,64] [--systems pgqueue,pgqueuer,procrastinate,celery]``

For each system and concurrency, in a database of its own (Celery: a
throwaway redis-server): the producer process (``benchmarks/load.py``)
tops the queue up to about 4,000 waiting jobs in batches of 128 with
256-byte payloads; one worker process at the given concurrency runs a
no-op task that takes the payload. After the warm-up, the measured window
gives: jobs completed per second, pickup latency (enqueue to start)
p50/p95/p99, and CPU per job of the worker process(es) and of the producer.
With about 4,000 jobs always waiting, pickup latency is mostly queueing
(Little's law: waiting / rate); it is the same shape for every system.

Peers: PgQueuer (asyncpg driver, ``max_concurrent_tasks`` = the
concurrency, ``batch_size`` half of it, the most it allows), procrastinate
(async task, ``concurrency``), Celery on Redis
(``benchmarks/suite/peers/celery_peer.py`` says which documented settings
and why). A peer that cannot run here is reported as such.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import psycopg

from benchmarks._db import server_dsn
from benchmarks.load import (
    QUEUE,
    TARGET_WAITING,
    ProducerProcess,
    cell,
    group_cpu,
    machine_line,
    machine_note,
    one,
    running,
    verdict,
    write,
)  # fmt: skip
from benchmarks.suite import db
from benchmarks.suite.procs import WorkerProcess
from benchmarks.suite.systems import System

SYSTEMS = ("pgqueue", "pgqueuer", "procrastinate", "celery")
TARGET_RATE = 11_500.0  # jobs/s at concurrency 16, the target


@dataclass(frozen=True)
class Settings:
    warmup: float = 30.0
    measure: float = 180.0
    concurrency: tuple[int, ...] = (16, 64)
    systems: tuple[str, ...] = SYSTEMS
    target: int = TARGET_WAITING
    prefetch: int | None = None  # pgqueue's claim-ahead buffer; None: its default


QUICK = Settings(warmup=2.0, measure=4.0)


def pg_system(name: str) -> System:
    from benchmarks.suite.systems import all_systems

    return next(s for s in all_systems() if s.name == name)


def missing(name: str) -> str | None:
    if name == "celery":
        from benchmarks.suite.peers import celery_peer

        return celery_peer.missing()
    return pg_system(name).missing()


def worker_config(name: str, concurrency: int, dsn: str,
                  prefetch: int | None = None) -> dict[str, Any]:  # fmt: skip
    if name == "pgqueue":
        options = {} if prefetch is None else {"prefetch": prefetch}
        return {"dsn": dsn, "burst": False, "concurrency": concurrency, "queues": [QUEUE],
                "options": options}  # fmt: skip
    if name == "pgqueuer":
        # PgQueuer requires max_concurrent_tasks >= 2 x batch_size.
        return {"dsn": dsn, "burst": False, "driver": "asyncpg",
                "batch_size": max(1, concurrency // 2),
                "max_concurrent_tasks": concurrency}  # fmt: skip
    return {"dsn": dsn, "burst": False, "concurrency": concurrency}


class Measured:
    """One window of a running worker and producer: what each side did and cost."""

    def __init__(self, worker: WorkerProcess, producer: ProducerProcess) -> None:
        self.worker, self.producer = worker, producer

    def __enter__(self) -> Measured:
        self.p0, self.cpu0, self.t0 = self.producer.mark(), group_cpu(self.worker.pid), time.time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.p1, self.cpu1, self.t1 = self.producer.mark(), group_cpu(self.worker.pid), time.time()

    def figures(self, completed: int) -> dict[str, Any]:
        seconds = self.t1 - self.t0
        offered = self.p1["offered"] - self.p0["offered"]
        return {
            "seconds": round(seconds, 1),
            "completed": completed,
            "rate": round(completed / seconds, 1),
            "offered": int(offered),
            "worker_cpu_ms_per_job": _per(self.cpu1 - self.cpu0, completed),
            "producer_cpu_ms_per_job": _per(self.p1["cpu"] - self.p0["cpu"], offered),
        }


def _per(cpu: float, jobs: float) -> float | None:
    return round(cpu / jobs * 1000, 4) if jobs else None


def watch(seconds: float, *procs: WorkerProcess | ProducerProcess,
          sample: Any = None) -> list[int]:  # fmt: skip
    """Sleep ``seconds``; fail early if a process died; ``sample()`` once a second."""
    end, samples = time.monotonic() + seconds, []
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(1.0, left))
        for p in procs:
            failure = p.failure() if isinstance(p, ProducerProcess) else (
                None if p.running() else f"{p.kind} exited: {p.log_tail()}")  # fmt: skip
            if failure:
                raise RuntimeError(failure)
        if sample is not None:
            samples.append(int(sample()))
    return samples


def run_pg(name: str, server: str, concurrency: int, s: Settings) -> dict[str, Any]:
    system = pg_system(name)
    dbs = db.Databases(server)
    dsn = dbs.create(f"steady_{name}", migrate=name == "pgqueue")
    try:
        system.setup_schema(dsn)
        worker = WorkerProcess(name, worker_config(name, concurrency, dsn, s.prefetch))
        producer = ProducerProcess(name, dsn, target=s.target)
        with running(producer, worker), psycopg.connect(dsn, autocommit=True) as conn:
            watch(s.warmup, worker, producer)
            server0 = one(conn, "SELECT clock_timestamp()")
            with Measured(worker, producer) as m:
                waiting = watch(s.measure, worker, producer, sample=producer_waiting(name, conn))
            server1 = one(conn, "SELECT clock_timestamp()")
        # Fresh statistics for the read-back joins (a peer's event log has grown by
        # millions of rows unanalysed; a nested loop over it takes minutes).
        db.execute(dsn, "ANALYZE")
        completed, _ = system.span(dsn, server0, server1)
        return {**m.figures(completed), **system.pickup(dsn, server0, server1),
                "waiting_mean": round(sum(waiting) / len(waiting)) if waiting else None}
    finally:
        dbs.drop_all()


def producer_waiting(name: str, conn: psycopg.Connection[Any]) -> Any:
    sql = {"pgqueue": "SELECT count(*) FROM pgqueue.jobs WHERE status = 'queued'",
           "pgqueuer": "SELECT count(*) FROM pgqueuer WHERE status = 'queued'",
           "procrastinate": "SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo'"}[name]
    return lambda: one(conn, sql)


def run_celery(concurrency: int, s: Settings) -> dict[str, Any]:
    import redis

    from benchmarks.suite.peers import celery_peer

    with celery_peer.broker(), tempfile.TemporaryDirectory(prefix="bench-celery-") as logs:
        celery_peer.reset(Path(logs))
        worker = WorkerProcess("celery", {"log_dir": logs, "concurrency": concurrency,
                                          "burst": False})  # fmt: skip
        producer = ProducerProcess("celery", "", target=s.target)
        client = redis.Redis(host="127.0.0.1", port=celery_peer.PORT)
        with running(producer, worker):
            watch(s.warmup, worker, producer)
            with Measured(worker, producer) as m:
                waiting = watch(s.measure, worker, producer,
                                sample=lambda: client.llen(celery_peer.QUEUE))  # fmt: skip
        client.close()
        win = celery_peer.window(Path(logs), m.t0, m.t1)
        return {**m.figures(win.pop("completed")), **win,
                "waiting_mean": round(sum(waiting) / len(waiting)) if waiting else None}


def run(server: str, s: Settings, say: Any = print) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    for name in s.systems:
        reason = missing(name)
        for c in s.concurrency:
            row: dict[str, Any] = {"system": name, "concurrency": c}
            if reason:
                runs.append({**row, "status": reason})
                continue
            say(f"steady: {name} at concurrency {c} ...")
            try:
                figures = run_celery(c, s) if name == "celery" else run_pg(name, server, c, s)
                runs.append({**row, "status": "ok", **figures})
            except Exception as exc:  # one failing system must not sink the report
                runs.append({**row, "status": f"failed: {type(exc).__name__}: {exc}"[:400]})
    report = {"settings": asdict(s), "machine": machine_note(server), "runs": runs}
    report["targets"] = targets(report)
    return report


def _ok(runs: list[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    return [r for r in runs if r["status"] == "ok" and all(r[k] == v for k, v in match.items())]


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    runs = report["runs"]
    ours = _ok(runs, system="pgqueue", concurrency=16)
    rate = ours[0]["rate"] if ours else None
    p99 = ours[0]["pickup_p99_ms"] if ours else None
    pg_peers = [r for r in _ok(runs, concurrency=16) if r["system"] in ("pgqueuer",
                                                                        "procrastinate")]
    best = max(pg_peers, key=lambda r: r["rate"], default=None)
    peers = [r for r in _ok(runs, concurrency=16) if r["system"] != "pgqueue"]
    return [
        {"target": f"concurrency 16: at least {TARGET_RATE:,.0f} jobs/s", "value": rate,
         "met": None if rate is None else rate >= TARGET_RATE},
        {"target": "concurrency 16: at least 2x the best PostgreSQL peer",
         "value": f"{rate / best['rate']:.2f}x {best['system']}" if rate and best else None,
         "met": None if not (rate and best) else rate >= 2 * best["rate"]},
        {"target": "concurrency 16: pickup p99 below every peer's",
         "value": ", ".join(f"{r['system']} {r['pickup_p99_ms']} ms" for r in peers) or None,
         "met": None if p99 is None or not peers
         else all(r["pickup_p99_ms"] is not None and p99 < r["pickup_p99_ms"] for r in peers)},
    ]  # fmt: skip


def markdown(report: dict[str, Any]) -> str:
    s, m = report["settings"], report["machine"]
    reduced = [f"{f.name}={s[f.name]}" for f in fields(Settings)
               if f.name in ("warmup", "measure") and s[f.name] != getattr(Settings(), f.name)]
    lines = ["# Steady state", ""]
    if reduced:
        lines += [f"**Reduced size** ({', '.join(reduced)}; the issue's: warm-up 30 s,"
                  " 180 s measured). Figures from such runs are not the headline.", ""]
    lines += [
        f"Producer keeps ~{s['target']:,} jobs waiting (batches of 128, 256-byte payloads);"
        f" one worker process; {s['warmup']:.0f} s warm-up, {s['measure']:.0f} s measured."
        f" {machine_line(m)} Pickup: enqueue to"
        " start (ms). CPU: ms of CPU per job (worker: every process of its group;"
        " producer: its process).",
        "",
        "| system | concurrency | completed/s | pickup p50 | p95 | p99 | worker CPU/job"
        " | producer CPU/job | waiting (mean) | status |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for r in report["runs"]:
        if r["status"] != "ok":
            lines.append(f"| {r['system']} | {r['concurrency']} | | | | | | | | {r['status']} |")
            continue
        lines.append(
            f"| {r['system']} | {r['concurrency']} | {r['rate']:,.0f} | {cell(r['pickup_p50_ms'])}"
            f" | {cell(r['pickup_p95_ms'])} | {cell(r['pickup_p99_ms'])}"
            f" | {cell(r['worker_cpu_ms_per_job'])} | {cell(r['producer_cpu_ms_per_job'])}"
            f" | {cell(r['waiting_mean'])} | {_status(r, s['target'])} |"
        )
    lines += ["", "| target | value | verdict |", "|---|---|---|"]
    for t in report["targets"]:
        lines.append(f"| {t['target']} | {cell(t['value'])} | {verdict(t['met'])} |")
    return "\n".join(lines) + "\n"


def _status(r: dict[str, Any], target: int) -> str:
    """``ok``, or why the rate is not the worker's: a producer that could not keep the
    queue half full bounds it (and the pickup latency is then not queueing time)."""
    waiting = r.get("waiting_mean")
    if waiting is not None and waiting < target / 2:
        return "ok, producer-bound (queue under half the target)"
    return "ok"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="seconds per run")
    parser.add_argument("--dsn", help="server (maintenance) DSN; default $PGQUEUE_BENCH_DSN")
    parser.add_argument("--warmup", type=float)
    parser.add_argument("--measure", type=float)
    parser.add_argument("--concurrency", help="comma-separated (default 16,64)")
    parser.add_argument("--systems", help=f"comma-separated of {','.join(SYSTEMS)}")
    parser.add_argument("--out", type=Path, help="results folder (default benchmarks/results)")
    parser.add_argument("--prefetch", type=int, help="pgqueue's prefetch (default: its own)")
    parser.add_argument("--tag", default="", help="suffix of the report's file name")
    args = parser.parse_args(argv)
    base = asdict(QUICK if args.quick else Settings())
    base["prefetch"] = args.prefetch
    for key in ("warmup", "measure"):
        if getattr(args, key) is not None:
            base[key] = getattr(args, key)
    if args.concurrency:
        base["concurrency"] = tuple(int(c) for c in args.concurrency.split(","))
    if args.systems:
        base["systems"] = tuple(x.strip() for x in args.systems.split(","))
    if set(base["systems"]) - set(SYSTEMS) or base["measure"] <= 0:
        parser.error(f"--systems takes {','.join(SYSTEMS)}; --measure must be positive")
    settings = Settings(**{**base, "concurrency": tuple(base["concurrency"]),
                           "systems": tuple(base["systems"])})  # fmt: skip
    report = run(args.dsn or server_dsn(), settings,
                 say=lambda m: print(m, file=sys.stderr, flush=True))  # fmt: skip
    write("steady", report, markdown, args.out, args.tag or ("quick" if args.quick else ""))
    ours = [r for r in report["runs"] if r["system"] == "pgqueue"]
    return 0 if all(r["status"] == "ok" for r in ours) else 1


if __name__ == "__main__":
    sys.exit(main())
