"""pgqueue's web dashboard (the ``pgqueue[web]`` extra): ``pgqueue web``, or mounted.

    from pgqueue.web import asgi_app, basic_auth
    dashboard = asgi_app(app, auth=basic_auth("ops", "secret"), read_only=False)
    # FastAPI / Starlette: host.mount("/pgqueue", dashboard)

Server-rendered pages (Starlette + Jinja2) with stable URLs, htmx vendored in
the package for live refresh (no CDN: it works offline, and reads without
JavaScript), SVG charts drawn on the server. See README "Dashboard".
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources

import psycopg
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from pgqueue import App, DatabaseUnavailable
from pgqueue.web import _actions, _flows, _pages
from pgqueue.web._render import Dashboard
from pgqueue.web._security import Auth, AuthMiddleware, basic_auth, parse_basic_auth

__all__ = ["Auth", "asgi_app", "basic_auth", "parse_basic_auth"]


def asgi_app(app: App, auth: Auth | None = None, read_only: bool = False) -> Starlette:
    """The dashboard of ``app``'s database, as an ASGI application.

    ``auth(request) -> bool`` (or an awaitable bool) guards every request;
    ``read_only`` refuses every action. Mount it anywhere: links follow the
    mount path.
    """
    static = StaticFiles(directory=str(resources.files("pgqueue.web") / "static"))
    post = _actions.endpoint
    # fmt: off
    routes = [
        Route("/", _pages.overview),
        Route("/jobs", _pages.jobs),
        Route("/jobs/{job_id:int}", _pages.job),
        Route("/flows", _flows.flows),
        Route("/flows/{flow_id:int}", _flows.flow),
        Route("/queues", _pages.queues),
        Route("/schedules", _pages.schedules),
        Route("/workers", _pages.workers),
        Route("/dead", _pages.dead),
        Route("/actions/jobs", post(_actions.jobs_action, "/jobs"), methods=["POST"]),
        Route("/actions/flows", post(_actions.flow_action, "/flows"), methods=["POST"]),
        Route("/actions/queues", post(_actions.queue_action, "/queues"), methods=["POST"]),
        Route("/actions/schedules", post(_actions.schedule_action, "/schedules"),
              methods=["POST"]),
        Route("/actions/dead", post(_actions.dead_action, "/dead"), methods=["POST"]),
        Mount("/static", static, name="static"),
    ]
    # fmt: on

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        # The async pool belongs to this server's event loop.
        await app.database.close_pool_async()

    on_error = Dashboard.on_database_error
    web = Starlette(routes=routes, middleware=[Middleware(AuthMiddleware, auth=auth)],
                    lifespan=lifespan, exception_handlers={
                        psycopg.errors.QueryCanceled: on_error, DatabaseUnavailable: on_error,
                    })  # fmt: skip
    web.state.dashboard = Dashboard.create(app, read_only)
    return web
