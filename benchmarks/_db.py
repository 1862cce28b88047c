"""A fresh, migrated database for one benchmark run."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from pgqueue._migrate import migrate_dsn

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def server_dsn() -> str:
    """$PGQUEUE_BENCH_DSN (a maintenance database), else the local server."""
    return os.environ.get("PGQUEUE_BENCH_DSN", DEFAULT_SERVER)


def _with_db(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


@contextmanager
def fresh_database(prefix: str = "pgqueue_bench", server: str | None = None) -> Iterator[str]:
    """Create a database (on ``server``, else ``server_dsn()``), migrate it, yield its DSN,
    drop it."""
    server = server or server_dsn()
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = _with_db(server, name)
    try:
        migrate_dsn(dsn)
        yield dsn
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
