"""The database port: error mapping, pools that survive a restart, the embedded server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest

import pgqueue
from pgqueue._db import Database, DatabaseConfig, Statement, is_connection_error, is_transient
from pgqueue._embedded import LocalCluster, find_server_bin


def test_only_connection_failures_say_cannot_connect(clean_db: str) -> None:
    db = Database(DatabaseConfig(dsn=clean_db))
    try:

        def slow() -> object:
            yield Statement("SET statement_timeout = '10ms'")
            yield Statement("SELECT pg_sleep(1)")

        # QueryCanceled is an OperationalError to psycopg, but the server is right there.
        with pytest.raises(psycopg.errors.QueryCanceled):
            db.run(slow(), transaction=True)  # type: ignore[arg-type]
    finally:
        db.close()
    app = pgqueue.App("postgresql://postgres@127.0.0.1:1/x", connect_timeout=1)
    with pytest.raises(pgqueue.DatabaseUnavailable, match="cannot connect"):
        app.queue_stats()


def test_a_read_only_server_is_reported_as_such(clean_db: str) -> None:
    app = pgqueue.App(clean_db)
    task = app.task_ref("t.any")
    try:
        with psycopg.connect(clean_db) as conn:
            conn.execute("SET TRANSACTION READ ONLY")
            with pytest.raises(pgqueue.DatabaseUnavailable, match="read-only"):
                task.options(connection=conn).enqueue()
    finally:
        app.close()


def test_transient_states_are_classified() -> None:
    read_only = psycopg.errors.ReadOnlySqlTransaction("read only")
    assert is_transient(read_only) and not is_connection_error(read_only)
    assert is_transient(psycopg.OperationalError("connection refused"))
    assert is_connection_error(psycopg.errors.AdminShutdown("terminating"))
    assert not is_transient(psycopg.errors.UniqueViolation("dup"))
    assert not is_transient(ValueError("x"))


def test_operations_validate_before_any_io() -> None:
    # An unreachable server: the argument check must raise first, with no connection tried.
    app = pgqueue.App("postgresql://postgres@127.0.0.1:1/x", connect_timeout=1)
    with pytest.raises(ValueError, match="positive"):
        app.retry_jobs([0])
    with pytest.raises(ValueError, match="at least one filter"):
        app.purge()
    assert app.database._pool is None


async def test_async_twins_share_the_operation(clean_db: str) -> None:
    async with pgqueue.App(clean_db) as app:
        job = await app.task_ref("t.x").enqueue_async()
        assert (await app.cancel_jobs_async([job.id]))["cancelled"] == [job.id]
        assert await app.retry_jobs_async([job.id]) == [job.id]
        stats = await app.queue_stats_async()
        assert [s["queue"] for s in stats] == ["default"]
        assert (await app.pause_queue_async("default")).paused is True
        assert [q.name for q in await app.list_queues_async()] == ["default"]
        assert await app.purge_async(queue="default") == 1


def test_the_pool_replaces_connections_a_restart_killed(cluster: LocalCluster) -> None:
    app = pgqueue.App(cluster.dsn, min_connections=2, max_connections=2)
    try:
        assert isinstance(app.queue_stats(), list)
        cluster.restart("fast")
        # Every pooled connection died with the server; check= replaces them before use.
        for _ in range(3):
            assert isinstance(app.queue_stats(), list)
    finally:
        app.close()


def test_dedicated_connections_and_fork_reset(clean_db: str) -> None:
    db = Database(DatabaseConfig(dsn=clean_db))
    with db.connect() as conn:
        assert conn.autocommit
    db.pool()
    db.after_fork()
    assert db._pool is None  # the parent's pool is forgotten, not closed
    db.close()


@pytest.mark.skipif(find_server_bin("initdb") is None, reason="no initdb")
def test_the_embedded_server_is_announced_and_stopped_at_exit(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import pgqueue
        app = pgqueue.App()
        print(app.task_ref("t.x").enqueue().id)
        app.close()
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("PGQUEUE_DSN", "DATABASE_URL")}
    tmp_path.chmod(0o755)
    cluster = LocalCluster(tmp_path / ".pgqueue" / "data")
    try:
        run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip() == "1"
        assert "no DSN configured, using embedded PostgreSQL" in run.stderr
        assert "stopped the embedded PostgreSQL" in run.stderr
        assert not cluster.is_running()
        # Already running: reused, announced, and left running.
        cluster.start()
        again = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=120)  # fmt: skip
        assert again.returncode == 0, again.stderr
        assert again.stdout.strip() == "2"
        assert "using embedded PostgreSQL" in again.stderr
        assert "stopped" not in again.stderr
        assert cluster.is_running()
    finally:
        cluster.destroy()
        shutil.rmtree(tmp_path / ".pgqueue", ignore_errors=True)
