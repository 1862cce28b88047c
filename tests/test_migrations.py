"""pgqueue's Alembic revisions: the schema they build, and the two ways to run them."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine, pool

from pgqueue._migrate import VERSION_TABLE, current_revision, migrate_dsn, upgrade

JOBS_COLUMNS = {
    "id": "bigint",
    "queue": "text",
    "task": "text",
    "args": "jsonb",
    "kwargs": "jsonb",
    "priority": "smallint",
    "status": "text",
    "run_at": "timestamp with time zone",
    "attempts": "integer",
    "max_attempts": "integer",
    "leased_until": "timestamp with time zone",
    "worker_id": "text",
    "unique_key": "text",
    "created_at": "timestamp with time zone",
    "started_at": "timestamp with time zone",
    "finished_at": "timestamp with time zone",
    "last_error": "text",
    "result": "jsonb",
}


def query(dsn: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(statement, params).fetchall()


def execute(dsn: str, statement: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(statement)


def relation(dsn: str, name: str) -> str | None:
    """The relkind of ``name`` ('r' table, 'v' view), or None when it does not exist."""
    rows = query(dsn, "SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", (name,))
    return str(rows[0][0]) if rows else None


def schema_exists(dsn: str) -> bool:
    return bool(query(dsn, "SELECT 1 FROM pg_namespace WHERE nspname = 'pgqueue'"))


def index(dsn: str, name: str) -> tuple[bool, str | None]:
    """``(unique, predicate)`` of a pgqueue index."""
    rows = query(
        dsn,
        "SELECT i.indisunique, pg_get_expr(i.indpred, i.indrelid) FROM pg_index i"
        " WHERE i.indexrelid = to_regclass(%s)",
        (f"pgqueue.{name}",),
    )
    assert rows, f"index {name} is missing"
    return rows[0][0], rows[0][1]


def test_upgrade_builds_the_jobs_table(fresh_db_dsn: str) -> None:
    migrate_dsn(fresh_db_dsn)

    columns = dict(
        query(
            fresh_db_dsn,
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = 'pgqueue' AND table_name = 'jobs'",
        )
    )
    assert {name: columns.get(name) for name in JOBS_COLUMNS} == JOBS_COLUMNS


def test_upgrade_builds_the_claim_and_unique_indexes(fresh_db_dsn: str) -> None:
    migrate_dsn(fresh_db_dsn)

    unique, predicate = index(fresh_db_dsn, "jobs_claim_idx")
    assert not unique
    assert predicate is not None and "status" in predicate
    assert "'queued'" in predicate and "'failed'" in predicate

    unique, predicate = index(fresh_db_dsn, "jobs_unique_key_idx")
    assert unique
    assert predicate is not None and "unique_key IS NOT NULL" in predicate


def test_upgrade_builds_schedules_and_operator_views(fresh_db_dsn: str) -> None:
    migrate_dsn(fresh_db_dsn)

    assert relation(fresh_db_dsn, "pgqueue.schedules") == "r"
    assert relation(fresh_db_dsn, "pgqueue.queue_stats") == "v"
    assert query(fresh_db_dsn, "SELECT * FROM pgqueue.queue_stats") == []


def test_migrate_twice_is_idempotent(fresh_db_dsn: str) -> None:
    migrate_dsn(fresh_db_dsn)
    head = current_revision(fresh_db_dsn)
    execute(fresh_db_dsn, "INSERT INTO pgqueue.jobs (task) VALUES ('keep.me')")

    migrate_dsn(fresh_db_dsn)

    assert head is not None
    assert current_revision(fresh_db_dsn) == head
    assert query(fresh_db_dsn, "SELECT task FROM pgqueue.jobs") == [("keep.me",)]


def test_concurrent_migrations_are_serialised(fresh_db_dsn: str) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            migrate_dsn(fresh_db_dsn)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert relation(fresh_db_dsn, "pgqueue.jobs") == "r"


def test_downgrade_to_base_then_upgrade_again(fresh_db_dsn: str) -> None:
    migrate_dsn(fresh_db_dsn)

    migrate_dsn(fresh_db_dsn, "base", down=True)
    assert not schema_exists(fresh_db_dsn)
    assert current_revision(fresh_db_dsn) is None

    migrate_dsn(fresh_db_dsn)
    assert relation(fresh_db_dsn, "pgqueue.jobs") == "r"
    assert current_revision(fresh_db_dsn) is not None


def test_own_version_table_never_the_hosts(fresh_db_dsn: str) -> None:
    migrate_dsn(fresh_db_dsn)

    assert relation(fresh_db_dsn, f"public.{VERSION_TABLE}") == "r"
    assert relation(fresh_db_dsn, "public.alembic_version") is None


def test_upgrade_from_a_host_application_connection(fresh_db_dsn: str) -> None:
    """The documented path for an application running pgqueue from its own Alembic."""
    execute(
        fresh_db_dsn,
        "CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);"
        " INSERT INTO alembic_version VALUES ('host0001')",
    )
    engine = create_engine(
        "postgresql+psycopg://",
        creator=lambda: psycopg.connect(fresh_db_dsn),
        poolclass=pool.NullPool,
    )
    try:
        with engine.connect() as connection:
            upgrade(connection)
            connection.commit()
    finally:
        engine.dispose()

    assert relation(fresh_db_dsn, "pgqueue.jobs") == "r"
    assert current_revision(fresh_db_dsn) is not None
    assert query(fresh_db_dsn, "SELECT version_num FROM alembic_version") == [("host0001",)]


def test_current_revision_is_none_before_any_migration(fresh_db_dsn: str) -> None:
    assert current_revision(fresh_db_dsn) is None
    migrate_dsn(fresh_db_dsn)
    assert current_revision(fresh_db_dsn) is not None


def test_the_lease_index_comes_with_0007_and_goes_with_its_downgrade(fresh_db_dsn: str) -> None:
    migrate_dsn(fresh_db_dsn)
    unique, predicate = index(fresh_db_dsn, "jobs_lease_idx")
    assert not unique
    assert predicate == "((status = 'running'::text) AND (leased_until IS NOT NULL))"
    definition = query(fresh_db_dsn, "SELECT pg_get_indexdef('pgqueue.jobs_lease_idx'::regclass)")
    definition = definition[0][0]
    assert definition.endswith(f"(leased_until) WHERE {predicate}")

    migrate_dsn(fresh_db_dsn, "0006", down=True)
    assert relation(fresh_db_dsn, "pgqueue.jobs_lease_idx") is None
    assert current_revision(fresh_db_dsn) == "0006"

    migrate_dsn(fresh_db_dsn)
    assert relation(fresh_db_dsn, "pgqueue.jobs_lease_idx") == "i"


def test_0008_trades_the_running_index_for_a_lease_rule(fresh_db_dsn: str) -> None:
    migrate_dsn(fresh_db_dsn)
    assert relation(fresh_db_dsn, "pgqueue.jobs_running_idx") is None
    with psycopg.connect(fresh_db_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO pgqueue.jobs (queue, task) VALUES ('q', 't')")
        with pytest.raises(psycopg.errors.CheckViolation, match="jobs_running_holds_lease"):
            conn.execute("UPDATE pgqueue.jobs SET status = 'running'")
        conn.execute("UPDATE pgqueue.jobs SET status = 'running', leased_until = now()")

    migrate_dsn(fresh_db_dsn, "0007", down=True)
    assert relation(fresh_db_dsn, "pgqueue.jobs_running_idx") == "i"
    with psycopg.connect(fresh_db_dsn, autocommit=True) as conn:
        conn.execute("UPDATE pgqueue.jobs SET leased_until = NULL")  # allowed again

    migrate_dsn(fresh_db_dsn)  # the running job without a lease gets a lapsed one
    assert relation(fresh_db_dsn, "pgqueue.jobs_running_idx") is None
    lapsed = query(fresh_db_dsn, "SELECT leased_until <= now() FROM pgqueue.jobs")
    assert lapsed == [(True,)]
