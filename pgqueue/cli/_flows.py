"""Commands: flows (show, list)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

import typer

from pgqueue import FlowGraph, FlowSummary
from pgqueue.cli._admin import table
from pgqueue.cli._base import DsnOption, JsonOption, cli, echo, emit_json, fail, plain_app
from pgqueue.cli._graph_text import counts_text, flow_lines

flows_cli = typer.Typer(help="Workflows: show a flow's graph, list recent flows.",
                        no_args_is_help=True)  # fmt: skip
cli.add_typer(flows_cli, name="flows")


def flow_dict(graph: FlowGraph) -> dict[str, Any]:
    return {"id": graph.id, "total": graph.total, "counts": graph.counts,
            "created_at": graph.created_at, "finished_at": graph.finished_at,
            "jobs": [asdict(j) for j in graph.jobs],
            "complete": len(graph.jobs) == graph.total}  # fmt: skip


def _summary_row(flow: FlowSummary) -> dict[str, Any]:
    return {"flow": flow.id, "jobs": flow.total, "statuses": counts_text(flow.counts),
            "created_at": flow.created_at, "finished_at": flow.finished_at}  # fmt: skip


@flows_cli.command("show")
def flows_show(
    flow_id: Annotated[int, typer.Argument(help="Flow id (`pgqueue jobs show` names it).")],
    per_layer: Annotated[
        int, typer.Option(help="Jobs shown per layer; the rest are counted.")
    ] = 10,
    show_all: Annotated[bool, typer.Option("--all", help="Every job of every layer.")] = False,
    dsn: DsnOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every job of a flow, layer by layer, with its status and its parents."""
    if per_layer < 2:
        raise fail("--per-layer must be at least 2")
    graph = plain_app(dsn).flow_graph(flow_id)
    if as_json:
        emit_json(flow_dict(graph))
        return
    for line in flow_lines(graph, per_layer=len(graph.jobs) + 2 if show_all else per_layer):
        echo(line)


@flows_cli.command("list")
def flows_list(
    limit: Annotated[int, typer.Option(help="At most this many flows.")] = 20,
    before: Annotated[
        int | None, typer.Option(help="Only flows with an id below this one (paging).")
    ] = None,
    dsn: DsnOption = None,
    as_json: JsonOption = False,
) -> None:
    """Recent flows, newest first, with their jobs per status."""
    flows = plain_app(dsn).list_flows(limit=limit, before=before)
    if as_json:
        emit_json([asdict(f) | {"total": f.total} for f in flows])
    elif flows:
        table([_summary_row(f) for f in flows],
              ("flow", "jobs", "statuses", "created_at", "finished_at"))  # fmt: skip
    else:
        typer.echo("no flows")
