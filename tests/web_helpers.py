"""Shared by the dashboard's tests: an app with jobs in every state, a live server."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from test_worker import running_worker  # re-exported for the web tests
from test_worker_app import wait_until  # re-exported too

import pgqueue

__all__ = ["dead_job", "drain", "history", "make_app", "running_worker", "serve", "wait_until"]

FAST = {"poll_interval": 0.1, "rescue_interval": 0.2}


def make_app(dsn: str) -> pgqueue.App:
    app = pgqueue.App(dsn, lease=5, retry=pgqueue.RetryPolicy(base=0.01, cap=0.02))

    @app.task(name="mail.send", queue="mail", max_attempts=2)
    def send(to: str) -> None:
        raise ValueError(f"mailbox {to} is full")

    @app.task(name="work.tick", queue="work")
    def tick(n: int) -> dict[str, int]:
        return {"n": n}

    return app


def drain(app: pgqueue.App, queues: list[str]) -> None:
    app.run_worker(queues, until_empty=True, **FAST)


def dead_job(app: pgqueue.App) -> pgqueue.Job:
    """A job of ``mail.send`` that failed twice and is dead, with tracebacks."""
    job = app.tasks["mail.send"].enqueue("ops@example.com")
    drain(app, ["mail"])
    return app.get_job(job.id)


@contextmanager
def serve(asgi: Any) -> Iterator[str]:
    """Serve ``asgi`` with uvicorn on 127.0.0.1 and a free port; yields the base URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(asgi, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_until(lambda: server.started)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


def history(dsn: str, jobs: int = 1500) -> None:
    """Finished jobs spread over the last hour (succeeded, some dead), for the charts."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO pgqueue.jobs (queue, task, status, attempts, run_at, started_at,
                                      finished_at, created_at, last_error)
            SELECT 'reports', 'reports.build', s.status, 1, f - d - make_interval(secs => l),
                   f - d, f, f - d - make_interval(secs => l),
                   CASE WHEN s.status = 'dead' THEN 'TimeoutError: upstream' END
            FROM generate_series(1, %(n)s) AS g(i),
                 LATERAL (SELECT now() - make_interval(secs => 3600 * random() ^ 1.5) AS f,
                                 make_interval(secs => random()) AS d,
                                 0.02 + random() * random() * (1 + (g.i %% 7)) AS l,
                                 CASE WHEN g.i %% 40 = 0 THEN 'dead' ELSE 'succeeded' END
                                     AS status) AS s
            """,
            {"n": jobs},
        )
