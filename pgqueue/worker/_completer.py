"""The completer: records job outcomes in batches, one ``complete`` statement per flush.

Outcomes arrive from the event loop and from task threads (``add`` is
thread-safe and cheap); a thread of its own, with its own connection, flushes
them as soon as the first arrives, after lingering a couple of milliseconds so
that a busy worker sends one statement for many jobs; an outcome added with
``alone`` (its worker runs nothing else, so nothing would join the batch) is
flushed without lingering: the next step of a chain, a ``job.wait()``, start
that much sooner. While a flush is in flight the next batch gathers. ``stop``
flushes what is left.

Every row is fenced by ``status = 'running'`` and the lease token: an outcome
for a job whose lease was lost (rescued, re-claimed) changes nothing and is
logged as ``fenced``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import psycopg

from pgqueue._db import is_transient
from pgqueue._errors import first_line
from pgqueue._sql import query
from pgqueue.maintenance._service import Backoff, DedicatedConnection
from pgqueue.worker._claimed import Outcome
from pgqueue.worker._log import log

if TYPE_CHECKING:
    from pgqueue._db import Database

STOP_RETRY_FOR = 10.0  # seconds stop() keeps retrying a flush while the database is down
RETRY_WAKE_SPACING = 0.05  # seconds: retries due this close together share one wake-up


def complete_params(batch: Sequence[Outcome]) -> dict[str, str]:
    """The ``complete`` query's arrays, one element per outcome (by id), as array literals.

    Text, not Python lists: psycopg dumps a list element by element in Python
    (~3.5 us per outcome for the seven, measured), a str in C (~0.4 us).
    """
    # Sorted by id: the heartbeat locks its rows in the same order (no deadlock).
    ids, tokens, statuses, results, delays, errors, entries = zip(
        *sorted(batch, key=lambda o: o[0]), strict=True
    )
    return {
        "ids": "{" + ",".join(map(str, ids)) + "}",
        "tokens": array_literal(tokens),
        "statuses": array_literal(statuses),
        "results": array_literal(results),
        "delays": array_literal(delays),
        "errors": array_literal(errors),
        "entries": array_literal(entries),
    }


def array_literal(values: Sequence[Any]) -> str:
    """A PostgreSQL array literal: None is NULL, anything else is quoted text
    (backslash and double quote escaped), whatever it contains."""
    if all(v is None for v in values):
        return "{" + ",".join(["NULL"] * len(values)) + "}"
    return "{" + ",".join(map(_element, values)) + "}"


def _element(value: Any) -> str:
    if value is None:
        return "NULL"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


# Never prepared: a generic plan cannot see the batch size and may rescan the
# unnest() once per running job (seen at 1,000-row batches on a large table).
# A custom plan costs well under a millisecond per batch.
UNPREPARED = False


def run_complete(conn: psycopg.Connection[Any], batch: Sequence[Outcome]) -> set[int]:
    """Execute ``complete`` for ``batch``; returns the ids it recorded (the rest were fenced)."""
    cur = conn.execute(query("complete"), complete_params(batch), prepare=UNPREPARED)
    return {row[0] for row in cur.fetchall()}


async def run_complete_async(
    conn: psycopg.AsyncConnection[Any], batch: Sequence[Outcome]
) -> set[int]:
    cur = await conn.execute(query("complete"), complete_params(batch), prepare=UNPREPARED)
    return {row[0] for row in await cur.fetchall()}


def wake_times(delays: list[float]) -> list[float]:
    """When to claim again for these retry delays: at most one wake per
    ``RETRY_WAKE_SPACING`` seconds (a wake claims every job due by then), the
    last delay always included."""
    times: list[float] = []
    for delay in sorted(delays):
        if times and delay - times[-1] < RETRY_WAKE_SPACING:
            times[-1] = delay
        else:
            times.append(delay)
    return times


class Completer:
    """Batches outcomes; see the module docstring."""

    def __init__(
        self,
        database: Database,
        *,
        batch: int,
        linger: float,
        on_retry: Callable[[list[float]], None] | None = None,
    ) -> None:
        self._db = DedicatedConnection(database)
        self._batch = batch
        self._linger = linger
        self._on_retry = on_retry
        self._lock = threading.Lock()
        self._buffer: list[Outcome] = []
        self._alone = False  # the buffered outcomes' worker runs nothing else: no linger
        self._inflight: Sequence[Outcome] = ()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.flushes = 0
        self.recorded = 0

    # -- producer side -------------------------------------------------------

    def add(self, outcome: Outcome, *, alone: bool = False) -> None:
        with self._lock:
            self._buffer.append(outcome)
            self._alone = alone
            first = len(self._buffer) == 1
        if first:
            self._wake.set()

    def pending(self) -> list[Outcome]:
        """Outcomes not yet recorded (the heartbeat keeps their leases alive)."""
        with self._lock:
            return [*self._inflight, *self._buffer]

    def backlog(self) -> int:
        """How many outcomes wait to be recorded."""
        with self._lock:
            return len(self._buffer) + len(self._inflight)

    def idle(self) -> bool:
        with self._lock:
            return not self._buffer and not self._inflight

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="pgqueue-completer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Flush everything and stop; idempotent."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._db.close()

    # -- the flushing thread -------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait()
            lingers = self._linger and not (self._stopping or self._alone)
            if lingers and len(self._buffer) < self._batch:
                time.sleep(self._linger)
            with self._lock:
                batch = self._buffer[: self._batch]
                del self._buffer[: self._batch]
                self._inflight = batch
                if not self._buffer:
                    self._wake.clear()
            if batch:
                self._flush(batch)
            with self._lock:
                self._inflight = ()
                done = self._stopping and not self._buffer
            if done:
                return

    def _flush(self, batch: list[Outcome]) -> None:
        backoff = Backoff()
        deadline: float | None = None
        while True:
            try:
                recorded = self._db.run(lambda conn: run_complete(conn, batch))
                break
            except psycopg.Error as exc:
                if not is_transient(exc):
                    if len(batch) == 1:
                        recorded = self._unstorable(batch[0], exc)
                        break
                    # One bad row (say a result PostgreSQL's jsonb rejects) must not
                    # sink the rest.
                    for outcome in batch:
                        self._flush([outcome])
                    return
                # Connection lost, server read-only or restarting: keep the outcomes
                # (the heartbeat keeps their leases) and write them once it passes.
                if self._stopping:
                    deadline = deadline or time.monotonic() + STOP_RETRY_FOR
                    if time.monotonic() > deadline:
                        log(
                            logging.ERROR,
                            "complete_lost",
                            jobs=",".join(str(o.id) for o in batch),
                            error=first_line(exc),
                            note="outcomes not recorded; the rescuer will re-run these jobs",
                        )
                        return
                delay = backoff.next()
                log(
                    backoff.level(),
                    "complete_retry",
                    jobs=len(batch),
                    error=first_line(exc),
                    retry_in=delay,
                )
                time.sleep(delay)
        self.flushes += 1
        self.recorded += len(recorded)
        self._after(batch, recorded)

    def _unstorable(self, outcome: Outcome, exc: psycopg.Error) -> set[int]:
        error = f"OutcomeRejected: PostgreSQL refused the job's outcome: {first_line(exc)}"
        status = "failed" if outcome.status == "failed" else "dead"
        replacement = outcome._replace(status=status, result=None, error=error, entry=None)
        try:
            return self._db.run(lambda conn: run_complete(conn, [replacement]))
        except psycopg.Error:
            return set()

    def _after(self, batch: list[Outcome], recorded: set[int]) -> None:
        delays: list[float] = []
        for outcome in batch:
            if outcome.id not in recorded:
                log(
                    logging.WARNING,
                    "fenced",
                    job=outcome.id,
                    status=outcome.status,
                    note="lease lost before completion; outcome discarded",
                )
            elif outcome.status == "failed":
                delays.append(outcome.delay or 0.0)
        if delays and self._on_retry is not None:
            self._on_retry(wake_times(delays))
