"""The worker's own async connection for claims, and what it does when the database falters."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import psycopg

from pgqueue._db import is_connection_error, is_transient
from pgqueue._errors import first_line
from pgqueue.maintenance._service import Backoff
from pgqueue.worker._log import log

if TYPE_CHECKING:
    from pgqueue._db import Database


class LoopConnection:
    """The claim loop's async connection (claims, release), opened on demand.

    A transient error (``is_transient``: connection lost, server read-only,
    shutting down or starting) makes a statement return None after a capped
    backoff, so the loop stops claiming until the database takes writes again;
    a lost connection is reopened while ``keep_trying()`` holds. Any other
    error is raised: it is a bug or a broken schema, not an outage.
    """

    def __init__(
        self,
        database: Database,
        wait: Callable[[float], Awaitable[None]],
        keep_trying: Callable[[], bool],
        name: str,
    ) -> None:
        self._database = database
        self._wait = wait
        self._keep_trying = keep_trying
        self._name = name
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._backoff = Backoff()

    async def open(self) -> None:
        """The first connection: a failure here is the caller's error."""
        try:
            self._conn = await self._database.connect_async()
        except psycopg.OperationalError as exc:
            raise self._database.unavailable(exc) from None

    async def get(self, retry: bool = True) -> psycopg.AsyncConnection[Any] | None:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        while True:
            try:
                self._conn = await self._database.connect_async()
                log(logging.INFO, "reconnected", worker=self._name)
                return self._conn
            except psycopg.OperationalError as exc:
                if not retry or not self._keep_trying():
                    return None
                await self._pause(exc)

    async def fetch(
        self, sql: str, params: Mapping[str, Any], retry: bool = True
    ) -> list[tuple[Any, ...]] | None:
        """Rows of one statement; None (logged) when the database is unavailable."""
        conn = await self.get(retry)
        if conn is None:
            return None
        try:
            cur = await conn.execute(sql, params)
            rows = await cur.fetchall()
        except psycopg.Error as exc:
            await self._failed(exc, retry)
            return None
        self._backoff.reset()
        return rows

    async def fetch_in_transaction(
        self, steps: list[tuple[str, Mapping[str, Any]]]
    ) -> list[tuple[Any, ...]] | None:
        """Run ``steps`` in one transaction; the rows of the last (None: database unavailable)."""
        conn = await self.get()
        if conn is None:
            return None
        try:
            async with conn.transaction():
                for sql, params in steps:
                    cur = await conn.execute(sql, params)
                rows = await cur.fetchall()
        except psycopg.Error as exc:
            await self._failed(exc, retry=True)
            return None
        self._backoff.reset()
        return rows

    async def _failed(self, exc: psycopg.Error, retry: bool) -> None:
        if not is_transient(exc):
            raise exc
        if is_connection_error(exc):
            # Reconnect at once (get() backs off if that fails): a connection the
            # server dropped while restarting costs no wait.
            log(logging.WARNING, "connection_lost", worker=self._name, error=first_line(exc))
            await self.close()
        elif retry and self._keep_trying():
            await self._pause(exc)  # read-only, say: claim again after a backoff

    async def _pause(self, exc: BaseException) -> None:
        delay = self._backoff.next()
        log(self._backoff.level(), "db_unavailable", worker=self._name, error=first_line(exc),
            retry_in=delay)  # fmt: skip
        await self._wait(delay)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()
