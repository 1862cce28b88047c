"""Rendering: the Jinja2 environment, the page frame, and the dashboard's state.

``Dashboard`` is what every handler reaches through ``request.app.state``: the
pgqueue ``App``, whether actions are allowed, and the templates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import jinja2
import psycopg
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from pgqueue import App
from pgqueue._db import Operation, Statement
from pgqueue._sql import query
from pgqueue.web import _data
from pgqueue.web._security import CSRF_FIELD, csrf_token, set_csrf_cookie

T = TypeVar("T")

NAV = (("/", "Overview"), ("/jobs", "Jobs"), ("/flows", "Flows"), ("/queues", "Queues"),
       ("/schedules", "Schedules"), ("/workers", "Workers"), ("/dead", "Dead letters"))  # fmt: skip


READ_TIMEOUT = "10s"  # a page's reads; a slower one (free text on a huge table) is refused


def _bounded(op: Operation[T]) -> Operation[T]:
    # The dashboard's statements are many small capped subqueries whose summed
    # cost estimate passes jit_above_cost: compiling them (~0.4 s) would take
    # far longer than running them (a few ms). SET LOCAL ends with the transaction.
    yield Statement("SET LOCAL jit = off")
    yield Statement(f"SET LOCAL statement_timeout = '{READ_TIMEOUT}'")
    return (yield from op)


def sql_of(*names: str) -> list[tuple[str, str]]:
    """The named queries behind a page, for its "SQL" disclosure."""
    return [(name, query(name)) for name in names]


def _when(value: datetime | None) -> str:
    return value.isoformat(sep=" ", timespec="seconds") if value is not None else "-"


def _at(value: datetime | None) -> Markup:
    """A time to read in a page: a ``<time>`` element that does not wrap."""
    if value is None:
        return Markup("-")
    return Markup('<time datetime="{}">{}</time>').format(value.isoformat(), _when(value))


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pgqueue.web", "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["at"] = _at
    env.filters["age"] = _data._age
    env.filters["json"] = _pretty_json
    return env


def _pretty_json(value: Any) -> str:
    import json

    return json.dumps(value, indent=2, sort_keys=True, default=str)


@dataclass
class Dashboard:
    app: App
    read_only: bool
    env: jinja2.Environment

    @classmethod
    def create(cls, app: App, read_only: bool) -> Dashboard:
        return cls(app=app, read_only=read_only, env=_environment())

    @classmethod
    def of(cls, request: Request) -> Dashboard:
        dash: Dashboard = request.app.state.dashboard
        return dash

    async def run(self, op: Operation[T]) -> T:
        """Run a read in one transaction (one snapshot for the page), bounded in time."""
        return await self.app.database.run_async(_bounded(op), transaction=True)

    def render(self, request: Request, template: str, status: int = 200,
               **context: Any) -> Response:  # fmt: skip
        base = request.scope.get("root_path", "").rstrip("/")
        here = request.url.path[len(base) :] or "/"
        message = request.query_params.get("msg")
        html = self.env.get_template(template).render(
            base=base, here=here, nav=NAV, read_only=self.read_only, message=message,
            csrf_field=CSRF_FIELD, csrf=csrf_token(request), **context,
        )  # fmt: skip
        response = HTMLResponse(html, status)
        set_csrf_cookie(request, response)
        # Pages show live state: never from a cache; never framed by another site.
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "frame-ancestors 'none'; form-action 'self'"
        )
        return response

    def page(self, request: Request, template: str, title: str, data: dict[str, Any],
             sql: list[tuple[str, str]], **context: Any) -> Response:  # fmt: skip
        return self.render(request, template, title=title, sql=sql, **data, **context)

    @staticmethod
    async def on_database_error(request: Request, exc: Exception) -> Response:
        """A page whose query timed out, or a database that is away: say so (503)."""
        dash = Dashboard.of(request)
        if isinstance(exc, psycopg.errors.QueryCanceled):
            message = (f"the query took longer than {READ_TIMEOUT} and was cancelled: "
                       "narrow the filter (queue, status, age)")  # fmt: skip
        else:
            message = str(exc)
        return dash.error(request, 503, message)

    def error(self, request: Request, status: int, message: str) -> Response:
        return self.render(request, "error.html", status, title=f"Error {status}",
                           error=message, sql=[])  # fmt: skip
