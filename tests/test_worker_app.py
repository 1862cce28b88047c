"""The app the worker tests run in subprocesses, and helpers to drive those processes.

Worker subprocesses import this module as ``test_worker_app:app`` (``tests/`` is
on their ``PYTHONPATH``) and reach the test database through ``PGQUEUE_DSN``.
Tasks record every execution in ``public.executions`` over a connection of
their own, outside any job transaction, so duplicate runs cannot hide.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

import pgqueue

TESTS_DIR = Path(__file__).resolve().parent

app = pgqueue.App(
    lease=float(os.environ.get("PGQUEUE_TEST_LEASE", "30")),
    retry=pgqueue.RetryPolicy(base=0.05, cap=0.2),
    max_connections=4,
)

EXECUTIONS_DDL = """
CREATE TABLE IF NOT EXISTS public.executions (
    key bigint NOT NULL,
    pid integer NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE IF NOT EXISTS public.tx_effects (key bigint NOT NULL);
TRUNCATE public.executions, public.tx_effects;
"""

_local = threading.local()


def record(key: int) -> int:
    """Note that the job ``key`` ran; returns how many times it has run (this one included)."""
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = _local.conn = psycopg.connect(app.dsn, autocommit=True)
    row = conn.execute(
        "WITH ins AS (INSERT INTO public.executions (key, pid) VALUES (%s, %s) RETURNING key)"
        " SELECT count(*) + 1 FROM public.executions WHERE key = %s",
        (key, os.getpid(), key),
    ).fetchone()
    assert row is not None
    return int(row[0])


@app.task(name="t.record")
def record_task(key: int) -> int:
    record(key)
    return key


@app.task(name="t.sleep")
def sleep_task(key: int, seconds: float) -> int:
    record(key)
    time.sleep(seconds)
    return key


@app.task(name="t.sleep_once")
def sleep_once(key: int, seconds: float) -> int:
    """Sleeps on its first run only (the run a test kills)."""
    if record(key) == 1:
        time.sleep(seconds)
    return key


@app.task(name="t.tx_insert", transactional=True)
def tx_insert(key: int, seconds: float = 0.0, connection: Any = None) -> int:
    """Writes through the job's transaction; sleeps on its first run only."""
    first = record(key) == 1
    connection.execute("INSERT INTO public.tx_effects (key) VALUES (%s)", (key,))
    if first:
        time.sleep(seconds)
    return key


@app.task(name="t.exit_once")
def exit_once(key: int) -> int:
    """Ends its process on the first run (``os._exit``: no cleanup, no outcome)."""
    if record(key) == 1:
        os._exit(3)
    return key


@app.task(name="t.segfault", max_attempts=2)
def segfault(key: int) -> None:
    """Crashes its process with SIGSEGV on every run."""
    import ctypes

    record(key)
    ctypes.string_at(0)


# -- driving worker processes --------------------------------------------------------


def prepare_tables(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(EXECUTIONS_DDL)


BOOT = (
    "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from pgqueue.cli import main; main()"
)


class WorkerProcess:
    """``pgqueue worker test_worker_app:app ARGS`` in a subprocess; its log goes to a file."""

    def __init__(
        self, dsn: str, *args: str, lease: float = 30.0, app: str = "test_worker_app:app"
    ) -> None:
        env = {
            **os.environ,
            "PGQUEUE_DSN": dsn,
            "PGQUEUE_TEST_LEASE": str(lease),
            "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")]),
        }
        # SIGINT back to its default first: a test run started in the background
        # (`make test &`) ignores it, and the worker, like Python, leaves an
        # ignored SIGINT alone.
        cmd = [sys.executable, "-c", BOOT, "worker",
               app, "--log-level", "info", *args]  # fmt: skip
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        return self.proc.wait(timeout)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(every)


def scalar(dsn: str, sql: str, params: Any = None) -> Any:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(sql, params).fetchone()
    return None if row is None else row[0]


def executions(dsn: str, key: int | None = None) -> int:
    if key is None:
        return int(scalar(dsn, "SELECT count(*) FROM public.executions"))
    return int(scalar(dsn, "SELECT count(*) FROM public.executions WHERE key = %s", (key,)))


@contextmanager
def worker_process(
    dsn: str, *args: str, lease: float = 30.0, app: str = "test_worker_app:app"
) -> Iterator[WorkerProcess]:
    """A worker subprocess, killed at the end if the test left it running."""
    worker = WorkerProcess(dsn, *args, lease=lease, app=app)
    try:
        yield worker
    except BaseException:
        print(worker.output())  # shown by pytest when the test fails
        raise
    finally:
        worker.close()
