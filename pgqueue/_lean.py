"""One job on a pooled async connection, driving libpq directly.

psycopg's async ``execute`` runs a generator under ``wait_async`` (a future,
an add/remove of the socket's reader and a timer per wait), its
prepared-statement manager, the dumpers and the row builder: about 0.05 ms
of client CPU per ``INSERT ... RETURNING`` against asyncpg's 0.04
(``benchmarks/enqueue_async.py --floor``). A single async enqueue is that
one statement, so on a pooled autocommit connection it goes through
psycopg's public low-level API instead (``conn.pgconn``, ``psycopg.pq``):
the ``enqueue_one`` statement prepared once per connection under a name of
pgqueue's own, its parameters sent as text, one reader callback for the
reply, and the row decoded by a ``psycopg.adapt.Transformer`` (psycopg's own
loaders: the same values as the cursor's).

``enqueue`` returns ``NOT_TAKEN`` where the usual path must run instead:
the caller's connection (its transaction), a queue known to have a
max_depth, a connection not idle or not UTF-8, a parameter this path does
not send as text (a NUL, a non-finite float: the usual path raises as
before). A statement the server no longer knows (``DISCARD ALL``,
``DEALLOCATE``) is prepared again and sent once more. An error result
raises the exception psycopg would have (``psycopg.errors``), and the
checkout maps it as before. Anything raised while the statement is in
flight (a cancelled task, a lost socket) cancels the statement in the
server and closes the connection, which the pool then replaces: it is never
handed out mid-reply.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import weakref
from datetime import datetime
from typing import Any, Final

import psycopg
from psycopg import pq
from psycopg.abc import Transformer as Decoder
from psycopg.adapt import Transformer
from psycopg.errors import error_from_result

from pgqueue._sql import query

Row = tuple[Any, ...]
NOT_TAKEN: Final = object()  # the usual path runs instead
_UNKNOWN_STATEMENT = "26000"  # invalid_sql_statement_name
_IDLE = pq.TransactionStatus.IDLE
_TUPLES_OK = pq.ExecStatus.TUPLES_OK
_COMMAND_OK = pq.ExecStatus.COMMAND_OK


def _positional(sql: str) -> tuple[bytes, tuple[str, ...]]:
    """``%(name)s`` placeholders as ``$n``, and the names in ``$n`` order."""
    order: list[str] = []

    def number(m: re.Match[str]) -> str:
        if m.group(1) not in order:
            order.append(m.group(1))
        return f"${order.index(m.group(1)) + 1}"

    return re.sub(r"%\((\w+)\)s", number, sql).encode(), tuple(order)


_SQL, _ORDER = _positional(query("enqueue_one"))
# Named after its text: a new pgqueue with a changed statement never runs the old one
# on a connection that prepared it (a pool outliving an upgrade in place, say).
_NAME = b"pgqueue_enqueue_one_" + hashlib.sha1(_SQL).hexdigest()[:12].encode()

# Per connection: its row decoder, present once the statement is prepared there.
_decoders: weakref.WeakKeyDictionary[psycopg.AsyncConnection[Any], Decoder] = (
    weakref.WeakKeyDictionary()
)


def _text(value: Any) -> bytes | None:
    """``value`` as PostgreSQL text input; ValueError where only psycopg's dumpers will do."""
    kind = type(value)
    if value is None:
        return None
    if kind is str:
        if "\x00" in value:  # libpq would cut the text there; psycopg raises
            raise ValueError
        return value.encode()  # type: ignore[no-any-return]
    if kind is int:
        return str(value).encode()
    if kind is float and math.isfinite(value):
        return repr(value).encode()
    if kind is datetime and value.tzinfo is not None:
        return value.isoformat().encode()  # type: ignore[no-any-return]
    raise ValueError


def _encoded(params: dict[str, Any]) -> list[bytes | None] | None:
    try:
        return [_text(params[name]) for name in _ORDER]
    except ValueError:
        return None


