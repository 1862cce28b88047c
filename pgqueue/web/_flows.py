"""The flow pages: ``/flows`` (recent flows) and ``/flows/{id}`` (the graph and its jobs).

The graph is laid out on the server (``pgqueue._dag``) and drawn as inline SVG
(``_graph``). Bounded for big flows: the page reads at most ``GRAPH_READ`` jobs
(light columns: no arguments or results), draws at most ``MAX_LAYERS`` layers
(a window, with links to the others) of at most ``PER_LAYER`` boxes (the rest of
a crowded layer is one group box with counts), and lists the jobs ``PAGE`` at a
time with a keyset cursor. The page says what it left out.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from pgqueue._dag import Box, Node, layout
from pgqueue._db import Operation, Statement
from pgqueue._errors import FlowNotFound
from pgqueue._graph import FlowGraph, FlowNode, JobGraph, flow_graph, list_flows
from pgqueue._sql import query
from pgqueue.web._data import PAGE, STATUSES
from pgqueue.web._graph import flow_svg
from pgqueue.web._render import Dashboard, sql_of

GRAPH_READ = 20_000  # jobs of one flow read for its graph
MAX_LAYERS = 30  # layers drawn at once
PER_LAYER = 8  # boxes per layer (the last one a group when the layer has more): 1,182 px wide
FLOWS_PAGE = 25


def _int(params: Any, name: str, default: int) -> int:
    text = (params.get(name) or "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name}: not a number: {text!r}") from None
    if value < 0:
        raise ValueError(f"{name}: must be >= 0")
    return value


def flow_data(flow_id: int, after: int, status: str | None) -> Operation[dict[str, Any] | None]:
    """The flow's counts and graph nodes, and one page of its jobs (None: no such flow)."""
    try:
        graph: FlowGraph = yield from flow_graph(flow_id, limit=GRAPH_READ)
    except FlowNotFound:
        return None
    rows = yield Statement(query("graph_flow_jobs"), {"flow_id": flow_id, "after": after,
                                                      "status": status, "limit": PAGE})  # fmt: skip
    page = [FlowNode.from_row(r) for r in rows[:PAGE]]
    return {"flow": graph, "page": page, "next": page[-1].id if len(rows) > PAGE else None}


def flow_layout(graph: FlowGraph, first_layer: int) -> Any:
    nodes = [Node(j.id, j.task, j.status, j.parent_ids) for j in graph.jobs]
    return layout(nodes, first_layer=first_layer, max_layers=MAX_LAYERS, max_per_layer=PER_LAYER)


def around_svg(graph: JobGraph, base: str) -> str:
    """The graph around one job (its parents, itself, its children), the job outlined."""
    shown = {n.id: n for n in (*graph.parents, graph.job, *graph.children)}
    nodes = [Node(n.id, n.task, n.status, tuple(p for p in n.parent_ids if p in shown))
             for n in shown.values()]  # fmt: skip
    drawn = layout(nodes, max_layers=3, max_per_layer=PER_LAYER)
    sides = ((set(graph.job.parent_ids), graph.parent_counts),
             ({c.id for c in graph.children}, graph.child_counts))
    for ids, counts in sides:
        _fold_unread([b for b in drawn.boxes if ids.intersection(b.jobs)], counts)
    group = f"{base}/flows/{graph.job.flow_id}" if graph.job.flow_id else f"{base}/jobs"
    return flow_svg(drawn, job_href=base + "/jobs/{id}", group_href=group,
                    title=f"Job {graph.job.id} and its neighbours", current=graph.job.id)


def _fold_unread(side: list[Box], counts: dict[str, int]) -> None:
    """Make the group box of one side (parents or children) stand for all of that side's
    jobs, read or not: it carries the counts of every job not drawn one by one."""
    groups = [b for b in side if b.group]
    total = sum(counts.values())
    if not groups or total <= sum(len(b.jobs) for b in side):
        return
    rest = dict(counts)
    singles = [b for b in side if not b.group]
    for b in singles:
        rest[b.status] = rest.get(b.status, 0) - 1
    groups[0].counts = {s: n for s, n in rest.items() if n > 0}
    groups[0].more = total - len(singles) - len(groups[0].jobs)


async def flow(request: Request) -> Response:
    dash = Dashboard.of(request)
    flow_id = int(request.path_params["flow_id"])
    try:
        first_layer = _int(request.query_params, "layer", 1) - 1
        after = _int(request.query_params, "after", 0)
    except ValueError as exc:
        return dash.error(request, 400, str(exc))
    status = (request.query_params.get("status") or "").strip() or None
    if status is not None and status not in STATUSES:
        return dash.error(request, 400, f"unknown status {status!r}; one of {', '.join(STATUSES)}")
    data = await dash.run(flow_data(flow_id, after, status))
    if data is None:
        return dash.error(request, 404, f"no flow with id {flow_id}")
    graph: FlowGraph = data["flow"]
    drawn = flow_layout(graph, max(first_layer, 0))
    base = request.scope.get("root_path", "").rstrip("/")
    here = f"{base}/flows/{flow_id}"

    def link(**changes: Any) -> str:
        values = {"layer": drawn.first_layer + 1, "status": status, "after": None} | changes
        return here + "?" + urlencode({k: v for k, v in values.items() if v is not None})

    svg = flow_svg(drawn, job_href=base + "/jobs/{id}", group_href=link() + "#jobs",
                   title=f"Flow {flow_id}")  # fmt: skip
    window = {
        "earlier": link(layer=max(1, drawn.first_layer + 1 - MAX_LAYERS))
        if drawn.more_before else None,
        "later": link(layer=drawn.last_layer + 2) if drawn.more_after else None,
    }  # fmt: skip
    return dash.page(request, "flow.html", f"Flow {flow_id}", data, drawn=drawn, svg=svg,
                     window=window, status_filter=status, live_url=str(request.url),
                     statuses=STATUSES,
                     read_limit=GRAPH_READ, per_layer=PER_LAYER, max_layers=MAX_LAYERS,
                     next_page=link(after=data["next"]) + "#jobs" if data["next"] else None,
                     first_page=link() + "#jobs" if after else None,
                     sql=sql_of("graph_flow_counts", "graph_flow_edges",
                                "graph_flow_jobs"))  # fmt: skip


async def flows(request: Request) -> Response:
    dash = Dashboard.of(request)
    try:
        before = _int(request.query_params, "before", 0) or None
    except ValueError as exc:
        return dash.error(request, 400, str(exc))
    rows = await dash.run(list_flows(FLOWS_PAGE + 1, before))
    more = len(rows) > FLOWS_PAGE
    rows = rows[:FLOWS_PAGE]
    return dash.page(request, "flows.html", "Flows", {"flows": rows},
                     next_before=rows[-1].id if more else None, before=before,
                     sql=sql_of("graph_flows"))  # fmt: skip
