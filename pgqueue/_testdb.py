"""Throwaway PostgreSQL databases for test suites: the server, a database, a clean slate.

Shared by the pytest plugin (``pgqueue.pytest_plugin``) and pgqueue's own
``tests/conftest.py``. The server is the first of: ``$PGQUEUE_TEST_DSN`` (a
maintenance DSN such as ``.../postgres``: databases are created and dropped
there); ``postgresql://postgres@127.0.0.1:5432/postgres`` unless
``PGQUEUE_TEST_NO_LOCAL=1``; a throwaway ``LocalCluster`` (fsync off).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pgqueue._db import Database, DatabaseConfig
from pgqueue._embedded import LocalCluster

LOCAL_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_PREFIX = "pgqueue_test_"


def with_dbname(dsn: str, dbname: str) -> str:
    """``dsn`` pointing at another database, in the form it came in."""
    if dsn.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(dsn)
        return urlunsplit(parts._replace(path=f"/{dbname}"))
    return make_conninfo(dsn, dbname=dbname)


def throwaway_dir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)  # under root, the postgres user must reach the data dir
    return path


def _connect(dsn: str, timeout: float = 5.0) -> psycopg.Connection[Any]:
    """An autocommit connection of its own (through the Database port)."""
    return Database(DatabaseConfig(dsn=dsn, connect_timeout=timeout)).connect()


def reachable(dsn: str) -> bool:
    try:
        _connect(dsn, 2.0).close()
    except psycopg.OperationalError:
        return False
    return True


@contextlib.contextmanager
def server() -> Iterator[str]:
    """The test server's maintenance DSN (a throwaway cluster lives as long as this)."""
    named = os.environ.get("PGQUEUE_TEST_DSN")
    if named:
        yield named
        return
    if os.environ.get("PGQUEUE_TEST_NO_LOCAL") != "1" and reachable(LOCAL_DSN):
        yield LOCAL_DSN
        return
    root = throwaway_dir("pgqueue-test-server-")
    cluster = LocalCluster(root / "data", fast=True)
    try:
        yield cluster.start()
    finally:
        cluster.destroy()
        shutil.rmtree(root, ignore_errors=True)


def create_database(pg_dsn: str) -> tuple[str, str]:
    """A new empty database; returns ``(name, dsn)``."""
    name = f"{DB_PREFIX}{os.getpid()}_{secrets.token_hex(4)}"
    with _connect(pg_dsn) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name, with_dbname(pg_dsn, name)


def drop_database(pg_dsn: str, name: str) -> None:
    with _connect(pg_dsn) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def drop_orphans(pg_dsn: str) -> None:
    """Drop test databases left behind by killed sessions (local servers only: pids)."""
    host = conninfo_to_dict(pg_dsn).get("host") or ""
    if not (host in ("", "localhost", "127.0.0.1", "::1") or str(host).startswith("/")):
        return
    with _connect(pg_dsn) as admin:
        names = [r[0] for r in admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (DB_PREFIX + "%",)
        )]  # fmt: skip
    for name in names:
        pid = name[len(DB_PREFIX) :].split("_")[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            drop_database(pg_dsn, name)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def migrated_database(pg_dsn: str) -> Iterator[str]:
    """A new database migrated to head, dropped afterwards; yields its DSN."""
    from pgqueue._migrate import migrate_dsn

    drop_orphans(pg_dsn)
    name, dsn = create_database(pg_dsn)
    try:
        migrate_dsn(dsn)
        yield dsn
    finally:
        drop_database(pg_dsn, name)


def truncate(dsn: str) -> None:
    """Empty every ``pgqueue`` table (identities reset): a clean slate per test."""
    with _connect(dsn) as conn:
        conn.execute("SET lock_timeout = '10s'")  # fail, don't hang, on a leaked lock
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'pgqueue' ORDER BY 1"
        )]  # fmt: skip
        if tables:
            names = sql.SQL(", ").join(sql.Identifier("pgqueue", t) for t in tables)
            conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(names))
