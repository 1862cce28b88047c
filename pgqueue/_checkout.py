"""A pooled connection for one operation, without the layers one statement does not need.

``pool.connection()`` (psycopg_pool) is a generator-based context manager
that also enters the connection's own context (a commit: a no-op on
pgqueue's autocommit connections, taken under the connection's lock) and
times the checkout for the pool's statistics; ``Database.connection`` and
``connection_async`` wrapped it in a generator of their own for the error
mapping. On a single enqueue those layers were several microseconds of
client CPU (``benchmarks/enqueue_async.py``). These two classes call
``getconn``/``putconn`` directly: the pool still runs its ``check`` on the
way out of it, and on the way back resets what the operation left (a
transaction left open is rolled back, a broken connection replaced); a
driver error that means the server is unreachable or read-only becomes
``DatabaseUnavailable`` as before (``translate``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

Translate = Callable[[BaseException], BaseException]
MAPPED = (psycopg.Error, PoolTimeout, OSError)


def _raise_mapped(translate: Translate, exc: BaseException | None) -> None:
    if isinstance(exc, MAPPED):
        mapped = translate(exc)
        if mapped is not exc:
            raise mapped from exc


class Checkout:
    """``with Checkout(pool, translate) as conn``: a connection of ``pool``."""

    __slots__ = ("_conn", "_pool", "_translate")
    _conn: psycopg.Connection[Any]

    def __init__(self, pool: ConnectionPool[Any], translate: Translate) -> None:
        self._pool = pool
        self._translate = translate

    def __enter__(self) -> psycopg.Connection[Any]:
        try:
            self._conn = self._pool.getconn()
        except MAPPED as exc:
            _raise_mapped(self._translate, exc)
            raise
        return self._conn

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self._pool.putconn(self._conn)
        _raise_mapped(self._translate, exc)


class AsyncCheckout:
    """``async with AsyncCheckout(pool, open_pool, translate) as conn``; ``pool`` None:
    ``open_pool()`` opens it first."""

    __slots__ = ("_conn", "_open", "_pool", "_translate")
    _conn: psycopg.AsyncConnection[Any]

    def __init__(self, pool: AsyncConnectionPool[Any] | None,
                 open_pool: Callable[[], Awaitable[AsyncConnectionPool[Any]]],
                 translate: Translate) -> None:  # fmt: skip
        self._pool = pool
        self._open = open_pool
        self._translate = translate

    async def __aenter__(self) -> psycopg.AsyncConnection[Any]:
        if self._pool is None:
            self._pool = await self._open()
        try:
            self._conn = await self._pool.getconn()
        except MAPPED as exc:
            _raise_mapped(self._translate, exc)
            raise
        return self._conn

    async def __aexit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:  # fmt: skip
        assert self._pool is not None
        await self._pool.putconn(self._conn)
        _raise_mapped(self._translate, exc)
