"""Pinned-horizon workload: a fixed offered rate while a session pins the MVCC horizon.

``python -m benchmarks.horizon [--quick] [--rate 800] [--clean 60] [--pinned 600] ...``

A fresh database; a producer offering ``rate`` jobs/s in batches of 128
(256-byte payloads, ``app.enqueue_many``); one worker process
(``app.run_worker``, concurrency 32) whose claims are timed in the process
(``benchmarks/horizon_worker.py``). Two forms, each in its own database:

- ``xid``: clean, then one session idle in transaction holding an XID
  (``BEGIN; SELECT txid_current()``), then recovery (the session gone);
- ``rr``: clean, then 4 REPEATABLE READ readers counting ``pgqueue.jobs``
  (each one transaction, a scan every few seconds), then recovery.

Per phase: offered and completed jobs/s, claim p50/p99 (ms, from the worker),
backlog (last and highest sample, each second: jobs offered minus jobs the
worker's claim log says it claimed, so that sampling costs the server nothing
under the pin), size of the table and of
``jobs_claim_idx``, ``n_dead_tup``, and the shared buffers of one claim of 32
from ``EXPLAIN (ANALYZE, BUFFERS)`` (rolled back), both from the front of the
index (``claim``: the claim as it was) and from the bound the worker uses
(``claim_after``). After the last phase the producer stops and the run
waits until every offered job has completed. ``--topup N``: instead of a
fixed rate, keep about N jobs waiting (maximum throughput: is the pinned
rate at least 80% of the clean one?). The report and the verdicts against
the issue's targets: ``benchmarks/horizon_report.py``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg

import pgqueue
from benchmarks import statements
from benchmarks._db import fresh_database, server_dsn
from benchmarks.horizon_claims import claim_params, explain_buffers
from benchmarks.horizon_report import save
from benchmarks.load import group_cpu, machine_note
from benchmarks.suite.procs import WorkerProcess
from pgqueue._sql import query

try:
    from pgqueue.worker._bounds import ClaimBounds
except ImportError:  # an engine from before claim bounds: the front sample only
    ClaimBounds = None  # type: ignore[assignment,misc]

QUEUE = "bench"
BATCH = 128
PAYLOAD = "p" * 256
BUFFER_KEYS = ("buffers_front", "rows_front", "buffers_bounded", "rows_bounded")
UNFINISHED = "SELECT count(*) FROM pgqueue.jobs WHERE status IN ('queued', 'failed', 'running')"
SUCCEEDED = "SELECT count(*) FROM pgqueue.jobs WHERE status = 'succeeded'"
RESULTS = Path(__file__).resolve().parent / "results"
PHASE_KEYS = (
    "form", "phase", "seconds", "offered_per_s", "completed_per_s", "claim_p50_ms",
    "claim_p99_ms", "claims", "backlog_last", "backlog_max", "table_bytes",
    "claim_index_bytes", "n_dead_tup", "buffers_front", "rows_front", "buffers_bounded",
    "rows_bounded",
)  # fmt: skip


@dataclass
class Settings:
    rate: float = 800.0
    clean: float = 60.0
    pinned: float = 600.0
    recovery: float = 60.0
    concurrency: int = 32
    readers: int = 4
    reader_every: float = 5.0  # seconds between a reader's scans
    drain_timeout: float = 120.0
    forms: tuple[str, ...] = ("xid", "rr")
    topup: int = 0  # > 0: keep this many jobs waiting instead of offering ``rate``


def sink(payload: str) -> None:
    """The producer's side of ``bench.sink`` (the worker runs benchmarks.suite.tasks)."""


class ClaimTally:
    """Jobs the worker has claimed so far, summed from its claim log as it grows.

    The waiting jobs are then ``offered - claimed`` (one producer, a task that
    never fails: nothing is claimed twice) without asking the server. Counting
    them would walk every dead entry of ``jobs_claim_idx`` while the horizon is
    pinned: at maximum throughput millions of entries per count, a server core
    spent by the harness rather than by the queue it measures."""

    def __init__(self, path: Path) -> None:
        self._log = path.open()
        self._partial = ""
        self._claimed = 0
        self._lock = threading.Lock()

    def claimed(self) -> int:
        with self._lock:
            chunk = self._partial + self._log.read()
            lines = chunk.split("\n")
            self._partial = lines.pop()  # a line the worker is still writing
            for line in lines:
                parts = line.split()
                if len(parts) == 3:
                    self._claimed += int(parts[2])
            return self._claimed

    def close(self) -> None:
        self._log.close()


