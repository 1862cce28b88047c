"""Run pgqueue's Alembic revisions, standalone or from a host application.

The revisions live in ``migrations/`` at the repository root and ship inside
the wheel as ``pgqueue/_migrations``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import Connection

from pgqueue._keys import MIGRATE_LOCK

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


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Upgrade pgqueue's schema on a SQLAlchemy connection (host ``env.py``)."""
    command.upgrade(_config(connection), revision)


def downgrade(connection: Connection, revision: str = "base") -> None:
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
            conn.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATE_LOCK})")
            conn.commit()
            try:
                (downgrade if down else upgrade)(conn, revision)
                conn.commit()
            finally:
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATE_LOCK})")
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
