"""Shared CLI plumbing: the typer app, ``--dsn``, error handling, app loading."""

from __future__ import annotations

import json
import logging
import re
from typing import Annotated, Any

import psycopg
import typer

from pgqueue._app import App
from pgqueue._errors import ConfigurationError, PgQueueError, first_line

cli = typer.Typer(
    name="pgqueue",
    help="pgqueue: a PostgreSQL-native job queue.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DsnOption = Annotated[
    str | None,
    typer.Option("--dsn", help="PostgreSQL DSN (else $PGQUEUE_DSN, $DATABASE_URL, embedded)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


NO_SCHEMA = "no pgqueue schema in this database; run `pgqueue migrate`"


class UserError(Exception):
    """A mistake of the user's: printed as one line, exit code 2."""


def fail(message: str) -> UserError:
    return UserError(message)


def load_app(spec: str, dsn: str | None = None) -> App:
    """Import ``module:attribute`` (an App); ``--dsn`` overrides its DSN."""
    try:
        return App.from_spec(spec, dsn=dsn)
    except ConfigurationError as exc:
        raise fail(str(exc)) from None


def plain_app(dsn: str | None) -> App:
    return App(dsn)


def require_schema(app: App) -> None:
    """A one-line error (exit 1) now, for commands that would otherwise retry forever."""
    from pgqueue._migrate import current_revision

    if current_revision(app.dsn) is None:
        raise PgQueueError(NO_SCHEMA)


def parse_json(text: str, what: str, kind: type) -> Any:
    """``text`` as JSON of type ``kind`` (list or dict), else a one-line user error."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(f"{what} is not valid JSON: {exc}") from None
    except RecursionError:
        raise fail(f"{what} is nested too deeply") from None
    if not isinstance(value, kind):
        raise fail(f"{what} must be a JSON {'array' if kind is list else 'object'}")
    return value


# C0 and C1 control characters (ESC starts CSI and OSC sequences), DEL, and the
# bidirectional overrides that reorder what a terminal shows.
_UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def safe(text: str) -> str:
    """``text`` with every control character shown as an escape (``\\x1b``), newlines kept.

    Task names, queues, errors and results come from the database: printed as
    they are, an escape sequence in one could retitle, recolour or rewrite the
    operator's terminal.
    """
    return _UNSAFE.sub(lambda m: ascii(m.group())[1:-1], text)


def echo(text: str, *, err: bool = False) -> None:
    """``typer.echo`` for lines that carry stored data: see ``safe``."""
    typer.echo(safe(text), err=err)


def emit_json(value: Any) -> None:
    typer.echo(json.dumps(value, default=str, indent=2))


def run(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors become one line on stderr and a non-zero exit."""
    # The pool logs every failed connection attempt; the CLI reports one line instead.
    logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)
    try:
        # Without standalone mode, click returns the code of a typer.Exit.
        code = cli(args=argv, standalone_mode=False)
        if isinstance(code, int):
            return code
    except UserError as exc:
        echo(f"error: {exc}", err=True)
        return 2
    except PgQueueError as exc:
        echo(f"error: {exc}", err=True)
        return 1
    except psycopg.OperationalError as exc:
        echo(f"error: database unavailable: {first_line(exc)}", err=True)
        return 1
    except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
        typer.echo(f"error: {NO_SCHEMA}", err=True)
        return 1
    except psycopg.errors.InsufficientPrivilege as exc:
        echo(
            f"error: {first_line(exc)}: the database role lacks a privilege for this command"
            " (see README, 'Least privilege: database roles')",
            err=True,
        )
        return 1
    except psycopg.Error as exc:
        echo(f"error: database error: {first_line(exc)}", err=True)
        return 1
    except (ValueError, TypeError) as exc:
        echo(f"error: {exc}", err=True)
        return 2
    except KeyboardInterrupt:
        return 130
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        return 1
    except Exception as exc:
        # Usage errors of the click layer (typer may vendor it): one line, no traceback.
        show = getattr(exc, "show", None)
        if callable(show) and isinstance(getattr(exc, "exit_code", None), int):
            message = getattr(exc, "format_message", None)
            ctx = getattr(exc, "ctx", None)
            if callable(message) and ctx is not None:
                text = str(message()).strip()
                if text:  # empty: the help was shown (a group called without a command)
                    echo(f"error: {text} (see '{ctx.command_path} --help')", err=True)
            else:
                show()
            return int(exc.exit_code)  # type: ignore[attr-defined]
        raise
    return 0
