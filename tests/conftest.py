"""Fixtures: a real PostgreSQL, one migrated database per test session.

The server (``pg_dsn``) is the first of:

1. ``PGQUEUE_TEST_DSN``, any server you name (point it at a maintenance
   database such as ``postgres``: the tests create and drop databases there);
2. ``postgresql://postgres@127.0.0.1:5432/postgres``, unless
   ``PGQUEUE_TEST_NO_LOCAL=1``;
3. a throwaway :class:`~pgqueue._embedded.LocalCluster` (fsync off), started
   for the session and removed after it.

Fixtures:

``pg_dsn``       (session) the server's maintenance DSN; create nothing in it.
``db_dsn``       (session) one database migrated to head, shared by the session.
``clean_db``     (function) ``db_dsn`` with every ``pgqueue`` table truncated.
``conn``         (function) a psycopg connection (autocommit off) to ``clean_db``.
``fresh_db_dsn`` (function) a brand-new EMPTY database, no migrations.
``cluster``      (session) a LocalCluster of the tests' own, migrated, that a test
                 may stop, crash and restart; other tests never use it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pgqueue._embedded import LocalCluster
from pgqueue._migrate import migrate_dsn

LOCAL_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_PREFIX = "pgqueue_test_"


def with_dbname(dsn: str, dbname: str) -> str:
    """``dsn`` pointing at another database, in the form it came in."""
    if dsn.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(dsn)
        return urlunsplit(parts._replace(path=f"/{dbname}"))
    return make_conninfo(dsn, dbname=dbname)


def _throwaway_dir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)  # under root, the postgres user must reach the data dir
    return path


def _reachable(dsn: str) -> bool:
    try:
        psycopg.connect(dsn, connect_timeout=2).close()
    except psycopg.OperationalError:
        return False
    return True


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    named = os.environ.get("PGQUEUE_TEST_DSN")
    if named:
        yield named
        return
    if os.environ.get("PGQUEUE_TEST_NO_LOCAL") != "1" and _reachable(LOCAL_DSN):
        yield LOCAL_DSN
        return
    root = _throwaway_dir("pgqueue-test-server-")
    server = LocalCluster(root / "data", fast=True)
    try:
        yield server.start()
    finally:
        server.destroy()
        shutil.rmtree(root, ignore_errors=True)


def _admin(pg_dsn: str) -> psycopg.Connection[Any]:
    return psycopg.connect(pg_dsn, autocommit=True, connect_timeout=5)


def create_database(pg_dsn: str) -> tuple[str, str]:
    """A new empty database; returns ``(name, dsn)``."""
    name = f"{DB_PREFIX}{os.getpid()}_{secrets.token_hex(4)}"
    with _admin(pg_dsn) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name, with_dbname(pg_dsn, name)


def drop_database(pg_dsn: str, name: str) -> None:
    with _admin(pg_dsn) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _drop_orphans(pg_dsn: str) -> None:
    """Drop test databases left behind by killed sessions (local servers only: pids)."""
    host = conninfo_to_dict(pg_dsn).get("host") or ""
    if not (host in ("", "localhost", "127.0.0.1", "::1") or str(host).startswith("/")):
        return
    with _admin(pg_dsn) as admin:
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


@pytest.fixture(scope="session")
def db_dsn(pg_dsn: str) -> Iterator[str]:
    _drop_orphans(pg_dsn)
    name, dsn = create_database(pg_dsn)
    try:
        migrate_dsn(dsn)
        yield dsn
    finally:
        drop_database(pg_dsn, name)


@pytest.fixture
def clean_db(db_dsn: str) -> str:
    """The session database with every ``pgqueue`` table emptied (identities reset)."""
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '10s'")  # fail, don't hang, on a leaked lock
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'pgqueue' ORDER BY 1"
        )]  # fmt: skip
        if tables:
            names = sql.SQL(", ").join(sql.Identifier("pgqueue", t) for t in tables)
            conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(names))
    return db_dsn


@pytest.fixture
def conn(clean_db: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(clean_db, autocommit=False) as connection:
        yield connection
        if not connection.closed:
            connection.rollback()


@pytest.fixture
def fresh_db_dsn(pg_dsn: str) -> Iterator[str]:
    name, dsn = create_database(pg_dsn)
    try:
        yield dsn
    finally:
        drop_database(pg_dsn, name)


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    """A server this session owns: stop it, crash it, restart it (same port)."""
    root = _throwaway_dir("pgqueue-test-cluster-")
    local = LocalCluster(root / "data", fast=True)
    try:
        migrate_dsn(local.start())
        yield local
    finally:
        local.destroy()
        shutil.rmtree(root, ignore_errors=True)
