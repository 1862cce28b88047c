"""Connection pools owned by an App: lazily opened, closed cleanly."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout
from typing_extensions import Self

from pgqueue._config import unavailable
from pgqueue._connection import async_connection, sync_connection


class PoolOwner:
    """The pool half of ``App``: a sync and an async pool, each opened on first use."""

    min_connections: int
    max_connections: int
    connect_timeout: float
    _pool: ConnectionPool[Any] | None
    _apool: AsyncConnectionPool[Any] | None
    _lock: threading.Lock

    @property
    def dsn(self) -> str:
        raise NotImplementedError

    def connect_kwargs(self) -> dict[str, Any]:
        raise NotImplementedError

    def _pool_kwargs(self) -> dict[str, Any]:
        # Autocommit: each pgqueue statement is its own transaction, one round
        # trip (no separate COMMIT).
        return {
            "min_size": self.min_connections,
            "max_size": self.max_connections,
            "kwargs": {**self.connect_kwargs(), "autocommit": True},
            "open": False,
        }

    def pool(self) -> ConnectionPool[Any]:
        with self._lock:
            if self._pool is None:
                pool: ConnectionPool[Any] = ConnectionPool(
                    self.dsn, name="pgqueue", **self._pool_kwargs()
                )
                pool.open()
                try:
                    pool.wait(timeout=self.connect_timeout)
                except PoolTimeout:
                    pool.close()
                    raise self._diagnose() from None
                self._pool = pool
            return self._pool

    async def apool(self) -> AsyncConnectionPool[Any]:
        if self._apool is None:
            dsn = await asyncio.to_thread(lambda: self.dsn)
            apool: AsyncConnectionPool[Any] = AsyncConnectionPool(
                dsn, name="pgqueue-async", **self._pool_kwargs()
            )
            await apool.open()
            try:
                await apool.wait(timeout=self.connect_timeout)
            except PoolTimeout:
                await apool.close()
                raise self._diagnose() from None
            if self._apool is None:
                self._apool = apool
            else:
                await apool.close()
        return self._apool

    def _diagnose(self) -> Exception:
        try:
            psycopg.connect(self.dsn, connect_timeout=3).close()
        except psycopg.Error as exc:
            return unavailable(self.dsn, exc)
        return unavailable(self.dsn, TimeoutError("timed out waiting for a connection"))

    @contextmanager
    def _connection(self, connection: Any) -> Iterator[psycopg.Connection[Any]]:
        if connection is not None:
            yield sync_connection(connection)
            return
        try:
            pool = self.pool()
            with pool.connection() as conn:
                yield conn
        except psycopg.OperationalError as exc:
            raise unavailable(self.dsn, exc) from exc

    @asynccontextmanager
    async def _aconnection(self, connection: Any) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        if connection is not None:
            yield await async_connection(connection)
            return
        try:
            apool = await self.apool()
            async with apool.connection() as conn:
                yield conn
        except psycopg.OperationalError as exc:
            raise unavailable(self.dsn, exc) from exc

    def close(self) -> None:
        """Close the sync pool (the async pool needs ``aclose``)."""
        with self._lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None

    async def aclose(self) -> None:
        if self._apool is not None:
            apool, self._apool = self._apool, None
            await apool.close()
        await asyncio.to_thread(self.close)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
