"""PgQueuer (janbjorge/pgqueuer).

Schema: ``Queries(driver).install()`` (what ``pgq install`` runs), then
``optimize_autovacuum()`` (``pgq autovac``, on the docs' production checklist),
durable tables (the default; ``balanced``/``volatile`` lose jobs in a crash,
which pgqueue never does, so they are left out). Worker: ``PgQueuer.run()``;
``mode=drain`` exits once the queue is empty. Default: a psycopg async
connection (the quick start), ``batch_size=10``. Tuning
(docs/guides/performance-tuning.md, docs/benchmark.md): ``batch_size``
raised for short jobs, and the asyncpg driver ("nearly double" psycopg's
throughput). Enqueue: ``SyncQueries.enqueue`` (single, and lists for batches).
Timestamps: ``pgqueuer_log`` (queued, picked, successful). Event loop:
uvloop, as its CLI runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import psycopg

from benchmarks.suite import db
from benchmarks.suite.profiles import Profile
from benchmarks.suite.systems import Setup, System

ENTRYPOINT = "bench.noop"
TUNED_BATCH = 500


async def _install(dsn: str) -> None:
    from pgqueuer.db import PsycopgDriver
    from pgqueuer.queries import Queries

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        queries = Queries(PsycopgDriver(conn))
        await queries.install()
        await queries.optimize_autovacuum()


class PgQueuerPeer(System):
    def __init__(self) -> None:
        super().__init__(
            name="pgqueuer",
            module="pgqueuer",
            install_hint="pip install -e '.[bench]'",
            table=("public", "pgqueuer"),
        )

    def missing(self) -> str | None:
        reason = super().missing()
        if reason is None:
            try:
                import asyncpg  # noqa: F401
            except ImportError:
                return "not installed: asyncpg (its tuned driver); pip install -e '.[bench]'"
        return reason

    def setups(self, profile: Profile) -> list[Setup]:
        out = []
        for processes in (1, 2):
            out.append(
                Setup(
                    "default",
                    processes,
                    {"driver": "psycopg", "batch_size": 10},
                    "psycopg async connection, batch_size=10 (its defaults)",
                    "PgQueuer.run(batch_size=10), quick start",
                )
            )
            out.append(
                Setup(
                    "tuned",
                    processes,
                    {"driver": "asyncpg", "batch_size": TUNED_BATCH},
                    f"asyncpg connection, batch_size={TUNED_BATCH}",
                    "docs/guides/performance-tuning.md, docs/benchmark.md",
                )
            )
        return out

    def setup_schema(self, dsn: str) -> None:
        asyncio.run(_install(dsn))

    def reset(self, dsn: str) -> None:
        db.execute(dsn, "TRUNCATE pgqueuer, pgqueuer_log, pgqueuer_statistics")
        db.vacuum(dsn, "pgqueuer")

    def clear_finished(self, dsn: str) -> None:
        db.execute(dsn, "TRUNCATE pgqueuer_log, pgqueuer_statistics")  # done jobs are deleted
        db.execute(dsn, "DELETE FROM pgqueuer WHERE status <> 'queued'")  # left picked by a stop
        db.vacuum(dsn, "pgqueuer")

    def pending(self, dsn: str) -> int:
        rows = db.execute(dsn, "SELECT count(*) FROM pgqueuer WHERE status = 'queued'")
        return int(rows[0][0])

    def enqueue_bulk(self, dsn: str, n: int, chunk: int = 10_000) -> None:
        from pgqueuer.db import SyncPsycopgDriver
        from pgqueuer.queries import SyncQueries

        with psycopg.connect(dsn, autocommit=True) as conn:
            queries = SyncQueries(SyncPsycopgDriver(conn))
            for start in range(0, n, chunk):
                k = min(chunk, n - start)
                queries.enqueue([ENTRYPOINT] * k, [None] * k, [0] * k)

    @contextlib.contextmanager
    def producer(self, dsn: str) -> Iterator[Callable[[], None]]:
        from pgqueuer.db import SyncPsycopgDriver
        from pgqueuer.queries import SyncQueries

        with psycopg.connect(dsn, autocommit=True) as conn:
            queries = SyncQueries(SyncPsycopgDriver(conn))
            yield lambda: (queries.enqueue(ENTRYPOINT, None, 0), None)[1]

    finished_sql = (
        "SELECT created AS t FROM pgqueuer_log WHERE status = 'successful'"
        " AND created >= %(since)s AND (%(until)s::timestamptz IS NULL OR created <= %(until)s)"
    )
    started_sql = (
        "SELECT created AS s FROM pgqueuer_log WHERE status = 'picked' AND created >= %(since)s"
    )

    pickup_sql = (
        "SELECT q.created AS q, p.created AS s FROM pgqueuer_log AS q JOIN pgqueuer_log AS p"
        " ON p.job_id = q.job_id AND p.status = 'picked' WHERE q.status = 'queued'"
    )


class Feeder:
    """The load producer's side (``benchmarks/load.py``): batches with a payload."""

    def __init__(self, dsn: str, payload: str) -> None:
        from pgqueuer.db import SyncPsycopgDriver
        from pgqueuer.queries import SyncQueries

        self.conn = psycopg.connect(dsn, autocommit=True)
        self.queries = SyncQueries(SyncPsycopgDriver(self.conn))
        self.payload = payload.encode()

    def enqueue(self, n: int) -> None:
        self.queries.enqueue([ENTRYPOINT] * n, [self.payload] * n, [0] * n)

    def waiting(self) -> int:
        row = self.conn.execute("SELECT count(*) FROM pgqueuer WHERE status = 'queued'").fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        self.conn.close()


async def _worker(config: dict[str, Any]) -> None:
    from pgqueuer import PgQueuer
    from pgqueuer.models import Job
    from pgqueuer.types import QueueExecutionMode

    if config["driver"] == "asyncpg":
        import asyncpg

        pgq = PgQueuer.from_asyncpg_connection(await asyncpg.connect(config["dsn"]))
    else:
        conn = await psycopg.AsyncConnection.connect(config["dsn"], autocommit=True)
        pgq = PgQueuer.from_psycopg_connection(conn)

    @pgq.entrypoint(ENTRYPOINT)
    async def noop(job: Job) -> None:
        return None

    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, pgq.shutdown.set)
    mode = QueueExecutionMode.drain if config["burst"] else QueueExecutionMode.continuous
    limit = config.get("max_concurrent_tasks")
    await pgq.run(
        batch_size=int(config["batch_size"]),
        max_concurrent_tasks=int(limit) if limit else None,
        mode=mode,
        dequeue_timeout=timedelta(seconds=float(config.get("dequeue_timeout", 30))),
    )


def run_worker(config: dict[str, Any]) -> int:
    """The worker process (``python -m benchmarks.suite.workers pgqueuer``).

    On uvloop when it is installed (a dependency of pgqueuer), as ``pgq run``
    does (pgqueuer/adapters/cli/cli.py).
    """
    try:
        import uvloop
    except ImportError:
        asyncio.run(_worker(config))
    else:
        uvloop.run(_worker(config))
    return 0
