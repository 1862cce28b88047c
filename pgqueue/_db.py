"""The database port: every way pgqueue reaches PostgreSQL, in one object.

``Database`` resolves the DSN (starting the embedded development server is the
explicit :meth:`Database.resolve`, never a side effect of reading a value),
owns the sync and async pools, opens the dedicated autocommit connections of
the notifier, heartbeat and maintenance loops, adopts a caller's connection
for transactional enqueue, re-initialises itself after a fork, and is the one
place where driver errors become :class:`~pgqueue.DatabaseUnavailable`.

Operations that do no I/O of their own are written once, as generators of
:class:`Statement` (see :meth:`Database.run`); the sync and async fronts only
drive them, as psycopg drives its own protocol generators.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import select
import sys
import threading
from collections.abc import AsyncIterator, Generator, Iterator, Mapping
from contextlib import (
    AbstractAsyncContextManager,
    AbstractContextManager,
    asynccontextmanager,
    contextmanager,
)  # fmt: skip
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg.rows import dict_row, tuple_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from pgqueue._checkout import AsyncCheckout, Checkout
from pgqueue._config import describe, resolve_dsn
from pgqueue._connection import async_connection, sync_connection
from pgqueue._dsn import scrub
from pgqueue._errors import ConfigurationError, DatabaseUnavailable, first_line

T = TypeVar("T")
POOL_RECONNECT_TIMEOUT = 1.0  # seconds a pool keeps retrying one failed connection attempt
Rows = list[Any]

# SQLSTATEs of a server that is there but cannot take writes or sessions right
# now: a standby (or a primary turned read-only), one shutting down or
# starting up. Like a lost connection, they pass: wait, reconnect, retry.
TRANSIENT_SQLSTATES = frozenset({
    "25006",  # read_only_sql_transaction
    "57P01",  # admin_shutdown
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now
    "53300",  # too_many_connections
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "55P03",  # lock_not_available (lock_timeout)
})  # fmt: skip


def is_connection_error(exc: BaseException) -> bool:
    """The session is gone or could not be opened (say so: "cannot connect")."""
    if not isinstance(exc, psycopg.Error):
        return isinstance(exc, (OSError, PoolTimeout))
    state = exc.sqlstate
    if state is None:
        return isinstance(exc, psycopg.OperationalError)
    return state.startswith("08") or state in ("57P01", "57P02", "57P03", "53300")


def is_transient(exc: BaseException) -> bool:
    """An error that passes by itself: retry later rather than give up or lose work."""
    if is_connection_error(exc):
        return True
    if isinstance(exc, psycopg.Error):
        return exc.sqlstate in TRANSIENT_SQLSTATES
    return False


@dataclass(frozen=True)
class Statement:
    """One statement of an operation: SQL text, parameters, and how to return rows.

    ``rows`` is ``"tuple"`` or ``"dict"``; a statement that returns nothing
    yields an empty list.
    """

    sql: str
    params: Mapping[str, Any] | None = None
    rows: str = "tuple"


# An operation: yields statements, receives their rows, returns its result.
Operation = Generator[Statement, Rows, T]


@dataclass(frozen=True)
class DatabaseConfig:
    """How to reach PostgreSQL: named defaults, validated once."""

    dsn: str | None = field(default=None, repr=False)  # a repr must not show a password
    min_connections: int = 1
    max_connections: int = 10
    connect_timeout: float = 5.0
    prepare: bool = True  # False suits PgBouncer in transaction pooling mode
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.min_connections < 0 or self.max_connections < max(1, self.min_connections):
            raise ConfigurationError("need 0 <= min_connections <= max_connections, >= 1")
        if self.connect_timeout <= 0:
            raise ConfigurationError("connect_timeout must be > 0 seconds")


class Database:
    """Every connection pgqueue makes goes through here.

    The DSN comes from ``dsn``, else ``$PGQUEUE_DSN``, else ``$DATABASE_URL``;
    with none of them :meth:`resolve` starts (or reuses) the embedded server.
    """

    def __init__(self, config: DatabaseConfig | None = None) -> None:
        self.config = config or DatabaseConfig()
        self._dsn: str | None = None
        self._pool: ConnectionPool[Any] | None = None
        self._pool_async: AsyncConnectionPool[Any] | None = None
        self._lock = threading.Lock()  # the pools
        self._resolving = threading.Lock()
        self.limited_queues: set[str] = set()  # queues seen with a max_depth (see _client)

    def __repr__(self) -> str:
        where = describe(self._dsn) if self._dsn else "unresolved"
        return f"<Database {where}>"

    # -- the DSN -------------------------------------------------------------

    @property
    def configured_dsn(self) -> str | None:
        """The DSN named by argument or environment (no I/O); None: embedded."""
        return resolve_dsn(self.config.dsn)

    def resolve(self) -> str:
        """The DSN to use; with none configured, start (or reuse) the embedded
        server under ``./.pgqueue/`` and migrate it."""
        if self._dsn is None:
            with self._resolving:
                if self._dsn is None:
                    self._dsn = self.configured_dsn or _start_embedded()
        return self._dsn

    async def resolve_async(self) -> str:
        if self._dsn is not None:
            return self._dsn
        return await asyncio.to_thread(self.resolve)

    def with_dsn(self, dsn: str | None) -> Database:
        """A new, unopened Database like this one, at another DSN."""
        if not dsn:
            return self
        return Database(replace(self.config, dsn=dsn))

    def connect_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "connect_timeout": max(1, round(self.config.connect_timeout)),
            **self.config.extra,
        }
        if not self.config.prepare:
            kwargs["prepare_threshold"] = None
        return kwargs

    # -- errors --------------------------------------------------------------

    def unavailable(self, exc: BaseException) -> DatabaseUnavailable:
        """The one translation of a driver error into pgqueue's own."""
        dsn = self._dsn or self.configured_dsn or ""
        where, reason = describe(dsn), scrub(first_line(exc), dsn)  # never a password
        if isinstance(exc, psycopg.Error) and exc.sqlstate == "25006":
            return DatabaseUnavailable(f"PostgreSQL at {where} is read-only: {reason}")
        return DatabaseUnavailable(f"cannot connect to PostgreSQL at {where}: {reason}")

    def _translated(self, exc: BaseException) -> BaseException:
        """``exc`` as pgqueue's own error when it says the server is unreachable
        or read-only; else ``exc`` itself."""
        if is_connection_error(exc) or (
            isinstance(exc, psycopg.Error) and exc.sqlstate == "25006"
        ):
            return self.unavailable(exc)
        return exc

    @contextmanager
    def _mapped(self) -> Iterator[None]:
        try:
            yield
        except (psycopg.Error, PoolTimeout, OSError) as exc:
            mapped = self._translated(exc)
            if mapped is exc:
                raise
            raise mapped from exc

    # -- dedicated connections (notifier, heartbeat, completer, loops) --------

    def connect(self, *, autocommit: bool = True) -> psycopg.Connection[Any]:
        """A connection of its own, outside the pools; the caller closes it.

        Driver errors come through as they are: the loops that own these
        connections tell transient ones (``is_transient``) from the rest and
        reconnect with backoff.
        """
        return psycopg.connect(self.resolve(), autocommit=autocommit, **self.connect_kwargs())

    async def connect_async(self, *, autocommit: bool = True) -> psycopg.AsyncConnection[Any]:
        dsn = await self.resolve_async()
        return await psycopg.AsyncConnection.connect(
            dsn, autocommit=autocommit, **self.connect_kwargs()
        )

    # -- pools -----------------------------------------------------------------

    def _pool_kwargs(self) -> dict[str, Any]:
        # Autocommit: each pgqueue statement is its own transaction, one round
        # trip (no separate COMMIT). check=: a connection a server restart
        # killed is replaced before use, not handed out to fail once.
        # reconnect_timeout: psycopg_pool retries a failed attempt after 1, 2, 4,
        # 8... s and counts it as a connection meanwhile, so after a long outage
        # (or a storm of terminated sessions) the pool would sleep on for seconds
        # after the server is back; given up early, the next checkout starts a
        # fresh attempt at once.
        return {
            "min_size": self.config.min_connections,
            "max_size": self.config.max_connections,
            "reconnect_timeout": POOL_RECONNECT_TIMEOUT,
            "kwargs": {**self.connect_kwargs(), "autocommit": True},
            "open": False,
        }

    def pool(self) -> ConnectionPool[Any]:
        dsn = self.resolve()
        with self._lock:
            if self._pool is None:
                pool: ConnectionPool[Any] = ConnectionPool(
                    dsn, name="pgqueue", check=_check, reconnect_failed=_regrow,
                    **self._pool_kwargs(),
                )  # fmt: skip
                pool.open()
                try:
                    pool.wait(timeout=self.config.connect_timeout)
                except PoolTimeout:
                    pool.close()
                    raise self._diagnose(dsn) from None
                self._pool = pool
            return self._pool

    async def pool_async(self) -> AsyncConnectionPool[Any]:
        if self._pool_async is None:
            dsn = await self.resolve_async()
            apool: AsyncConnectionPool[Any] = AsyncConnectionPool(
                dsn, name="pgqueue-async", check=_check_async, reconnect_failed=_regrow_async,
                **self._pool_kwargs(),
            )  # fmt: skip
            await apool.open()
            try:
                await apool.wait(timeout=self.config.connect_timeout)
            except PoolTimeout:
                await apool.close()
                raise self._diagnose(dsn) from None
            if self._pool_async is None:
                self._pool_async = apool
            else:
                await apool.close()
        return self._pool_async

    def _diagnose(self, dsn: str) -> Exception:
        try:
            psycopg.connect(dsn, connect_timeout=3).close()
        except psycopg.Error as exc:
            return self.unavailable(exc)
        return self.unavailable(TimeoutError("timed out waiting for a connection"))

    def connection(self, connection: Any = None) -> AbstractContextManager[
        psycopg.Connection[Any]
    ]:  # fmt: skip
        """A pooled autocommit connection, or the caller's (joining its transaction)."""
        if connection is not None:
            return self._adopted(connection)
        # The single-enqueue hot path: getconn/putconn, no generator layers (_checkout).
        return Checkout(self._pool or self.pool(), self._translated)

    @contextmanager
    def _adopted(self, connection: Any) -> Iterator[psycopg.Connection[Any]]:
        with self._mapped():
            yield sync_connection(connection)

    def connection_async(self, connection: Any = None) -> AbstractAsyncContextManager[
        psycopg.AsyncConnection[Any]
    ]:  # fmt: skip
        if connection is not None:
            return self._adopted_async(connection)
        return AsyncCheckout(self._pool_async, self.pool_async, self._translated)

    @asynccontextmanager
    async def _adopted_async(self, connection: Any) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        with self._mapped():
            yield await async_connection(connection)

    # -- operations ------------------------------------------------------------

    def run(self, op: Operation[T], *, connection: Any = None, transaction: bool = False) -> T:
        """Drive ``op`` on one connection (in one transaction when asked).

        The operation runs up to its first statement before a connection is
        taken: its argument checks raise before any I/O.
        """
        try:
            first = next(op)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        with self.connection(connection) as conn:
            if not transaction:
                return _drive(conn, op, first)
            with conn.transaction():
                return _drive(conn, op, first)

    async def run_async(
        self, op: Operation[T], *, connection: Any = None, transaction: bool = False
    ) -> T:
        try:
            first = next(op)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        async with self.connection_async(connection) as conn:
            if not transaction:
                return await _drive_async(conn, op, first)
            async with conn.transaction():
                return await _drive_async(conn, op, first)

    # -- lifecycle ---------------------------------------------------------------

    def after_fork(self) -> None:
        """In a forked child: forget the parent's pools (their sockets are the parent's)."""
        self._pool = None
        self._pool_async = None
        self._lock = threading.Lock()
        self._resolving = threading.Lock()

    def close(self) -> None:
        """Close the sync pool (the async pool needs ``close_async``)."""
        with self._lock:
            if self._pool is not None:
                pool, self._pool = self._pool, None
                pool.close()

    async def close_pool_async(self) -> None:
        """Close the async pool: it is bound to the event loop that opened it."""
        if self._pool_async is not None:
            apool, self._pool_async = self._pool_async, None
            await apool.close()

    async def close_async(self) -> None:
        await self.close_pool_async()
        await asyncio.to_thread(self.close)


