"""Configuration: where the database is, and small value objects with defaults."""

from __future__ import annotations

import os

import psycopg
from psycopg.conninfo import conninfo_to_dict

from pgqueue._dsn import mask_dsn, scrub
from pgqueue._errors import ConfigurationError, DatabaseUnavailable, first_line

DSN_ENV_VARS = ("PGQUEUE_DSN", "DATABASE_URL")


def resolve_dsn(dsn: str | None = None) -> str | None:
    """The DSN to use: the argument, else $PGQUEUE_DSN, else $DATABASE_URL.

    None means nothing is configured (the embedded default applies). A
    SQLAlchemy URL (``postgresql+psycopg://``) is accepted and normalised.
    """
    sources = (("", dsn), *((f" in ${v}", os.environ.get(v)) for v in DSN_ENV_VARS))
    for source, candidate in sources:
        if candidate:
            return normalise_dsn(candidate, source)
    return None


def normalise_dsn(dsn: str, source: str = "") -> str:
    """``dsn`` checked, SQLAlchemy URLs as plain ones; errors show it masked."""
    if not dsn.strip():
        # libpq reads a blank string as "every default": a local socket, the OS user's
        # name. A value of spaces is a mistake; an empty one means unset.
        raise ConfigurationError(f"invalid DSN{source}: it is blank (unset it, or name a server)")
    scheme, sep, rest = dsn.partition("://")
    plain = dsn
    if sep and "+" in scheme:
        base = scheme.split("+", 1)[0]
        if base not in ("postgresql", "postgres"):
            raise ConfigurationError(f"not a PostgreSQL URL: {scheme}://…")
        plain = f"postgresql://{rest}"
    try:
        info = conninfo_to_dict(plain)
    except psycopg.ProgrammingError as exc:
        reason = scrub(first_line(exc), dsn)
        raise ConfigurationError(f"invalid DSN{source} ({mask_dsn(dsn)}): {reason}") from None
    # libpq would only refuse a bad port at connect time, which a pool retries until
    # its timeout: say so at once. (A list is one port per host: "5432,5433".)
    for port in str(info.get("port") or "").split(","):
        if port and not (port.strip().isdigit() and 0 < int(port) < 65536):
            raise ConfigurationError(
                f"invalid DSN{source} ({mask_dsn(dsn)}): port {port!r} is not a number"
                " between 1 and 65535"
            )
    return plain


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
    reason = scrub(first_line(exc), dsn)
    return DatabaseUnavailable(f"cannot connect to PostgreSQL at {describe(dsn)}: {reason}")
