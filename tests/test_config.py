"""Configuration: DSN resolution, pools, unreachable servers."""

from __future__ import annotations

import socket
import time

import pytest

import pgqueue
from pgqueue._config import describe, resolve_dsn


def test_dsn_resolution_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGQUEUE_DSN", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert resolve_dsn(None) is None
    monkeypatch.setenv("DATABASE_URL", "postgresql://db/app")
    assert resolve_dsn(None) == "postgresql://db/app"
    monkeypatch.setenv("PGQUEUE_DSN", "postgresql://queue/jobs")
    assert resolve_dsn(None) == "postgresql://queue/jobs"
    assert resolve_dsn("host=arg dbname=x") == "host=arg dbname=x"
    # SQLAlchemy URLs are accepted.
    assert resolve_dsn("postgresql+psycopg://u@h/d") == "postgresql://u@h/d"
    with pytest.raises(pgqueue.ConfigurationError):
        resolve_dsn("mysql+pymysql://u@h/d")
    with pytest.raises(pgqueue.ConfigurationError):
        resolve_dsn("host=x bogus_key=1")


def test_app_uses_the_environment(monkeypatch: pytest.MonkeyPatch, clean_db: str) -> None:
    monkeypatch.setenv("PGQUEUE_DSN", clean_db)
    with pgqueue.App() as app:
        assert app.dsn == clean_db
        job = app.task_ref("x.y").enqueue()
        assert app.get_job(job.id).task == "x.y"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_database_is_one_clear_error() -> None:
    port = free_port()
    app = pgqueue.App(f"postgresql://nobody@127.0.0.1:{port}/nowhere", connect_timeout=1)
    started = time.monotonic()
    with pytest.raises(pgqueue.DatabaseUnavailable, match=f"127.0.0.1:{port}"):
        app.task_ref("x").enqueue()
    assert time.monotonic() - started < 15
    assert describe("postgresql://u:secret@h:6543/d") == "h:6543/d"


def test_pool_is_closed_cleanly(clean_db: str) -> None:
    app = pgqueue.App(clean_db, min_connections=2, max_connections=3)
    app.task_ref("x").enqueue()
    pool = app.pool()
    assert not pool.closed
    app.close()
    assert pool.closed
    app.close()  # idempotent


def test_bad_app_settings() -> None:
    with pytest.raises(pgqueue.ConfigurationError):
        pgqueue.App("postgresql://h/d", min_connections=5, max_connections=2)
    with pytest.raises(pgqueue.ConfigurationError):
        pgqueue.App("postgresql://h/d", lease=0)
    app = pgqueue.App("postgresql://h/d")

    @app.task(name="dup")
    def one() -> None: ...

    with pytest.raises(pgqueue.ConfigurationError, match="twice"):

        @app.task(name="dup")
        def two() -> None: ...
