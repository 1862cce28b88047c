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

import shutil
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from pgqueue._embedded import LocalCluster
from pgqueue._migrate import migrate_dsn
from pgqueue._testdb import (  # shared with the pytest plugin (pgqueue.pytest_plugin)
    create_database,
    drop_database,
    migrated_database,
    server,
    throwaway_dir,
    truncate,
    with_dbname,  # noqa: F401  (tests import it from here)
)


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    with server() as dsn:
        yield dsn


@pytest.fixture(scope="session")
def db_dsn(pg_dsn: str) -> Iterator[str]:
    with migrated_database(pg_dsn) as dsn:
        yield dsn


@pytest.fixture
def clean_db(db_dsn: str) -> str:
    """The session database with every ``pgqueue`` table emptied (identities reset)."""
    truncate(db_dsn)
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
    root = throwaway_dir("pgqueue-test-cluster-")
    local = LocalCluster(root / "data", fast=True)
    try:
        migrate_dsn(local.start())
        yield local
    finally:
        local.destroy()
        shutil.rmtree(root, ignore_errors=True)