class Producer(threading.Thread):
    """Offers ``rate`` jobs/s in batches; counts what it offered."""

    def __init__(
        self, dsn: str, rate: float, tally: ClaimTally | None = None, topup: int = 0
    ) -> None:
        super().__init__(name="horizon-producer", daemon=True)
        self.app = pgqueue.App(dsn)  # its own: each form has its own database
        self.sink = self.app.task(name="bench.sink", queue=QUEUE)(sink)
        self.rate = rate  # read at every batch: a run may change it
        self.topup = topup
        self.tally = tally
        self.dsn = dsn
        self.offered = 0
        self.error: BaseException | None = None
        self.halt = threading.Event()

    def run(self) -> None:
        next_at = time.monotonic()
        try:
            if self.topup:
                self._top_up()
            while not self.halt.is_set():
                self.app.enqueue_many([self.sink.job(PAYLOAD) for _ in range(BATCH)])
                self.offered += BATCH
                next_at += BATCH / self.rate
                self.halt.wait(max(0.0, next_at - time.monotonic()))
        except BaseException as exc:  # reported by the run, not lost in a thread
            self.error = exc
        finally:
            self.app.close()

    def waiting(self) -> int:
        """Jobs offered and not claimed yet (needs the worker's claim log: ``tally``)."""
        assert self.tally is not None
        return self.offered - self.tally.claimed()

    def _top_up(self) -> None:
        """Keep about ``topup`` jobs waiting (counted by ``ClaimTally``, not by the server)."""
        while not self.halt.is_set():
            if self.waiting() >= self.topup:
                self.halt.wait(0.002)
                continue
            self.app.enqueue_many([self.sink.job(PAYLOAD) for _ in range(BATCH)])
            self.offered += BATCH


class Pin:
    """What holds the horizon back in the pinned phase: one idle transaction
    holding an XID, or REPEATABLE READ readers scanning the jobs table."""

    def __init__(self, dsn: str, form: str, settings: Settings) -> None:
        self.conns: list[psycopg.Connection[Any]] = []
        self.threads: list[threading.Thread] = []
        self.halt = threading.Event()
        if form == "xid":
            conn = psycopg.connect(dsn)
            conn.execute("SELECT txid_current()")  # then idle in transaction
            self.conns.append(conn)
            return
        for _ in range(settings.readers):
            conn = psycopg.connect(dsn)
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.execute("SELECT count(*) FROM pgqueue.jobs")
            self.conns.append(conn)
            thread = threading.Thread(target=self._scan, args=(conn, settings.reader_every))
            thread.start()
            self.threads.append(thread)

    def _scan(self, conn: psycopg.Connection[Any], every: float) -> None:
        while not self.halt.wait(every):
            conn.execute("SELECT count(*) FROM pgqueue.jobs")

    def release(self) -> None:
        self.halt.set()
        for thread in self.threads:
            thread.join()
        for conn in self.conns:
            conn.close()


def _one(conn: psycopg.Connection[Any], sql: str, params: Any = None) -> Any:
    row = conn.execute(sql, params).fetchone()
    return row[0] if row else None


def table_facts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    row = conn.execute(
        "SELECT pg_relation_size('pgqueue.jobs'), pg_relation_size('pgqueue.jobs_claim_idx'),"
        " (SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = 'pgqueue.jobs'::regclass)"
    ).fetchone()
    assert row is not None
    return {"table_bytes": row[0], "claim_index_bytes": row[1], "n_dead_tup": row[2] or 0}


def backlog(conn: psycopg.Connection[Any]) -> int:
    return int(_one(conn, "SELECT count(*) FROM pgqueue.jobs WHERE status IN ('queued', 'failed')"))


def unfinished(conn: psycopg.Connection[Any]) -> int:
    return int(_one(conn, UNFINISHED))


