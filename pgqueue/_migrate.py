"""Run pgqueue's Alembic revisions, standalone or from a host application.

The revisions live in ``migrations/`` at the repository root and ship inside
the wheel as ``pgqueue/_migrations``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import alembic.context
import alembic.op
import psycopg
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import Connection

VERSION_TABLE = "pgqueue_alembic_version"


def migrations_path() -> Path:
    """Where the revisions are: inside the installed package, else the checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_migrations", here.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError("pgqueue migrations not found (broken install?)")


def _config(connection: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_path()))
    cfg.attributes["connection"] = connection
    return cfg


@contextmanager
def _inside_host_alembic(connection: Connection) -> Iterator[None]:
    """Run pgqueue's revisions without disturbing a host's Alembic run.

    Alembic publishes the running environment as module globals of
    ``alembic.context`` and ``alembic.op``; a nested run replaces them and, on
    exit, deletes them, which breaks the host's ``env.py`` that is still
    running. Their namespaces are restored as they were. A transaction pgqueue
    began is committed here (a host's standard ``env.py`` never commits after
    its own block); one the host holds is left to the host.
    """
    saved = [(vars(module), dict(vars(module))) for module in (alembic.context, alembic.op)]
    ours = not connection.in_transaction()
    try:
        yield
        if ours and connection.in_transaction():
            connection.commit()
    finally:
        for namespace, before in saved:
            namespace.clear()
            namespace.update(before)


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Upgrade pgqueue's schema on a SQLAlchemy connection (also from a host's ``env.py``)."""
    with _inside_host_alembic(connection):
        command.upgrade(_config(connection), revision)


def downgrade(connection: Connection, revision: str = "base") -> None:
    with _inside_host_alembic(connection):
        command.downgrade(_config(connection), revision)


def _engine(dsn: str) -> Any:
    return create_engine(
        "postgresql+psycopg://",
        creator=lambda: psycopg.connect(dsn),
        poolclass=pool.NullPool,
    )


def migrate_dsn(dsn: str, revision: str = "head", *, down: bool = False) -> None:
    """Upgrade (or downgrade) the database at ``dsn``; idempotent."""
    engine = _engine(dsn)
    try:
        with engine.connect() as conn:
            # Serialise concurrent `pgqueue migrate` runs.
            conn.exec_driver_sql("SELECT pg_advisory_lock(7250001)")
            conn.commit()
            try:
                (downgrade if down else upgrade)(conn, revision)
                conn.commit()
            finally:
                conn.exec_driver_sql("SELECT pg_advisory_unlock(7250001)")
                conn.commit()
    finally:
        engine.dispose()


def current_revision(dsn: str) -> str | None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL", (f"public.{VERSION_TABLE}",)
        ).fetchone()
        if not row or not row[0]:
            return None
        ver = conn.execute(f"SELECT version_num FROM public.{VERSION_TABLE}").fetchone()
        return ver[0] if ver else None
