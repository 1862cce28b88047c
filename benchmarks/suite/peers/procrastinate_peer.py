"""procrastinate (procrastinate-org/procrastinate), with its psycopg 3 connector.

Schema: ``app.schema_manager.apply_schema()`` (what ``procrastinate schema
--apply`` runs). Worker: ``app.run_worker(...)``; ``wait=False`` exits once the
queues are empty (burst). Default: ``concurrency=1`` (``WORKER_CONCURRENCY``,
"by default, each worker only takes one job at a time"). Tuning: the docs'
one throughput knob is ``concurrency`` for async tasks ("Execute multiple
jobs at the same time", docs/howto/concurrency.md); procrastinate fetches one
job per query, whatever the concurrency. Enqueue: ``task.defer()`` and
``task.batch_defer(*kwargs)`` (docs/howto/basics/batch_defer.md), sync.
Timestamps: ``procrastinate_events`` (deferred, started, succeeded).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from benchmarks.suite import db
from benchmarks.suite.profiles import Profile
from benchmarks.suite.systems import Setup, System

TUNED_CONCURRENCY = 30
BATCH = 10_000


def make_app(dsn: str) -> Any:
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))

    @app.task(name="bench.noop")
    async def noop() -> None:
        return None

    @app.task(name="bench.sink")
    async def sink(payload: str) -> None:
        return None

    return app


class ProcrastinatePeer(System):
    def __init__(self) -> None:
        super().__init__(
            name="procrastinate",
            module="procrastinate",
            install_hint="pip install -e '.[bench]'",
            table=("public", "procrastinate_jobs"),
        )

    def setups(self, profile: Profile) -> list[Setup]:
        out = []
        for processes in (1, 2):
            out.append(
                Setup(
                    "default",
                    processes,
                    {"concurrency": 1},
                    "async no-op task, concurrency=1 (its default)",
                    "worker.WORKER_CONCURRENCY = 1",
                )
            )
            out.append(
                Setup(
                    "tuned",
                    processes,
                    {"concurrency": TUNED_CONCURRENCY},
                    f"async no-op task, concurrency={TUNED_CONCURRENCY}",
                    "docs/howto/concurrency.md",
                )
            )
        return out

    def setup_schema(self, dsn: str) -> None:
        app = make_app(dsn)
        with app.open():
            app.schema_manager.apply_schema()

    def reset(self, dsn: str) -> None:
        db.execute(dsn, "TRUNCATE procrastinate_jobs, procrastinate_workers CASCADE")
        db.vacuum(dsn, "procrastinate_jobs")

    def clear_finished(self, dsn: str) -> None:
        db.execute(dsn, "DELETE FROM procrastinate_jobs WHERE status <> 'todo'")
        db.execute(dsn, "DELETE FROM procrastinate_workers")
        db.vacuum(dsn, "procrastinate_jobs")
        db.vacuum(dsn, "procrastinate_events")

    def pending(self, dsn: str) -> int:
        rows = db.execute(dsn, "SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo'")
        return int(rows[0][0])

    def enqueue_bulk(self, dsn: str, n: int, chunk: int = BATCH) -> None:
        app = make_app(dsn)
        task = app.tasks["bench.noop"]
        with app.open():
            for start in range(0, n, chunk):
                task.batch_defer(*[{} for _ in range(min(chunk, n - start))])

    @contextlib.contextmanager
    def producer(self, dsn: str) -> Iterator[Callable[[], None]]:
        app = make_app(dsn)
        task = app.tasks["bench.noop"]
        with app.open():
            task.defer()
            db.execute(dsn, "TRUNCATE procrastinate_jobs CASCADE")
            yield lambda: (task.defer(), None)[1]

    finished_sql = (
        "SELECT at AS t FROM procrastinate_events WHERE type = 'succeeded'"
        " AND at >= %(since)s AND (%(until)s::timestamptz IS NULL OR at <= %(until)s)"
    )
    started_sql = (
        "SELECT at AS s FROM procrastinate_events WHERE type = 'started' AND at >= %(since)s"
    )

    pickup_sql = (
        "SELECT d.at AS q, s.at AS s FROM procrastinate_events AS d"
        " JOIN procrastinate_events AS s ON s.job_id = d.job_id AND s.type = 'started'"
        " WHERE d.type = 'deferred'"
    )


class Feeder:
    """The load producer's side (``benchmarks/load.py``): batches with a payload."""

    def __init__(self, dsn: str, payload: str) -> None:
        import psycopg

        self.app = make_app(dsn)
        self.app.open()
        self.task = self.app.tasks["bench.sink"]
        self.payload = payload
        self.conn = psycopg.connect(dsn, autocommit=True)

    def enqueue(self, n: int) -> None:
        self.task.batch_defer(*[{"payload": self.payload} for _ in range(n)])

    def waiting(self) -> int:
        row = self.conn.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo'"
        ).fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        self.app.close()
        self.conn.close()


def run_worker(config: dict[str, Any]) -> int:
    """The worker process (``python -m benchmarks.suite.workers procrastinate``)."""
    app = make_app(config["dsn"])
    app.run_worker(
        concurrency=int(config["concurrency"]),
        wait=not config["burst"],
        install_signal_handlers=True,  # SIGTERM: graceful stop
    )
    return 0
