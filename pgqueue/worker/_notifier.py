"""The notifier: one LISTEN connection per worker process, waking the claim loop.

Producers send ``NOTIFY pgqueue_jobs, '<queue>'`` once per queue per
transaction (the enqueue statement does it). A notification for one of our
queues sets the worker's wake event. ``pgqueue_cancel`` carries the ids of
running jobs someone asked to cancel (``cancel_jobs``): they go to
``on_cancel`` at once (the heartbeat remains the fallback, when not listening).
When the connection drops, the notifier reconnects with backoff, LISTENs
again and then wakes the loop once, so jobs committed while it was away are
fetched at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import psycopg

from pgqueue._errors import first_line
from pgqueue._keys import CANCEL_CHANNEL, JOBS_CHANNEL
from pgqueue.maintenance._service import Backoff
from pgqueue.worker._log import log

if TYPE_CHECKING:
    from pgqueue._db import Database


class Notifier:
    """LISTENs on ``pgqueue_jobs`` (sets ``wake`` for our queues) and ``pgqueue_cancel``."""

    def __init__(
        self,
        database: Database,
        queues: Iterable[str],
        wake: asyncio.Event,
        on_cancel: Callable[[list[int]], None] | None = None,
    ) -> None:
        self._database = database
        self._queues = frozenset(queues)
        self._wake = wake
        self._on_cancel = on_cancel
        self._task: asyncio.Task[None] | None = None
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self.connected = asyncio.Event()
        self.reconnects = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="pgqueue-notifier"
            )

    async def stop(self) -> None:
        """Stop listening; idempotent."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._close()

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        self.connected.clear()
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def _run(self) -> None:
        backoff = Backoff()
        while True:
            try:
                self._conn = await self._database.connect_async()
                await self._conn.execute(f"LISTEN {JOBS_CHANNEL}; LISTEN {CANCEL_CHANNEL}")
                if backoff.failures:
                    log(logging.INFO, "listen_restored", after_failures=backoff.failures)
                    self.reconnects += 1
                backoff.reset()
                self.connected.set()
                self._wake.set()  # whatever was committed while we were away
                async for note in self._conn.notifies():
                    if note.channel == CANCEL_CHANNEL:
                        self._cancel(note.payload)
                    elif note.payload in self._queues:
                        self._wake.set()
                await self._close()  # the stream ended without an error: start over
            except (psycopg.Error, OSError) as exc:
                await self._close()
                delay = backoff.next()
                log(backoff.level(), "listen_lost", error=first_line(exc), retry_in=delay)
                self._wake.set()  # poll once now: the database may be back already
                await asyncio.sleep(delay)

    def _cancel(self, payload: str) -> None:
        if self._on_cancel is not None:
            self._on_cancel([int(i) for i in payload.split(",") if i.isdigit()])