def completed_between(conn: psycopg.Connection[Any], start: Any, end: Any) -> int:
    return int(
        _one(
            conn,
            "SELECT count(*) FROM pgqueue.jobs WHERE status = 'succeeded'"
            " AND finished_at >= %s AND finished_at < %s",
            (start, end),
        )
    )


def claim_buffers(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """One claim of 32 from the front (``claim``) and one from the kind of bound the
    worker uses (the newest run_at claimed in the last second): shared buffers of the
    candidate scan, and jobs claimed (both rolled back)."""
    front = explain_buffers(conn, query("claim"), claim_params(32))
    out: dict[str, Any] = {"buffers_front": front["scan_buffers"], "rows_front": front["rows"]}
    newest = _one(
        conn,
        "SELECT max(run_at) FROM pgqueue.jobs WHERE status = 'succeeded'"
        " AND finished_at >= now() - interval '1 second'",
    )
    if newest is not None and ClaimBounds is not None:
        bounds = ClaimBounds()
        bounds.levels = {QUEUE: {0: newest}}
        params = {**claim_params(32), **bounds.segments([QUEUE])}
        bounded = explain_buffers(conn, query("claim_after"), params)
        out.update(buffers_bounded=bounded["scan_buffers"], rows_bounded=bounded["rows"])
    return out


def claim_latencies(path: Path, start: float, end: float) -> dict[str, float | int | None]:
    """p50/p99 (ms) of the worker's claims that returned jobs in [start, end) (wall time)."""
    times: list[float] = []
    with path.open() as log:
        for line in log:
            parts = line.split()
            if len(parts) == 3 and start <= float(parts[0]) < end and int(parts[2]) > 0:
                times.append(float(parts[1]) * 1000)
    if len(times) < 2:
        return {"claim_p50_ms": None, "claim_p99_ms": None, "claims": len(times)}
    cuts = statistics.quantiles(times, n=100)
    return {"claim_p50_ms": round(cuts[49], 2), "claim_p99_ms": round(cuts[98], 2),
            "claims": len(times)}  # fmt: skip


def run_phase(
    conn: psycopg.Connection[Any], producer: Producer, worker: WorkerProcess, claims: Path,
    form: str, name: str, seconds: float,
) -> dict[str, Any]:  # fmt: skip
    statements0, cpu0 = statements.snapshot(conn), _cpu(conn, worker)
    t0, wall0, offered0 = time.monotonic(), time.time(), producer.offered
    server0 = _one(conn, "SELECT clock_timestamp()")
    samples: list[int] = []
    buffers: dict[str, Any] = dict.fromkeys(BUFFER_KEYS)
    sample_at = t0 + seconds * 0.75
    while (left := t0 + seconds - time.monotonic()) > 0:
        time.sleep(min(1.0, left))
        samples.append(producer.waiting())
        if buffers["buffers_front"] is None and time.monotonic() >= sample_at:
            buffers.update(claim_buffers(conn))
        if producer.error is not None:
            raise RuntimeError(f"producer failed: {producer.error}")
    elapsed = time.monotonic() - t0
    server1 = _one(conn, "SELECT clock_timestamp()")
    done = completed_between(conn, server0, server1)
    cpu: dict[str, float | None] = {}
    for key, now in _cpu(conn, worker).items():
        then = cpu0[key]
        cpu[key] = (
            None if now is None or then is None else round((now - then) / max(done, 1) * 1e3, 4)
        )
    return {
        "form": form,
        "phase": name,
        "seconds": round(elapsed, 1),
        "offered_per_s": round((producer.offered - offered0) / elapsed, 1),
        "completed_per_s": round(done / elapsed, 1),
        **claim_latencies(claims, wall0, time.time()),
        "backlog_last": samples[-1] if samples else producer.waiting(),
        "backlog_max": max(samples, default=0),
        **table_facts(conn),
        **buffers,
        **cpu,
        "statements": statements.top(statements0, statements.snapshot(conn)),
    }


def _cpu(conn: psycopg.Connection[Any], worker: WorkerProcess) -> dict[str, float | None]:
    """CPU seconds so far: the server's, the worker process's, this harness's (the
    producer thread runs here)."""
    return {"server_cpu_ms_per_job": statements.server_cpu(conn),
            "worker_cpu_ms_per_job": group_cpu(worker.proc.pid),
            "harness_cpu_ms_per_job": time.process_time()}  # fmt: skip


def run_form(server: str, form: str, settings: Settings) -> dict[str, Any]:
    with (
        fresh_database("pgqueue_horizon", server) as dsn,
        psycopg.connect(dsn, autocommit=True) as conn,
    ):
        claims = Path(tempfile.mkstemp(prefix="horizon-claims-", suffix=".log")[1])
        worker = WorkerProcess("pgqueue", {
            "dsn": dsn, "burst": False, "concurrency": settings.concurrency,
            "queues": [QUEUE], "claim_log": str(claims),
        })  # fmt: skip
        tally = ClaimTally(claims)
        producer = Producer(dsn, settings.rate, tally=tally, topup=settings.topup)
        phases: list[dict[str, Any]] = []

        def phase(name: str, seconds: float) -> dict[str, Any]:
            return run_phase(conn, producer, worker, claims, form, name, seconds)

        try:
            producer.start()
            started = time.monotonic() + 60  # the worker's first claim opens the clean phase
            while not tally.claimed() and time.monotonic() < started and worker.running():
                time.sleep(0.05)
            phases.append(phase("clean", settings.clean))
            pin = Pin(dsn, form, settings)
            try:
                phases.append(phase("pinned", settings.pinned))
            finally:
                pin.release()
            phases.append(phase("recovery", settings.recovery))
            producer.halt.set()
            producer.join()
            deadline = time.monotonic() + settings.drain_timeout
            while unfinished(conn) and time.monotonic() < deadline and worker.running():
                time.sleep(0.5)
            succeeded = int(
                _one(conn, "SELECT count(*) FROM pgqueue.jobs WHERE status = 'succeeded'")
            )
        finally:
            producer.halt.set()
            worker.stop()
            failure = worker.log_tail() if worker.proc.returncode not in (0, -15, None) else None
            worker.close()
            tally.close()
            claims.unlink(missing_ok=True)
        return {
            "form": form,
            "offered": producer.offered,
            "completed": succeeded,
            "all_completed": succeeded == producer.offered,
            "worker_failure": failure,
            "phases": phases,
        }


def run(server: str, settings: Settings) -> dict[str, Any]:
    forms = [run_form(server, form, settings) for form in settings.forms]
    return {"settings": asdict(settings), "forms": forms, "machine": machine_note(server)}


QUICK = Settings(rate=256.0, clean=3.0, pinned=4.0, recovery=3.0, concurrency=8,
                 reader_every=1.0, drain_timeout=60.0)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds per phase")
    parser.add_argument("--dsn", help="server (maintenance) DSN; default $PGQUEUE_BENCH_DSN")
    parser.add_argument("--rate", type=float, help="jobs/s offered (default 800)")
    for phase in ("clean", "pinned", "recovery"):
        parser.add_argument(f"--{phase}", type=float, help=f"{phase} phase, seconds")
    parser.add_argument("--concurrency", type=int)
    parser.add_argument("--forms", help="xid,rr (default both)")
    parser.add_argument("--topup", type=int, help="keep N jobs waiting instead of --rate")
    parser.add_argument("--tag", default="", help="suffix of the report's file name")
    parser.add_argument("--out", type=Path, help=f"directory for the report (default {RESULTS})")
    args = parser.parse_args(argv)
    base = asdict(QUICK if args.quick else Settings())
    for key in ("rate", "clean", "pinned", "recovery", "concurrency", "topup"):
        if getattr(args, key) is not None:
            base[key] = getattr(args, key)
    if args.forms:
        base["forms"] = tuple(f.strip() for f in args.forms.split(","))
    if any(f not in ("xid", "rr") for f in base["forms"]) or base["rate"] <= 0:
        parser.error("--forms takes xid and/or rr; --rate must be positive")
    settings = Settings(**{**base, "forms": tuple(base["forms"])})
    report = run(args.dsn or server_dsn(), settings)
    save(report, args.out or RESULTS, quick=args.quick, tag=args.tag)
    return 0 if all(f["all_completed"] for f in report["forms"]) else 1


if __name__ == "__main__":
    sys.exit(main())
