"""Flows as text: the graph around a job (``jobs show``), a whole flow (``flows show``).

Pure functions from the public graph values to lines; the commands print them
through ``echo`` (control characters escaped).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from pgqueue import FlowGraph, FlowNode, JobGraph
from pgqueue._dag import Node, layout

PARENT_IDS_SHOWN = 5


def counts_text(counts: dict[str, int]) -> str:
    """``2 succeeded, 1 running`` (in the order of ``_dag.INTEREST``)."""
    return ", ".join(f"{n:,} {s}" for s, n in counts.items()) or "no jobs"


def _node(n: FlowNode) -> str:
    return f"{n.id}  {n.task}  {n.status}"


def _ids(ids: Iterable[int], total: int) -> str:
    shown = list(ids)[:PARENT_IDS_SHOWN]
    more = total - len(shown)
    return ", ".join(map(str, shown)) + (f" (+{more:,} more)" if more > 0 else "")


def _side(label: str, nodes: list[FlowNode], counts: dict[str, int]) -> Iterator[str]:
    """``parents: 11 (1 running, 10 succeeded)`` and the tree of those listed."""
    total = sum(counts.values())
    if not total:
        yield f"  {label}: none"
        return
    yield f"  {label}: {total:,} ({counts_text(counts)})"
    rest = total - len(nodes)
    for i, n in enumerate(nodes):
        last = i == len(nodes) - 1 and rest <= 0
        yield f"    {'`--' if last else '|--'} {_node(n)}"
    if rest > 0:
        yield f"    `-- ... {rest:,} more"


def job_graph_lines(graph: JobGraph) -> list[str]:
    """The job between its parents and its children, as an indented tree."""
    job = graph.job
    if job.flow_id is None and not job.parent_ids and not graph.children:
        return []
    title = "graph" if job.flow_id is None else (
        f"graph (flow {job.flow_id}; the whole flow: pgqueue flows show {job.flow_id})")
    lines = [title, *_side("parents", graph.parents, graph.parent_counts)]
    mark = f"  * {_node(job)}"
    if job.status == "blocked":
        waiting = job.pending_parents
        shown = graph.waiting_on
        mark += (f": waiting on {waiting:,} of {graph.parent_total:,} parent(s): "
                 + ", ".join(f"{p.id} ({p.status})" for p in shown[:PARENT_IDS_SHOWN])
                 + (" ..." if waiting > min(len(shown), PARENT_IDS_SHOWN) else ""))  # fmt: skip
    lines.append(mark)
    lines.extend(_side("children", graph.children, graph.child_counts))
    return lines


def flow_lines(graph: FlowGraph, per_layer: int) -> list[str]:
    """The flow layer by layer (parents above), each job with its parents' ids.

    A layer with more than ``per_layer`` jobs shows the most telling ones and a
    line counting the rest (``_dag``'s groups).
    """
    nodes = [Node(j.id, j.task, j.status, j.parent_ids) for j in graph.jobs]
    by_id = {j.id: j for j in graph.jobs}
    when = graph.created_at.isoformat(sep=" ", timespec="seconds") if graph.created_at else "-"
    head = f"flow {graph.id}: {graph.total:,} jobs ({counts_text(graph.counts)}); created {when}"
    if graph.finished_at is not None:
        head += f", finished {graph.finished_at.isoformat(sep=' ', timespec='seconds')}"
    lines = [head]
    if len(graph.jobs) < graph.total:
        lines.append(f"  (the graph of the first {len(graph.jobs):,} jobs by id; "
                     f"{graph.total - len(graph.jobs):,} more are not read)")  # fmt: skip
    drawn = layout(nodes, max_layers=max(1, len(nodes)), max_per_layer=max(2, per_layer))
    layer = -1
    for box in sorted(drawn.boxes, key=lambda b: (b.layer, b.group, b.jobs[0])):
        if box.layer != layer:
            layer = box.layer
            size = sum(len(b.jobs) for b in drawn.boxes if b.layer == layer)
            lines.append(f"layer {layer + 1} ({size:,} job{'s' if size != 1 else ''})")
        if box.group:
            lines.append(f"  ... {len(box.jobs):,} more ({counts_text(box.counts)}; "
                         "--per-layer to see more)")  # fmt: skip
            continue
        job = by_id[box.jobs[0]]
        edge = f"  <- {_ids(job.parent_ids, len(job.parent_ids))}" if job.parent_ids else ""
        lines.append(f"  {_node(job)}{edge}")
    return lines
