"""The actions (POST): retry, cancel, cancel a flow, replay, purge, queue controls, schedules.

Every action is a POST carrying this browser's CSRF token, refused in
read-only mode, and done through the public ``App`` API (its ``_async``
methods). It answers with a redirect (303) back to the page, with a message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from pgqueue import App, PgQueueError
from pgqueue.web._pages import dead_filters
from pgqueue.web._render import Dashboard
from pgqueue.web._security import csrf_refusal

Form = dict[str, list[str]]
MAX_FORM = 1 << 20  # bytes: a form of ids, never an upload


async def _form(request: Request) -> Form:
    body = await request.body()
    if len(body) > MAX_FORM:
        raise ValueError("form too large")
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)


def _field(form: Form, name: str) -> str:
    return (form.get(name) or [""])[0].strip()


def _back(request: Request, form: Form, message: str, default: str) -> Response:
    """Redirect to the form's ``next`` (a path of this dashboard only), with a message."""
    base = request.scope.get("root_path", "").rstrip("/")
    target = _field(form, "next") or default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        target = default
        parts = urlsplit(target)
    params = [(k, v) for k, v in parse_qs(parts.query).items() if k != "msg"]
    flat = [(k, item) for k, values in params for item in values]
    query = urlencode([*flat, ("msg", message)])
    return RedirectResponse(f"{base}{parts.path}?{query}", status_code=303)


def _ids(form: Form) -> list[int]:
    try:
        ids = [int(v) for v in form.get("ids", []) if v.strip()]
    except ValueError:
        raise ValueError("job ids are integers") from None
    if not ids:
        raise ValueError("no job selected")
    return ids


def _optional_number(form: Form, name: str, kind: type) -> Any:
    text = _field(form, name)
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"{name}: not a number: {text!r}") from None


async def jobs_action(app: App, form: Form) -> str:
    action = _field(form, "action")
    ids = _ids(form)
    if action == "retry":
        done = await app.retry_jobs_async(ids)
        return f"retried {len(done)} of {len(ids)} job(s)"
    if action == "cancel":
        out = await app.cancel_jobs_async(ids)
        return (f"cancelled {len(out['cancelled'])} job(s), asked workers to stop "
                f"{len(out['requested'])} running job(s)")  # fmt: skip
    raise ValueError(f"unknown job action {action!r}")


QUEUE_LIMITS = {"max_running": int, "rate_limit": int, "rate_period": float, "max_depth": int,
                "retention": float, "dead_retention": float}  # fmt: skip


async def _set_queue(app: App, name: str, form: Form) -> Any:
    settings: dict[str, Any] = {}
    clear: list[str] = []
    for key, kind in QUEUE_LIMITS.items():
        value = _optional_number(form, key, kind)
        if value is None and key != "rate_period":
            clear.append(key)  # an emptied field unsets the limit
        elif value is not None:
            settings[key] = value
    return await app.set_queue_async(name, clear=tuple(clear), **settings)


def _named(kind: str, verbs: dict[str, tuple[str, Callable[..., Awaitable[Any]]]]) -> Any:
    """An action on one named queue or schedule: ``verbs`` maps the form's
    ``action`` to (past tense, coroutine taking the name and the form)."""

    async def act(app: App, form: Form) -> str:
        name = _field(form, "name")
        if not name:
            raise ValueError(f"no {kind} named")
        action = _field(form, "action")
        if action not in verbs:
            raise ValueError(f"unknown {kind} action {action!r}")
        done, call = verbs[action]
        result = await call(app, name, form)
        suffix = f" {result.id}" if kind == "schedule" and action == "run" else ""
        return f"{kind} {name} {done}{suffix}"

    return act


queue_action = _named("queue", {
    "pause": ("paused", lambda app, name, form: app.pause_queue_async(name)),
    "resume": ("resumed", lambda app, name, form: app.resume_queue_async(name)),
    "set": ("updated", _set_queue),
})  # fmt: skip
schedule_action = _named("schedule", {
    "pause": ("paused", lambda app, name, form: app.pause_schedule_async(name)),
    "resume": ("resumed", lambda app, name, form: app.resume_schedule_async(name)),
    "run": ("enqueued job", lambda app, name, form: app.run_schedule_now_async(name)),
})  # fmt: skip


async def dead_action(app: App, form: Form) -> str:
    filters = dead_filters({k: v[0] for k, v in form.items() if v})
    action = _field(form, "action")
    if action == "replay":
        replayed = await app.replay_dead_async(**filters)
        held = f"; skipped (unique key held): {replayed.skipped}" if replayed.skipped else ""
        return f"replayed {replayed} dead job(s){held}"
    if action == "purge":
        if filters["since"] is not None:
            raise ValueError("purge takes queue and task filters, not since")
        n = await app.purge_async(statuses=["dead"], queue=filters["queue"],
                                  task=filters["task"])  # fmt: skip
        return f"purged {n} dead job(s)"
    raise ValueError(f"unknown dead-letter action {action!r}")


async def flow_action(app: App, form: Form) -> str:
    """Cancel every unfinished job of a flow (``FlowHandle.cancel``)."""
    text = _field(form, "flow")
    if not text.isdigit():
        raise ValueError("no flow given")
    if _field(form, "action") != "cancel":
        raise ValueError(f"unknown flow action {_field(form, 'action')!r}")
    flow = await app.get_flow_async(int(text))
    out = await flow.cancel_async()
    return (f"flow {flow.id}: cancelled {len(out['cancelled'])} job(s), asked workers to stop "
            f"{len(out['requested'])} running job(s)")  # fmt: skip


def endpoint(action: Callable[[App, Form], Awaitable[str]], default: str) -> Any:
    """A POST handler for ``action``: checks, runs it, redirects back with its message."""

    async def handle(request: Request) -> Response:
        dash = Dashboard.of(request)
        if dash.read_only:
            return dash.error(request, 403, "this dashboard is read-only")
        try:
            form = await _form(request)
        except ValueError as exc:
            return dash.error(request, 413, str(exc))
        refusal = csrf_refusal(request, form)
        if refusal is not None:
            return dash.error(request, 403, refusal)
        try:
            message = await action(dash.app, form)
        except (ValueError, LookupError, PgQueueError) as exc:
            return _back(request, form, f"error: {exc}", default)
        return _back(request, form, message, default)

    return handle