def _readable(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    """Has the server sent something to an idle connection? A restart, a
    terminated backend or a shutdown leaves the socket readable (a FATAL
    message, then EOF); a healthy idle one is silent."""
    if conn.closed or getattr(conn, "broken", False):
        return True
    readable, _, _ = select.select([conn.fileno()], [], [], 0)
    return bool(readable)


def _regrow(pool: ConnectionPool[Any]) -> None:
    # A connection attempt was given up (POOL_RECONNECT_TIMEOUT). psycopg_pool
    # grows a pool only from a new checkout, so clients already waiting would
    # stay stranded until their timeout: check() starts a fresh attempt now.
    pool.check()


async def _regrow_async(pool: AsyncConnectionPool[Any]) -> None:
    await pool.check()


def _check(conn: psycopg.Connection[Any]) -> None:
    # The pool's check, without its round trip (`check_connection` sends an
    # empty query per checkout: +40 µs of client CPU on every single enqueue).
    if _readable(conn):
        conn.execute("")  # let the driver read it: raises if the session is gone


async def _check_async(conn: psycopg.AsyncConnection[Any]) -> None:
    if _readable(conn):
        await conn.execute("")


def _execute_rows(cur: Any) -> Rows:
    return cur.fetchall() if cur.description is not None else []


def _drive(conn: psycopg.Connection[Any], op: Operation[T], stmt: Statement) -> T:
    try:
        while True:
            factory = dict_row if stmt.rows == "dict" else tuple_row
            with conn.cursor(row_factory=factory) as cur:
                cur.execute(stmt.sql, stmt.params)
                rows = _execute_rows(cur)
            stmt = op.send(rows)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


async def _drive_async(
    conn: psycopg.AsyncConnection[Any], op: Operation[T], stmt: Statement
) -> T:
    try:
        while True:
            factory = dict_row if stmt.rows == "dict" else tuple_row
            async with conn.cursor(row_factory=factory) as cur:
                await cur.execute(stmt.sql, stmt.params)
                rows = await cur.fetchall() if cur.description is not None else []
            stmt = op.send(rows)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


# -- the embedded development server ---------------------------------------------

_started_here: list[Any] = []


def _start_embedded(root: Path = Path(".pgqueue")) -> str:
    """Start (or reuse) the development cluster, migrate it, say so on stderr;
    a server this process started is stopped when the process exits."""
    from pgqueue._embedded import LocalCluster, embedded_dsn
    from pgqueue._migrate import migrate_dsn

    cluster = LocalCluster(Path(root) / "data")
    was_running = cluster.is_running()
    dsn = embedded_dsn(root)
    if not was_running and os.environ.get("PGQUEUE_EMBEDDED_KEEP") != "1":
        if not _started_here:
            atexit.register(_stop_started)
        _started_here.append((os.getpid(), cluster))
    migrate_dsn(dsn)
    return dsn


def _stop_started() -> None:
    for pid, cluster in _started_here:
        if pid == os.getpid():  # never from a forked child
            try:
                cluster.stop()
                print("pgqueue: stopped the embedded PostgreSQL it had started", file=sys.stderr)
            except Exception as exc:  # at exit: report, never raise
                print(f"pgqueue: could not stop the embedded PostgreSQL: {exc}", file=sys.stderr)
