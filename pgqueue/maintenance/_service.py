"""What every background loop shares: a thread, one reconnecting connection, start/stop.

The rescuer, pruner and scheduler (here) and the worker's heartbeat are
:class:`Service` subclasses; the metrics collector and the completer use a
:class:`DedicatedConnection` of their own.

* ``start()`` runs the loop on a daemon thread and returns at once; ``run()``
  runs it in the calling thread (``pgqueue scheduler``).
* ``stop(timeout=None)`` is idempotent, harmless before ``start()``, and safe
  from a signal handler of the thread inside ``run()``.
* One dedicated autocommit connection (``Database.connect()``), opened on
  demand. A pass that fails on a connection opened earlier because that
  connection is gone (the server restarted meanwhile) is run again at once on
  a new one: a stale connection never costs a failed pass.
* A transient error (``is_transient``: connection lost, read-only server,
  shutdown or start-up in progress) retries after a capped exponential
  backoff (at most ``RECONNECT_MAX``, so work resumes within about a second of
  the server taking writes again); any other error is logged and the next pass
  comes at the usual interval.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg

from pgqueue._db import is_connection_error, is_transient
from pgqueue._errors import first_line

if TYPE_CHECKING:
    from pgqueue._db import Database

T = TypeVar("T")

RECONNECT_MIN = 0.05  # seconds: the first retry delay after a transient error ...
RECONNECT_MAX = 1.0  # ... doubling up to this (resume within a second of recovery)


class Backoff:
    """Exponential retry delays with jitter (``low`` doubling up to ``high``), reset on success."""

    def __init__(self, low: float = RECONNECT_MIN, high: float = RECONNECT_MAX) -> None:
        self.low = low
        self.high = high
        self.failures = 0

    def next(self) -> float:
        self.failures += 1
        ceiling = min(self.high, self.low * 2 ** min(self.failures - 1, 30))
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.failures = 0

    def level(self) -> int:
        """How loud the latest failure should be: an outage retries every second,
        so its first failure (and every tenth) is a warning, the rest debug lines."""
        return logging.WARNING if self.failures % 10 == 1 else logging.DEBUG


class DedicatedConnection:
    """One autocommit connection outside the pools, (re)opened on demand.

    Not thread-safe: one owner thread at a time (or the owner's own lock).
    """

    def __init__(self, database: Database) -> None:
        self._database = database
        self._conn: psycopg.Connection[Any] | None = None

    def get(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = self._database.connect()
        return self._conn

    def run(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        """``fn(connection)``; on any database error the connection is dropped (a
        session lock or an aborted transaction must not outlive it), and when the
        error says a connection opened earlier is gone, ``fn`` runs once more on
        a new one."""
        reused = self._conn is not None and not self._conn.closed
        try:
            return fn(self.get())
        except psycopg.Error as exc:
            self.close()
            if not (reused and is_connection_error(exc)):
                raise
        return fn(self.get())

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


class Service:
    """A loop of passes on a thread of its own; see the module docstring.

    Subclasses implement :meth:`loop_pass` (one pass; returns the delay before
    the next, None for ``interval``) and may override :meth:`on_exit` (runs
    once the loop has ended, before the connection closes).
    """

    name = "service"
    logger_name: str | None = None  # default: pgqueue.<name>

    def __init__(self, database: Database, interval: float) -> None:
        if interval <= 0:
            raise ValueError(f"{self.name} interval must be > 0")
        self._database = database
        self.interval = interval
        self.db = DedicatedConnection(database)
        self.logger = logging.getLogger(self.logger_name or f"pgqueue.{self.name}")
        self._stop = threading.Event()
        self._idle = threading.Event()  # no loop is running
        self._idle.set()
        self._thread: threading.Thread | None = None
        self._loop_ident: int | None = None
        self._backoff = Backoff()

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        """Run the loop on a daemon thread (returns at once); a second call does nothing."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._idle.clear()  # before the thread runs: a stop() right after waits for it
            self._thread = threading.Thread(target=self._thread_main, name=f"pgqueue-{self.name}",
                                            daemon=True)  # fmt: skip
            self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop after the current pass and wait for it (at most ``timeout`` seconds).

        Idempotent; harmless before ``start()``; from the loop's own thread (a
        signal handler inside ``run()``) it only asks.
        """
        self._stop.set()
        if threading.get_ident() == self._loop_ident:
            return
        if self._idle.is_set():
            self._exit()  # no loop ran: close what a direct pass opened
            return
        if self._idle.wait(timeout):
            self._thread = None

    @property
    def running(self) -> bool:
        return not self._idle.is_set()

    @property
    def outage(self) -> bool:
        """The last pass failed with a transient error (the database is, or was, away)."""
        return self._backoff.failures > 0

    def close(self) -> None:
        """Stop, and close the connection a direct pass opened."""
        self.stop()

    def run(self) -> None:
        """The loop, in the calling thread, until ``stop()`` (one before returns at once)."""
        self._idle.clear()
        self._thread_main()

    def _thread_main(self) -> None:
        self._loop_ident = threading.get_ident()
        try:
            # A first pass at once: what a crashed predecessor left is handled now.
            while not self._stop.is_set():
                if self._stop.wait(self._run_pass()):
                    break
        finally:
            self._exit()
            self._loop_ident = None
            self._idle.set()

    def _exit(self) -> None:
        try:
            self.on_exit()
        except Exception as exc:  # stopping: report, never raise
            self.logger.warning("event=%s_stop_failed error=%r", self.name, first_line(exc))
        finally:
            self.db.close()

    # -- passes ----------------------------------------------------------------------

    def loop_pass(self) -> float | None:
        raise NotImplementedError

    def on_exit(self) -> None:
        """After the loop ends (or on ``stop()`` of a service that never started)."""

    def expected(self, exc: Exception) -> bool:
        """Errors worth a warning line, not a traceback (database errors by default)."""
        return isinstance(exc, (psycopg.Error, OSError))

    def _run_pass(self) -> float:
        try:
            delay = self.loop_pass()
        except Exception as exc:  # the loop outlives a lost database, and bugs
            self.db.close()
            transient = is_transient(exc)
            wait = self._backoff.next() if transient else self.interval
            expected = transient or self.expected(exc)
            level = logging.ERROR if not expected else logging.WARNING
            if transient:
                level = self._backoff.level()
            self.logger.log(level, "event=%s_failed error=%r retry_in=%.3f", self.name,
                            first_line(exc), wait, exc_info=not expected)  # fmt: skip
            return wait
        if self._backoff.failures:
            self.logger.info("event=%s_recovered failures=%d", self.name, self._backoff.failures)
            self._backoff.reset()
        return self.interval if delay is None else delay
