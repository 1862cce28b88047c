"""One adapter per system under test, so every system runs the same workloads.

A ``System`` knows its schema, how to enqueue (one at a time, in bulk), how to
start its worker (``workers.py``), and how to read throughput and latency back
from its own tables (timestamps taken by the server's clock in each case).
pgqueue is one of them; the peers live in ``peers/``.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg

from benchmarks.suite import db
from benchmarks.suite.procs import WorkerProcess
from benchmarks.suite.profiles import Profile

Span = tuple[int, float | None]  # jobs finished, seconds from first start to last finish


SPAN_SQL = """
SELECT (SELECT count(*) FROM ({finished}) AS f),
       extract(epoch FROM (SELECT max(t) FROM ({finished}) AS f)
                          - (SELECT min(s) FROM ({started}) AS b))
"""


@dataclass(frozen=True)
class Setup:
    """One worker configuration: ``label`` is ``default`` or ``tuned``."""

    label: str
    processes: int
    config: dict[str, Any]
    note: str
    source: str = ""  # where the setting is documented

    @property
    def key(self) -> str:
        return f"{self.label}/{self.processes}p"


@dataclass
class System:
    name: str
    module: str  # what must import for the system to run
    install_hint: str
    table: tuple[str, str]  # (schema, table) of its jobs, for statistics
    docs: dict[str, str] = field(default_factory=dict)

    def missing(self) -> str | None:
        """None when the system can run, else why not (shown in the report)."""
        try:
            importlib.import_module(self.module)
        except ImportError:
            return f"not installed ({self.install_hint})"
        return None

    # -- to be provided by each system -------------------------------------------

    def setups(self, profile: Profile) -> list[Setup]:
        raise NotImplementedError

    def setup_schema(self, dsn: str) -> None:
        raise NotImplementedError

    def reset(self, dsn: str) -> None:
        raise NotImplementedError

    def clear_finished(self, dsn: str) -> None:
        """Delete every job but the waiting ones (finished, or left running by a stop)."""
        raise NotImplementedError

    def pending(self, dsn: str) -> int:
        raise NotImplementedError

    def enqueue_bulk(self, dsn: str, n: int, chunk: int = 10_000) -> None:
        """``n`` no-op jobs through the system's batch API, ``chunk`` per call."""
        raise NotImplementedError

    @contextlib.contextmanager
    def producer(self, dsn: str) -> Iterator[Callable[[], None]]:
        """A callable enqueueing one no-op job in its own transaction (connection open)."""
        raise NotImplementedError
        yield  # pragma: no cover

    # SQL: the finish time ``t`` of every job recorded finished at or after %(since)s
    # and, unless %(until)s is NULL, by %(until)s; and the start time ``s`` of every
    # job started at or after %(since)s.
    finished_sql = ""
    started_sql = ""

    def finished(self, dsn: db.Target, since: Any) -> int:
        rows = db.execute(dsn, f"SELECT count(*) FROM ({self.finished_sql}) AS f",
                          {"since": since, "until": None})  # fmt: skip
        return int(rows[0][0])

    def span(self, dsn: str, since: Any, until: Any = None) -> Span:
        """The jobs recorded finished (by ``until``), and the seconds from the first
        start to the last such finish: worker warm-up counts, process start-up not."""
        statement = SPAN_SQL.format(finished=self.finished_sql, started=self.started_sql)
        rows = db.execute(dsn, statement, {"since": since, "until": until})
        count, seconds = rows[0] if rows else (0, None)
        return int(count or 0), (float(seconds) if seconds else None)

    # SQL: one row per started job, ``q`` its enqueue and ``s`` its start (server clock).
    pickup_sql = ""

    def latencies_ms(self, dsn: str, since: Any) -> list[float]:
        """Enqueue-to-start waits (ms) of the jobs enqueued since ``since``."""
        rows = db.execute(
            dsn,
            "SELECT extract(epoch FROM s - q)::float8 * 1000"
            f" FROM ({self.pickup_sql}) AS p WHERE q >= %(since)s AND s IS NOT NULL",
            {"since": since},
        )
        return [float(r[0]) for r in rows]

    def pickup(self, dsn: str, start: Any, end: Any) -> dict[str, float | None]:
        """p50/p95/p99 (ms) of the enqueue-to-start waits of jobs started in [start, end)."""
        rows = db.execute(
            dsn,
            "SELECT percentile_disc(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP"
            " (ORDER BY extract(epoch FROM s - q)::float8 * 1000)"
            f" FROM ({self.pickup_sql}) AS p WHERE s >= %(start)s AND s < %(end)s",
            {"start": start, "end": end},
        )
        cuts = (rows[0][0] if rows else None) or [None] * 3
        return {f"pickup_{q}_ms": None if v is None else round(float(v), 2)
                for q, v in zip(("p50", "p95", "p99"), cuts, strict=True)}  # fmt: skip

    def worker_kind(self) -> str:
        return self.name

    def launch(self, dsn: str, setup: Setup, *, burst: bool) -> list[WorkerProcess]:
        """Start the setup's worker processes (one per process unless the system
        supervises several itself)."""
        config = {**setup.config, "dsn": dsn, "burst": burst}
        return [WorkerProcess(self.worker_kind(), config) for _ in range(setup.processes)]


