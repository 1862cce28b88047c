"""Pooled checkouts (``pgqueue/_checkout.py``): what a statement leaves behind is reset
on return, and a lost session is pgqueue's own error, sync and async alike."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.pq import TransactionStatus

import pgqueue
from pgqueue._db import Database, DatabaseConfig


def one_connection(dsn: str) -> Database:
    return Database(DatabaseConfig(dsn=dsn, min_connections=1, max_connections=1))


def test_an_open_or_failed_transaction_is_not_handed_to_the_next_caller(clean_db: str) -> None:
    db = one_connection(clean_db)
    try:
        with db.connection() as conn:
            conn.execute("BEGIN")
            conn.execute("CREATE TEMP TABLE leftover (x int)")
        with db.connection() as conn:
            assert conn.info.transaction_status == TransactionStatus.IDLE
            assert conn.execute("SELECT to_regclass('pg_temp.leftover')").fetchone() == (None,)
        with pytest.raises(psycopg.errors.DivisionByZero), db.connection() as conn:
            conn.execute("SELECT 1 / 0")
        with db.connection() as conn:
            assert conn.execute("SELECT 42").fetchone() == (42,)
    finally:
        db.close()


def test_a_session_lost_inside_a_checkout_is_database_unavailable(clean_db: str) -> None:
    db = one_connection(clean_db)
    try:
        with pytest.raises(pgqueue.DatabaseUnavailable), db.connection() as conn:
            conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        with db.connection() as conn:  # the pool replaced the broken connection
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        db.close()


async def test_the_async_checkout_resets_and_maps_the_same_way(clean_db: str) -> None:
    db = one_connection(clean_db)
    try:
        async with db.connection_async() as conn:
            await conn.execute("BEGIN")
        async with db.connection_async() as conn:
            assert conn.info.transaction_status == TransactionStatus.IDLE
        with pytest.raises(pgqueue.DatabaseUnavailable):
            async with db.connection_async() as conn:
                await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        async with db.connection_async() as conn:
            cur = await conn.execute("SELECT 1")
            assert await cur.fetchone() == (1,)
    finally:
        await db.close_async()
