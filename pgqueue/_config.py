"""Configuration: where the database is, and small value objects with defaults."""

from __future__ import annotations

import os

import psycopg
from psycopg.conninfo import conninfo_to_dict

from pgqueue._errors import ConfigurationError, DatabaseUnavailable

DSN_ENV_VARS = ("PGQUEUE_DSN", "DATABASE_URL")


def resolve_dsn(dsn: str | None = None) -> str | None:
    """The DSN to use: the argument, else $PGQUEUE_DSN, else $DATABASE_URL.

    None means nothing is configured (the embedded default applies). A
    SQLAlchemy URL (``postgresql+psycopg://``) is accepted and normalised.
    """
    for candidate in (dsn, *(os.environ.get(v) for v in DSN_ENV_VARS)):
        if candidate:
            return normalise_dsn(candidate)
    return None


def normalise_dsn(dsn: str) -> str:
    scheme, sep, rest = dsn.partition("://")
    if sep and "+" in scheme:
        base = scheme.split("+", 1)[0]
        if base not in ("postgresql", "postgres"):
            raise ConfigurationError(f"not a PostgreSQL URL: {scheme}://…")
        return f"postgresql://{rest}"
    try:
        conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise ConfigurationError(f"invalid DSN: {exc}") from None
    return dsn


def describe(dsn: str) -> str:
    """``host:port/dbname`` for messages, without credentials."""
    try:
        info = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<invalid DSN>"
    host = info.get("host") or os.environ.get("PGHOST") or "localhost (socket)"
    port = info.get("port") or os.environ.get("PGPORT") or "5432"
    db = info.get("dbname") or ""
    return f"{host}:{port}/{db}"


def unavailable(dsn: str, exc: BaseException) -> DatabaseUnavailable:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return DatabaseUnavailable(f"cannot connect to PostgreSQL at {describe(dsn)}: {reason}")