async def enqueue(
    conn: psycopg.AsyncConnection[Any], params: dict[str, Any]
) -> Row | object | None:
    """The ``enqueue_one`` row (id, unique_key, status, run_at, created_at, _), None
    when it inserted nothing (the caller asks why), or ``NOT_TAKEN``."""
    values = _encoded(params)
    pgconn = conn.pgconn
    if values is None or pgconn.transaction_status != _IDLE:
        return NOT_TAKEN
    async with conn.lock:
        if pgconn.transaction_status != _IDLE:  # raced with another user of conn
            return NOT_TAKEN
        decoder = _decoders.get(conn)
        if decoder is None:
            if pgconn.parameter_status(b"client_encoding") != b"UTF8":
                return NOT_TAKEN
            decoder = await _prepare(conn)
        res = await _exchange(conn, lambda: pgconn.send_query_prepared(_NAME, values))
        if _sqlstate(res) == _UNKNOWN_STATEMENT:
            decoder = await _prepare(conn)
            res = await _exchange(conn, lambda: pgconn.send_query_prepared(_NAME, values))
        _check(res, conn, _TUPLES_OK)
        if res.ntuples == 0:
            return None
        decoder.set_pgresult(res)
        row: Row | None = decoder.load_row(0, tuple)
        return row


async def _prepare(conn: psycopg.AsyncConnection[Any]) -> Decoder:
    pgconn = conn.pgconn
    _decoders.pop(conn, None)
    res = await _exchange(conn, lambda: pgconn.send_prepare(_NAME, _SQL))
    if _sqlstate(res) != "42P05":  # 42P05: prepared already (its decoder was forgotten)
        _check(res, conn, _COMMAND_OK)
    decoder: Decoder = Transformer.from_context(conn)
    _decoders[conn] = decoder
    return decoder


def _sqlstate(res: pq.abc.PGresult) -> str | None:
    state = res.error_field(pq.DiagnosticField.SQLSTATE)
    return state.decode() if state else None


def _check(res: pq.abc.PGresult, conn: psycopg.AsyncConnection[Any], ok: pq.ExecStatus) -> None:
    if res.status != ok:
        if res.status == pq.ExecStatus.FATAL_ERROR:
            raise error_from_result(res, encoding=conn.info.encoding)
        raise psycopg.InterfaceError(f"unexpected result {pq.ExecStatus(res.status).name}")


async def _exchange(conn: psycopg.AsyncConnection[Any], send: Any) -> pq.abc.PGresult:
    """Send one command and read its results; the last one (an error wins)."""
    pgconn = conn.pgconn
    try:
        send()
        loop = asyncio.get_running_loop()
        fd = pgconn.socket
        while pgconn.flush():  # the send buffer is full: wait until it drains
            await _ready(loop, fd, loop.add_writer, loop.remove_writer)
        last: pq.abc.PGresult | None = None
        error: pq.abc.PGresult | None = None
        while True:
            # The reply is never there right after the send: wait first.
            await _ready(loop, fd, loop.add_reader, loop.remove_reader)
            pgconn.consume_input()
            while not pgconn.is_busy():
                res = pgconn.get_result()
                if res is None:
                    result = error or last
                    if result is None:
                        raise psycopg.InterfaceError("no result")
                    return result
                if res.status == pq.ExecStatus.FATAL_ERROR and error is None:
                    error = res
                last = res
    except BaseException:
        if pgconn.transaction_status != _IDLE:
            await _abandon(conn)
        raise


async def _abandon(conn: psycopg.AsyncConnection[Any]) -> None:
    """Mid-reply (a cancelled task) or the session gone: cancel the statement in
    the server, as psycopg does on an interrupt, and close the connection (the
    pool replaces it) rather than read the rest of a reply."""
    try:
        if conn.pgconn.transaction_status == pq.TransactionStatus.ACTIVE:
            await conn.cancel_safe(timeout=5.0)
    except Exception:  # a best effort: the session may be gone already
        pass
    finally:
        await conn.close()


async def _ready(loop: asyncio.AbstractEventLoop, fd: int, add: Any, remove: Any) -> None:
    fut: asyncio.Future[None] = loop.create_future()
    add(fd, _wake, fut)
    try:
        await fut
    finally:
        remove(fd)


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
