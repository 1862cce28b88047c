"""Reach the psycopg connection behind whatever the caller passed.

Transactional enqueue runs its statement on the caller's own connection,
inside the caller's transaction: a psycopg connection as is, or the psycopg
connection under a SQLAlchemy Session / Connection (sync or async).
"""

from __future__ import annotations

from typing import Any

import psycopg


def _not_supported(obj: Any) -> TypeError:
    return TypeError(
        f"connection= takes a psycopg connection or a SQLAlchemy Session/Connection "
        f"using the psycopg driver, not {type(obj).__name__}"
    )


def _from_dbapi(raw: Any, obj: Any) -> Any:
    driver = getattr(raw, "driver_connection", raw)
    if isinstance(driver, (psycopg.Connection, psycopg.AsyncConnection)):
        return driver
    raise _not_supported(obj)


def sync_connection(obj: Any) -> psycopg.Connection[Any]:
    """The psycopg ``Connection`` to run on, joining ``obj``'s transaction."""
    if isinstance(obj, psycopg.Connection):
        return obj
    if isinstance(obj, psycopg.AsyncConnection):
        raise TypeError("an async connection needs enqueue_async(), not enqueue()")
    from sqlalchemy.engine import Connection as SAConnection
    from sqlalchemy.orm import Session

    if isinstance(obj, Session):
        obj_conn = obj.connection()
        conn = _from_dbapi(obj_conn.connection.driver_connection, obj)
    elif isinstance(obj, SAConnection):
        if not obj.in_transaction():
            # Make SQLAlchemy own the transaction our statement runs in, so the
            # caller's commit()/rollback() applies to it.
            obj.begin()
        conn = _from_dbapi(obj.connection.driver_connection, obj)
    else:
        if type(obj).__module__.startswith("sqlalchemy.ext.asyncio"):
            raise TypeError("an async session needs enqueue_async(), not enqueue()")
        raise _not_supported(obj)
    if not isinstance(conn, psycopg.Connection):
        raise _not_supported(obj)
    return conn


async def async_connection(obj: Any) -> psycopg.AsyncConnection[Any]:
    """The psycopg ``AsyncConnection`` to run on, joining ``obj``'s transaction."""
    if isinstance(obj, psycopg.AsyncConnection):
        return obj
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

    if isinstance(obj, AsyncSession):
        obj = await obj.connection()
    if isinstance(obj, AsyncConnection):
        if not obj.in_transaction():
            await obj.begin()
        raw = await obj.get_raw_connection()
        conn = _from_dbapi(raw, obj)
        if isinstance(conn, psycopg.AsyncConnection):
            return conn
    raise _not_supported(obj)