# -- pgqueue ---------------------------------------------------------------------


class Pgqueue(System):
    def __init__(self) -> None:
        super().__init__(
            name="pgqueue",
            module="pgqueue",
            install_hint="pip install -e .",
            table=("pgqueue", "jobs"),
        )

    def setups(self, profile: Profile) -> list[Setup]:
        out = []
        for processes in (1, 2):
            for label, conc in (
                ("default", profile.concurrency_default),
                ("tuned", profile.concurrency_tuned),
            ):
                out.append(
                    Setup(
                        label,
                        processes,
                        {"concurrency": conc, "processes": processes, "queues": ["bench"]},
                        f"sync no-op task, concurrency={conc} per process",
                        "WorkerConfig.concurrency (default 10)",
                    )
                )
        return out

    def launch(self, dsn: str, setup: Setup, *, burst: bool) -> list[WorkerProcess]:
        # pgqueue supervises its own processes (`--processes`): one parent.
        return [WorkerProcess("pgqueue", {**setup.config, "dsn": dsn, "burst": burst})]

    def setup_schema(self, dsn: str) -> None:
        return None  # Databases.create migrated it

    def reset(self, dsn: str) -> None:
        db.execute(dsn, "TRUNCATE pgqueue.jobs")
        db.vacuum(dsn, "pgqueue.jobs")

    def clear_finished(self, dsn: str) -> None:
        # Everything but waiting jobs: finished ones, and any a stopped worker left
        # running (they would hold a burst worker until their lease expired).
        if self.pending(dsn) == 0:
            db.execute(dsn, "TRUNCATE pgqueue.jobs")
        else:
            db.execute(dsn, "DELETE FROM pgqueue.jobs WHERE status <> 'queued'")
        db.vacuum(dsn, "pgqueue.jobs")

    def pending(self, dsn: str) -> int:
        rows = db.execute(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE status = 'queued'")
        return int(rows[0][0])

    def enqueue_bulk(self, dsn: str, n: int, chunk: int = 10_000) -> None:
        import pgqueue

        with pgqueue.App(dsn) as app:
            task = app.task_ref("bench.noop", queue="bench")
            for start in range(0, n, chunk):
                app.enqueue_many([task.job() for _ in range(min(chunk, n - start))])

    @contextlib.contextmanager
    def producer(self, dsn: str) -> Iterator[Callable[[], None]]:
        import pgqueue

        with pgqueue.App(dsn) as app:
            task = app.task_ref("bench.noop", queue="bench")
            task.enqueue()  # opens the pool
            db.execute(dsn, "DELETE FROM pgqueue.jobs WHERE status = 'queued'")
            yield lambda: (task.enqueue(), None)[1]

    finished_sql = (
        "SELECT finished_at AS t FROM pgqueue.jobs WHERE status = 'succeeded'"
        " AND finished_at >= %(since)s"
        " AND (%(until)s::timestamptz IS NULL OR finished_at <= %(until)s)"
    )
    started_sql = (  # through jobs_finished_idx: the finished jobs' starts
        "SELECT started_at AS s FROM pgqueue.jobs WHERE status = 'succeeded'"
        " AND finished_at >= %(since)s AND started_at >= %(since)s"
    )

    def full_span(self, dsn: str, since: Any) -> Span:
        """Every job started since ``since``: count, first start to last finish."""
        rows = db.execute(
            dsn,
            "SELECT count(*), extract(epoch FROM max(finished_at) - min(started_at))"
            " FROM pgqueue.jobs WHERE status = 'succeeded' AND started_at >= %(since)s",
            {"since": since},
        )
        count, seconds = rows[0] if rows else (0, None)
        return int(count or 0), (float(seconds) if seconds else None)

    pickup_sql = "SELECT created_at AS q, started_at AS s FROM pgqueue.jobs"


def all_systems() -> list[System]:
    from benchmarks.suite.peers import peers

    return [Pgqueue(), *peers()]


def connect(dsn: str) -> psycopg.Connection[Any]:
    return psycopg.connect(dsn, autocommit=True)
