"""Dedicated connections for the worker's loops, and reconnect backoff."""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import psycopg

from pgqueue.worker._config import RECONNECT_MAX, RECONNECT_MIN
from pgqueue.worker._log import log

if TYPE_CHECKING:
    from pgqueue._db import Database


class Backoff:
    """Exponential reconnect delays with jitter, reset after a success."""

    def __init__(self, low: float = RECONNECT_MIN, high: float = RECONNECT_MAX) -> None:
        self.low = low
        self.high = high
        self.failures = 0

    def next(self) -> float:
        self.failures += 1
        ceiling = min(self.high, self.low * 2 ** (self.failures - 1))
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.failures = 0


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class LoopConnection:
    """The worker's own async connection (claims, release): opened on demand,
    reopened with backoff after a loss while ``keep_trying()`` holds."""

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

    async def open(self) -> None:
        """The first connection: a failure here is the caller's error."""
        try:
            self._conn = await self._database.connect_async()
        except psycopg.OperationalError as exc:
            raise self._database.unavailable(exc) from None

    async def get(self, retry: bool = True) -> psycopg.AsyncConnection[Any] | None:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        backoff = Backoff()
        while True:
            try:
                self._conn = await self._database.connect_async()
                log(logging.INFO, "reconnected", worker=self._name)
                return self._conn
            except psycopg.OperationalError as exc:
                if not retry or not self._keep_trying():
                    return None
                delay = backoff.next()
                log(logging.WARNING, "db_unavailable", error=first_line(exc), retry_in=delay)
                await self._wait(delay)

    async def fetch(
        self, sql: str, params: Mapping[str, Any], retry: bool = True
    ) -> list[tuple[Any, ...]] | None:
        """Rows of one statement; None (logged, connection dropped) when the database is lost."""
        conn = await self.get(retry)
        if conn is None:
            return None
        try:
            cur = await conn.execute(sql, params)
            return await cur.fetchall()
        except psycopg.OperationalError as exc:
            log(logging.WARNING, "connection_lost", worker=self._name, error=first_line(exc))
            await self.close()
            return None

    async def fetch_in_transaction(
        self, steps: list[tuple[str, Mapping[str, Any]]]
    ) -> list[tuple[Any, ...]] | None:
        """Run ``steps`` in one transaction; the rows of the last (None: database lost)."""
        conn = await self.get()
        if conn is None:
            return None
        try:
            async with conn.transaction():
                for sql, params in steps:
                    cur = await conn.execute(sql, params)
                return await cur.fetchall()
        except psycopg.OperationalError as exc:
            log(logging.WARNING, "connection_lost", worker=self._name, error=first_line(exc))
            await self.close()
            return None

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()
