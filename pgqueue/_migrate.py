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
import sqlalchemy.exc
from alembic import command
from alembic.config import Config
from alembic.util import CommandError
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import Connection

from pgqueue._config import describe, unavailable
from pgqueue._errors import MigrationError, first_line
from pgqueue._keys import MIGRATE_LOCK

VERSION_TABLE = "pgqueue_alembic_version"
CONNECT_TIMEOUT = 5.0  # seconds; a connect_timeout in the DSN wins


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


def _connect(dsn: str, **kwargs: Any) -> psycopg.Connection[Any]:
    """A connection that gives up after a timeout: without one, a server that
    accepts and never answers would hang ``pgqueue migrate`` for good."""
    if "connect_timeout" not in conninfo_to_dict(dsn):
        kwargs["connect_timeout"] = max(1, round(CONNECT_TIMEOUT))
    return psycopg.connect(dsn, **kwargs)


def _engine(dsn: str) -> Any:
    return create_engine(
        "postgresql+psycopg://",
        creator=lambda: _connect(dsn),
        poolclass=pool.NullPool,
    )


def migrate_dsn(dsn: str, revision: str = "head", *, down: bool = False) -> None:
    """Upgrade (or downgrade) the database at ``dsn``; idempotent.

    Raises ``DatabaseUnavailable`` when PostgreSQL cannot be reached and
    ``MigrationError`` when the schema cannot be moved to ``revision``.
    """
    try:
        _migrate(dsn, revision, down)
    except sqlalchemy.exc.DBAPIError as exc:
        raise _database_error(dsn, exc.orig) from None
    except psycopg.Error as exc:
        raise _database_error(dsn, exc) from None
    except CommandError as exc:
        raise MigrationError(f"cannot migrate {describe(dsn)}: {first_line(exc)}") from None


def _migrate(dsn: str, revision: str, down: bool) -> None:
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


def _database_error(dsn: str, exc: BaseException | None) -> Exception:
    if exc is None or isinstance(exc, psycopg.OperationalError):
        return unavailable(dsn, exc or ConnectionError("connection failed"))
    if isinstance(exc, psycopg.errors.DuplicateTable | psycopg.errors.DuplicateObject):
        # The tables are there but pgqueue's version table is not (dropped, or the
        # schema was made by hand): Alembic started again from the first revision.
        return MigrationError(
            f"cannot migrate {describe(dsn)}: the pgqueue schema exists but its version"
            f" table public.{VERSION_TABLE} is missing or empty ({first_line(exc)})"
        )
    return MigrationError(f"cannot migrate {describe(dsn)}: {first_line(exc)}")


def current_revision(dsn: str) -> str | None:
    with _connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL", (f"public.{VERSION_TABLE}",)
        ).fetchone()
        if not row or not row[0]:
            return None
        ver = conn.execute(f"SELECT version_num FROM public.{VERSION_TABLE}").fetchone()
        return ver[0] if ver else None
