"""The pages (GET): overview, jobs, one job, queues, schedules, workers, dead letters.

Reads run the operations of ``_data`` on ``app.database`` (async); every page
shows the SQL behind it. Pages are complete HTML: htmx only refreshes parts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import Response

from pgqueue.web import _charts, _data, _flows
from pgqueue.web._render import Dashboard, sql_of


async def overview(request: Request) -> Response:
    dash = Dashboard.of(request)
    data = await dash.run(_data.overview())
    return dash.page(request, "overview.html", "Overview", data,
                     throughput=_charts.throughput_svg(data["minutes"], data["now"]),
                     latency=_charts.latency_svg(data["minutes"], data["now"]),
                     sql=sql_of("web_queue_counts", "web_table_rows", "web_sample",
                                "web_throughput", "web_workers"))  # fmt: skip


async def jobs(request: Request) -> Response:
    dash = Dashboard.of(request)
    try:
        flt = _data.JobFilter.parse(request.query_params)
    except ValueError as exc:
        return dash.error(request, 400, str(exc))
    page = await dash.run(_data.jobs_page(flt))
    names = await dash.run(_data.queue_names())
    first = flt.query_string(before=None)
    sql = sql_of(_data.jobs_query(flt), "web_jobs_top", "web_queue_names")
    return dash.page(request, "jobs.html", "Jobs", page, filter=flt, statuses=_data.STATUSES,
                     queue_names=names, first_page=first,
                     next_page=flt.query_string(before=page["next"]) if page["next"] else None,
                     sql=sql)  # fmt: skip


async def job(request: Request) -> Response:
    dash = Dashboard.of(request)
    job_id = int(request.path_params["job_id"])
    row = await dash.run(_data.job_detail(job_id))
    if row is None:
        return dash.error(request, 404, f"no job with id {job_id}")
    graph = row["graph"]
    svg = None
    if graph is not None:
        base = request.scope.get("root_path", "").rstrip("/")
        svg = _flows.around_svg(graph, base)
    return dash.page(request, "job.html", f"Job {job_id}", {"job": row}, graph_svg=svg,
                     sql=sql_of("web_job", "workflow_steps", "graph_job", "graph_parents",
                                "graph_children"))  # fmt: skip


async def queues(request: Request) -> Response:
    dash = Dashboard.of(request)
    rows = await dash.run(_data.queue_rows())
    return dash.page(request, "queues.html", "Queues", {"queues": rows},
                     sql=sql_of("web_queue_counts", "web_sample", "queue_upsert"))  # fmt: skip


async def schedules(request: Request) -> Response:
    dash = Dashboard.of(request)
    rows = await dash.run(_data.schedules())
    for row in rows:
        row["next_fires"] = _next_fires(row["cron"], row["timezone"], row["next_run_at"])
    return dash.page(request, "schedules.html", "Schedules", {"schedules": rows},
                     sql=sql_of("web_schedules"))  # fmt: skip


def _next_fires(expr: str, tz: str, first: datetime | None, n: int = 3) -> list[datetime]:
    from pgqueue import Schedule

    if first is None:
        return []
    try:
        cron = Schedule(name="-", cron=expr, task="-", timezone=tz).expression
    except ValueError:
        return [first]
    fires = [first]
    while len(fires) < n:
        fires.append(cron.next_after(fires[-1]))
    # Shown in the schedule's own time zone, as its cron expression reads.
    zone = ZoneInfo(tz)
    return [f.astimezone(zone) for f in fires]


async def workers(request: Request) -> Response:
    dash = Dashboard.of(request)
    rows = await dash.run(_data.workers())
    return dash.page(request, "workers.html", "Workers", {"workers": rows},
                     sql=sql_of("web_workers"))  # fmt: skip


def dead_filters(params: Any) -> dict[str, Any]:
    """``queue``, ``task`` and ``since`` (ISO time) of the dead-letter pages."""

    def text(name: str) -> str | None:
        return (params.get(name) or "").strip() or None

    since_text = text("since")
    since = None
    if since_text is not None:
        try:
            since = datetime.fromisoformat(since_text)
        except ValueError:
            raise ValueError(f"since: not an ISO date or time: {since_text!r}") from None
    return {"queue": text("queue"), "task": text("task"), "since": since}


async def dead(request: Request) -> Response:
    """The dead letters: the newest dead jobs by filter, their count, replay and purge."""
    dash = Dashboard.of(request)
    try:
        filters = dead_filters(request.query_params)
    except ValueError as exc:
        return dash.error(request, 400, str(exc))
    flt = _data.JobFilter(queue=filters["queue"], task=filters["task"], status="dead",
                          since=filters["since"])  # fmt: skip
    page = await dash.run(_data.jobs_page(flt))
    # One page holds them all: that is the count, without reading the rows again.
    count = (_data.Count(len(page["jobs"])) if page["next"] is None
             else await dash.run(_data.dead_count(**filters)))  # fmt: skip
    confirm = request.query_params.get("confirm")
    if confirm not in (None, "replay", "purge"):
        return dash.error(request, 400, "confirm: replay or purge")
    sql = sql_of("web_dead_count", "web_sample", "web_jobs_finished", "replay_dead")
    return dash.page(request, "dead.html", "Dead letters", page, count=count, filters=filters,
                     confirm=confirm, sql=sql)  # fmt: skip
