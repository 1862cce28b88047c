"""A fresh, migrated database for one benchmark run."""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from pgqueue._migrate import migrate_dsn

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def explain(
    conn: psycopg.Connection[Any], statement: str, params: dict[str, Any],
    options: str = "ANALYZE, BUFFERS, FORMAT JSON", setup: Sequence[str] = (),
) -> list[Any]:
    """The first column of ``EXPLAIN (options) statement``'s rows, run (with the
    ``setup`` statements before it) in a transaction that is rolled back."""
    conn.execute("BEGIN")
    try:
        for step in setup:
            conn.execute(step)
        rows = conn.execute(f"EXPLAIN ({options}) " + statement, params).fetchall()
    finally:
        conn.execute("ROLLBACK")
    return [r[0] for r in rows]


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


def script_args(
    prog: str, doc: str, argv: list[str] | None, *options: tuple[str, type, object]
) -> argparse.Namespace:
    """A small benchmark script's arguments: ``--dsn`` (it becomes the server),
    ``--json``, and its own ``(flag, type, default)`` options."""
    parser = argparse.ArgumentParser(prog=prog, description=doc.split("\n")[0])
    parser.add_argument("--dsn", help="server (maintenance DB) to create the database on")
    for flag, kind, default in options:
        parser.add_argument(flag, type=kind, default=default)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.dsn:
        os.environ["PGQUEUE_BENCH_DSN"] = args.dsn
    return args


def spread(values: Sequence[float]) -> dict[str, int]:
    """Median, min and max, rounded."""
    return {"median": round(statistics.median(values)), "min": round(min(values)),
            "max": round(max(values))}  # fmt: skip
