"""The app and tasks the chaos workers run (``benchmarks.chaos.tasks:app``).

Settings come from the environment the harness gives each process:
``PGQUEUE_DSN``, ``CHAOS_LEASE`` (seconds) and ``CHAOS_WORK_MS`` (the longest a
task sleeps). Every execution that gets as far as its effect leaves one row in
``chaos.effects``: ``(job_id, attempt, pid, kind)``.

- ``chaos.alo``: at least once. The effect row is written on the task's own
  autocommit connection, so it survives whatever happens to the job afterwards.
- ``chaos.tx``: transactional. The effect row is written on the job's
  connection and commits with the completion, or not at all.
- ``chaos.alo_async`` / ``chaos.tx_async``: the same on the worker's event loop
  (the async transactional path is a code path of its own).
- ``chaos.fence_alo`` / ``chaos.fence_tx``: the partition scenario's jobs. Their
  first attempt (the partitioned worker's) waits for a release file that the
  harness creates once another worker has taken the job over and finished it;
  then it writes a mark on its own connection and tries to complete.
- ``chaos.tick``: the per-second cron schedule's task.
"""

from __future__ import annotations

import asyncio
import faulthandler
import os
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

import pgqueue

LEASE = float(os.environ.get("CHAOS_LEASE", "5"))
WORK_MS = float(os.environ.get("CHAOS_WORK_MS", "10"))
QUEUE = "chaos"
FENCE_QUEUE = "fence"
FENCE_WAIT = 300.0  # seconds a zombie waits for its release file, at most

app = pgqueue.App(
    lease=LEASE,
    max_connections=12,
    connect_timeout=3.0,
    # Many attempts, short backoff: a fault fails attempts, and the run checks
    # that every job still ends succeeded, not that the faults ran out of retries.
    retry=pgqueue.RetryPolicy(base=0.2, cap=2.0),
)

# `kill -USR2 <pid>` writes every thread's stack to the process's log: what a
# worker that stops making progress is waiting on.
faulthandler.register(signal.SIGUSR2, all_threads=True)

_local = threading.local()


def _own_connection() -> psycopg.Connection[Any]:
    """This thread's autocommit connection (a new one after a failure)."""
    conn: psycopg.Connection[Any] | None = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = psycopg.connect(os.environ["PGQUEUE_DSN"], autocommit=True, connect_timeout=3)
        _local.conn = conn
    return conn


def _write_own(sql: str, params: tuple[Any, ...]) -> None:
    try:
        _own_connection().execute(sql, params)
    except psycopg.Error:
        conn = getattr(_local, "conn", None)
        if conn is not None:
            conn.close()
        raise  # the attempt fails and is retried: that is what at-least-once means


def _write_own_patiently(sql: str, params: tuple[Any, ...]) -> None:
    """The zombie's late writes: retried through transient refusals for up to 30 s, so
    its attempt does reach its completion (the thing the partition scenario tests)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            _write_own(sql, params)
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


EFFECT = "INSERT INTO chaos.effects (job_id, attempt, pid, kind) VALUES (%s, %s, %s, %s)"
MARK = "INSERT INTO chaos.marks (job_id, attempt, pid) VALUES (%s, %s, %s)"


def _work() -> None:
    time.sleep(random.uniform(0, WORK_MS) / 1000)


def _me() -> dict[str, Any]:
    job = pgqueue.current_job()
    return {"pid": os.getpid(), "attempt": job.attempt}


@app.task(name="chaos.alo", queue=QUEUE, max_attempts=50)
def alo(seq: int) -> dict[str, Any]:
    _work()
    job = pgqueue.current_job()
    _write_own(EFFECT, (job.id, job.attempt, os.getpid(), "alo"))
    return _me()


@app.task(name="chaos.tx", queue=QUEUE, max_attempts=50, transactional=True)
def tx(seq: int, connection: psycopg.Connection[Any]) -> dict[str, Any]:
    job = pgqueue.current_job()
    connection.execute(EFFECT, (job.id, job.attempt, os.getpid(), "tx"))
    _work()
    return _me()


_aconn: psycopg.AsyncConnection[Any] | None = None
_alock: asyncio.Lock | None = None


async def _write_own_async(sql: str, params: tuple[Any, ...]) -> None:
    """One autocommit connection per worker process's event loop, one write at a time."""
    global _aconn, _alock
    if _alock is None:
        _alock = asyncio.Lock()
    async with _alock:
        try:
            if _aconn is None or _aconn.closed:
                _aconn = await psycopg.AsyncConnection.connect(
                    os.environ["PGQUEUE_DSN"], autocommit=True, connect_timeout=3)
            await _aconn.execute(sql, params)
        except psycopg.Error:
            if _aconn is not None:
                await _aconn.close()
            _aconn = None
            raise


@app.task(name="chaos.alo_async", queue=QUEUE, max_attempts=50)
async def alo_async(seq: int) -> dict[str, Any]:
    await asyncio.sleep(random.uniform(0, WORK_MS) / 1000)
    job = pgqueue.current_job()
    await _write_own_async(EFFECT, (job.id, job.attempt, os.getpid(), "alo"))
    return _me()


@app.task(name="chaos.tx_async", queue=QUEUE, max_attempts=50, transactional=True)
async def tx_async(seq: int, connection: psycopg.AsyncConnection[Any]) -> dict[str, Any]:
    job = pgqueue.current_job()
    await connection.execute(EFFECT, (job.id, job.attempt, os.getpid(), "tx"))
    await asyncio.sleep(random.uniform(0, WORK_MS) / 1000)
    return _me()


def _hold(release: str) -> None:
    """The first attempt (the partitioned worker's) waits for the harness."""
    if pgqueue.current_job().attempt > 1:
        return
    deadline = time.monotonic() + FENCE_WAIT
    while not Path(release).exists() and time.monotonic() < deadline:
        time.sleep(0.05)


@app.task(name="chaos.fence_alo", queue=FENCE_QUEUE, max_attempts=10)
def fence_alo(release: str) -> dict[str, Any]:
    _hold(release)
    job = pgqueue.current_job()
    _write_own_patiently(EFFECT, (job.id, job.attempt, os.getpid(), "alo"))
    _write_own_patiently(MARK, (job.id, job.attempt, os.getpid()))
    return _me()


@app.task(name="chaos.fence_tx", queue=FENCE_QUEUE, max_attempts=10, transactional=True)
def fence_tx(release: str, connection: psycopg.Connection[Any]) -> dict[str, Any]:
    job = pgqueue.current_job()
    connection.execute(EFFECT, (job.id, job.attempt, os.getpid(), "tx"))
    _hold(release)
    # On a connection of its own: the mark stays even when the completion is refused.
    _write_own_patiently(MARK, (job.id, job.attempt, os.getpid()))
    return _me()


@app.task(name="chaos.tick", queue=QUEUE, max_attempts=50)
def tick() -> None:
    return None


SCHEMA = """
CREATE SCHEMA IF NOT EXISTS chaos;
CREATE TABLE IF NOT EXISTS chaos.effects (
    job_id bigint NOT NULL, attempt int NOT NULL, pid int NOT NULL, kind text NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE INDEX IF NOT EXISTS effects_job_idx ON chaos.effects (job_id);
CREATE TABLE IF NOT EXISTS chaos.marks (
    job_id bigint NOT NULL, attempt int NOT NULL, pid int NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp());
"""
