"""Run pgqueue's Alembic revisions, standalone or from a host application.

The revisions live in ``migrations/`` at the repository root and ship inside
the wheel as ``pgqueue/_migrations``.
"""

from __future__ import annotations

import re
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
from pgqueue._sql import query

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
            owner = conn.exec_driver_sql(query("migration_role")).scalar()
            if owner is not None:  # a regrole's text: a quoted identifier
                conn.exec_driver_sql(f"SET ROLE {owner}")
            conn.commit()
            try:
                (downgrade if down else upgrade)(conn, revision)
                conn.commit()
            finally:
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATE_LOCK})")
                conn.commit()
    finally:
        engine.dispose()


ROLE_PREFIX = "pgqueue"
_PREFIX = re.compile(r"[a-z_][a-z0-9_]{0,40}")
_ROLE = re.compile(r"\bpgqueue_(producer|worker|reader|admin)\b")


def role_names(prefix: str = ROLE_PREFIX) -> dict[str, str]:
    """The four group roles ``--grant`` creates: ``{kind: role name}``."""
    _check_prefix(prefix)
    return {kind: f"{prefix}_{kind}" for kind in ("producer", "worker", "reader", "admin")}


def _check_prefix(prefix: str) -> None:
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        raise ValueError(
            f"role prefix {prefix!r}: lower-case letters, digits and '_', at most 41,"
            " not starting with a digit"
        )


def grant_sql(prefix: str = ROLE_PREFIX) -> str:
    """The SQL of ``--grant`` (``pgqueue/sql/roles.sql``), its roles renamed to ``prefix``.

    The prefix is a plain lower-case identifier (checked), so renaming the words
    ``pgqueue_producer`` etc. in the text is safe.
    """
    _check_prefix(prefix)
    return _ROLE.sub(lambda m: f"{prefix}_{m.group(1)}", query("grant_roles"))


def grant_dsn(dsn: str, prefix: str = ROLE_PREFIX) -> None:
    """Create the group roles and grant them their privileges (idempotent).

    Raises ``DatabaseUnavailable`` or ``MigrationError`` (one line).
    """
    text = grant_sql(prefix)
    try:
        with _connect(dsn) as conn:
            # One transaction: no session ever sees the roles half-granted.
            conn.execute(f"SELECT pg_advisory_xact_lock({MIGRATE_LOCK})")
            conn.execute(text)
    except psycopg.Error as exc:
        if isinstance(exc, psycopg.OperationalError):
            raise unavailable(dsn, exc) from None
        hint = ""
        if isinstance(exc, psycopg.errors.InsufficientPrivilege):
            hint = " (run --grant as a superuser, or as the schema's owner with CREATEROLE)"
        raise MigrationError(
            f"cannot grant pgqueue's roles on {describe(dsn)}: {first_line(exc)}{hint}"
        ) from None


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
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return MigrationError(
            f"cannot migrate {describe(dsn)}: {first_line(exc)} (migrations need the"
            " schema's owner: a member of pgqueue_admin after --grant, or a superuser)"
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
