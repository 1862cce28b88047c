"""Enqueue inside the caller's transaction: rollback means no job and no wake-up."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import Session

import pgqueue
from pgqueue import testing
from pgqueue._bulk import COPY_MIN


def sa_url(dsn: str) -> str:
    return dsn.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture
def app(clean_db: str) -> Iterator[pgqueue.App]:
    with pgqueue.App(clean_db) as app:
        yield app


@pytest.fixture
def task(app: pgqueue.App) -> Any:
    @app.task(queue="tx")
    def send_email(user_id: int) -> None:
        return None

    return send_email


def count(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM pgqueue.jobs").fetchone()
        assert row is not None
        return int(row[0])


@contextmanager
def listening(dsn: str) -> Iterator[Callable[[], list[str]]]:
    with psycopg.connect(dsn, autocommit=True) as listener:
        listener.execute("LISTEN pgqueue_jobs")
        yield lambda: [n.payload for n in listener.notifies(timeout=0.3)]


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_psycopg_connection(clean_db: str, app: pgqueue.App, task: Any, outcome: str) -> None:
    with listening(clean_db) as notes, psycopg.connect(clean_db) as conn:
        conn.execute("CREATE TEMP TABLE business (x int)")
        job = task.options(connection=conn).enqueue(42)
        task.enqueue(43, connection=conn)  # the short form joins too
        testing.refute_enqueued(app, task)  # not visible before commit
        getattr(conn, outcome)()
        if outcome == "commit":
            assert [j.args for j in testing.assert_enqueued(app, task, count=2)] == [[42], [43]]
        else:
            testing.refute_enqueued(app, task)
        assert notes() == (["tx"] if outcome == "commit" else [])
    assert job.id > 0


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_sqlalchemy_session(clean_db: str, task: Any, app: pgqueue.App, outcome: str) -> None:
    engine = create_engine(sa_url(clean_db))
    try:
        with listening(clean_db) as notes, Session(engine) as session:
            session.execute(text("SELECT 1"))
            task.options(connection=session).enqueue(1)
            app.enqueue_many([task.job(2), task.job(3)], connection=session)
            app.enqueue_many([task.job(i) for i in range(COPY_MIN)], connection=session)  # COPY
            assert count(clean_db) == 0
            getattr(session, outcome)()
            assert count(clean_db) == (3 + COPY_MIN if outcome == "commit" else 0)
            assert notes() == (["tx"] if outcome == "commit" else [])
    finally:
        engine.dispose()


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_sqlalchemy_connection(clean_db: str, task: Any, app: pgqueue.App, outcome: str) -> None:
    engine = create_engine(sa_url(clean_db))
    try:
        with engine.connect() as conn:
            task.options(connection=conn).enqueue(1)
            app.enqueue_many([task.job(i) for i in range(COPY_MIN)], connection=conn)  # COPY
            getattr(conn, outcome)()
        assert count(clean_db) == (1 + COPY_MIN if outcome == "commit" else 0)
    finally:
        engine.dispose()


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
async def test_psycopg_async_connection(clean_db: str, task: Any, outcome: str) -> None:
    with listening(clean_db) as notes:
        async with await psycopg.AsyncConnection.connect(clean_db) as aconn:
            await task.options(connection=aconn).enqueue_async(1)
            await task.enqueue_async(2, connection=aconn)
            assert count(clean_db) == 0
            await getattr(aconn, outcome)()
        assert count(clean_db) == (2 if outcome == "commit" else 0)
        assert notes() == (["tx"] if outcome == "commit" else [])


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
async def test_sqlalchemy_async_session_and_connection(
    clean_db: str, task: Any, app: pgqueue.App, outcome: str
) -> None:
    from sqlalchemy.ext.asyncio import AsyncSession

    engine = create_async_engine(sa_url(clean_db))
    try:
        async with AsyncSession(engine) as session:
            await task.options(connection=session).enqueue_async(1)
            await app.enqueue_many_async([task.job(2)], connection=session)
            copied = [task.job(i) for i in range(COPY_MIN)]  # the COPY path
            await app.enqueue_many_async(copied, connection=session)
            assert count(clean_db) == 0
            await getattr(session, outcome)()
        async with engine.connect() as conn:
            await task.options(connection=conn).enqueue_async(3)
            await getattr(conn, outcome)()
        assert count(clean_db) == (3 + COPY_MIN if outcome == "commit" else 0)
    finally:
        await engine.dispose()


async def test_wrong_connection_kinds_are_clear_errors(clean_db: str, task: Any) -> None:
    async with await psycopg.AsyncConnection.connect(clean_db) as aconn:
        with pytest.raises(TypeError, match="enqueue_async"):
            task.options(connection=aconn).enqueue(1)
    with pytest.raises(TypeError, match="psycopg connection"):
        task.options(connection=object()).enqueue(1)
    assert count(clean_db) == 0
