"""Command: web (the dashboard; needs the ``pgqueue[web]`` extra)."""

from __future__ import annotations

import ipaddress
import os
from typing import Annotated, Any

import typer

from pgqueue.cli._base import DsnOption, cli, fail, load_app, plain_app

AUTH_ENV = "PGQUEUE_WEB_BASIC_AUTH"  # USER:PASSWORD, kept out of the process list


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _web() -> Any:
    try:
        import uvicorn

        import pgqueue.web as web
    except ImportError as exc:
        raise fail(f"the dashboard needs the web extra: pip install 'pgqueue[web]' ({exc})"
                   ) from None  # fmt: skip
    return web, uvicorn


@cli.command()
def web(
    dsn: DsnOption = None,
    host: Annotated[str, typer.Option(help="Address to bind (loopback unless told).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="TCP port.")] = 8080,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Show everything, allow no action.")
    ] = False,
    basic_auth: Annotated[
        str | None,
        typer.Option(
            "--basic-auth",
            metavar="USER:PASSWORD",
            help=f"Require HTTP Basic auth (or set ${AUTH_ENV}).",
        ),
    ] = None,
    app_spec: Annotated[
        str | None,
        typer.Option(
            "--app", metavar="MODULE:APP", help="Use this App (its tasks' defaults for run-now)."
        ),
    ] = None,
) -> None:
    """Serve the web dashboard: queues, jobs, schedules, workers, dead letters."""
    if not 0 < port < 65536:
        raise fail("--port must be between 1 and 65535")
    credentials = basic_auth or os.environ.get(AUTH_ENV)
    web_module, uvicorn = _web()
    auth = None
    if credentials:
        try:
            auth = web_module.basic_auth(*web_module.parse_basic_auth(credentials))
        except ValueError as exc:
            raise fail(str(exc)) from None
    app = load_app(app_spec, dsn) if app_spec else plain_app(dsn)
    app.database.resolve()  # the embedded server says so before the banner, not mid-request
    if not is_loopback(host) and auth is None:
        typer.secho(f"WARNING: the dashboard listens on {host} without authentication: anyone "
                    "who reaches this port can read job data"
                    f"{'' if read_only else ' and retry, cancel or purge jobs'}; "
                    "use --basic-auth or bind 127.0.0.1", err=True, fg="yellow")  # fmt: skip
    mode = "read-only" if read_only else "read-write"
    typer.echo(f"pgqueue dashboard ({mode}) on http://{host}:{port}/ (Ctrl-C stops)", err=True)
    uvicorn.run(web_module.asgi_app(app, auth=auth, read_only=read_only),
                host=host, port=port, log_level="warning")  # fmt: skip
