"""Who may see the dashboard and who may act: the auth hook, CSRF, read-only.

* ``auth``: a callable taking the Starlette ``Request`` and returning (or
  awaiting) a bool; every request, pages and actions alike, goes through it.
  :func:`basic_auth` builds one for HTTP Basic authentication.
* CSRF: a random token in a ``SameSite=Strict`` cookie, repeated in a hidden
  field of every form; a POST whose field does not match the cookie, or whose
  ``Origin`` names another host, is refused (double-submit cookie).
* ``read_only``: every POST is refused with 403 and no action is shown.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import inspect
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

Auth = Callable[[Request], "bool | Awaitable[bool]"]
CSRF_COOKIE = "pgqueue_csrf"
CSRF_FIELD = "csrf"


def basic_auth(username: str, password: str) -> Auth:
    """An ``auth`` hook that accepts only this user name and password (HTTP Basic)."""
    if not username or not password:
        raise ValueError("basic auth needs a non-empty user name and password")
    expected = f"{username}:{password}".encode()

    def check(request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            given = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(given, expected)

    check.basic = True  # type: ignore[attr-defined]  # 401s ask the browser for a password
    return check


def parse_basic_auth(value: str) -> tuple[str, str]:
    """``USER:PASSWORD`` as a pair (a one-line error that never repeats the password)."""
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise ValueError("--basic-auth takes USER:PASSWORD (both non-empty)")
    return user, password


class AuthMiddleware:
    """Refuse (401) every request the ``auth`` hook does not accept."""

    def __init__(self, app: ASGIApp, auth: Auth | None) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.auth is None:
            await self.app(scope, receive, send)
            return
        allowed = self.auth(Request(scope, receive))
        if inspect.isawaitable(allowed):
            allowed = await allowed
        if allowed:
            await self.app(scope, receive, send)
            return
        headers = {}
        if getattr(self.auth, "basic", False):
            headers["WWW-Authenticate"] = 'Basic realm="pgqueue", charset="UTF-8"'
        response = PlainTextResponse("authentication required", 401, headers=headers)
        await response(scope, receive, send)


def csrf_token(request: Request) -> str:
    """This browser's token (from its cookie, else a new one that the page will set)."""
    token = request.cookies.get(CSRF_COOKIE)
    if not token or len(token) < 32:
        token = getattr(request.state, "new_csrf", None) or secrets.token_urlsafe(32)
        request.state.new_csrf = token
    return token


def set_csrf_cookie(request: Request, response: Response) -> None:
    new = getattr(request.state, "new_csrf", None)
    if new:
        path = request.scope.get("root_path", "") or "/"
        response.set_cookie(CSRF_COOKIE, new, httponly=True, samesite="strict", path=path,
                            secure=request.url.scheme == "https")  # fmt: skip


def csrf_refusal(request: Request, form: dict[str, list[str]]) -> str | None:
    """Why this POST is refused (None: it carries this browser's token)."""
    origin = request.headers.get("origin")
    # Behind a reverse proxy the Host may be the proxy's upstream: its
    # X-Forwarded-Host names the site too (a cross-site form cannot set headers).
    hosts = {request.headers.get("host"), request.headers.get("x-forwarded-host")}
    if origin and origin != "null" and urlsplit(origin).netloc not in hosts:
        return "cross-origin request refused"
    cookie = request.cookies.get(CSRF_COOKIE, "")
    given = (form.get(CSRF_FIELD) or [""])[0]
    if not cookie or not given or not hmac.compare_digest(cookie, given):
        return "missing or wrong CSRF token: reload the page and try again"
    return None
