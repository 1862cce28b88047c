"""Reading flows as graphs: the jobs around one job, a whole flow, the recent flows.

Operations (see ``_db``): written once, driven sync or async. They read only
what a graph shows of a job (``FlowNode``: id, task, status, flow, parents),
never arguments or results, so a 10,000-job flow is a few hundred kilobytes.
Every read is bounded: ``limit`` jobs, the rest counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from pgqueue._core import FINISHED, check_status
from pgqueue._db import Operation, Statement
from pgqueue._errors import FlowNotFound, JobNotFound
from pgqueue._sql import query

AROUND_LIMIT = 100  # parents and children shown around one job
FLOW_LIMIT = 20_000  # jobs of one flow read at once (the graph of the dashboard)
FLOWS_LIMIT = 20  # flows per page of the list
NO_CURSOR = 2**63 - 1


@dataclass  # not frozen: a frozen dataclass is built 5x slower (10,000 jobs: 20 ms)
class FlowNode:
    """A job as its flow's graph shows it. A whole flow (``flow_graph``) is read
    without the job's times, attempts and error (``None``): they cost more to
    read than the graph itself; ``job_graph`` and ``get_job`` have them."""

    __module__ = "pgqueue"

    id: int
    task: str
    queue: str
    status: str
    flow_id: int | None
    parent_ids: tuple[int, ...]
    pending_parents: int = 0  # parents not finished yet (a blocked job waits for them)
    on_parent_failure: str = "cancel"  # or "run": runs even when a parent fails
    created_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int | None = None
    max_attempts: int | None = None
    last_error: str | None = None

    @classmethod
    def from_row(cls, row: Any) -> FlowNode:
        """From the columns of ``graph_edge_columns`` (8), or ``graph_node_columns`` (13)."""
        return cls(row[0], row[1], row[2], row[3], row[4], tuple(row[5] or ()), *row[6:13])


def _ordered(counts: dict[str, int]) -> dict[str, int]:
    # Imported here: `import pgqueue` (every worker and CLI start) need not build the
    # layout's classes.
    from pgqueue._dag import INTEREST

    rank = {s: i for i, s in enumerate(INTEREST)}
    return dict(sorted(counts.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))


@dataclass(frozen=True)
class JobGraph:
    """One job, its parents and its children (each list capped; the counts are not)."""

    __module__ = "pgqueue"

    job: FlowNode
    parents: list[FlowNode]
    parent_counts: dict[str, int]
    children: list[FlowNode]
    child_counts: dict[str, int]

    @property
    def parent_total(self) -> int:
        return sum(self.parent_counts.values())

    @property
    def child_total(self) -> int:
        return sum(self.child_counts.values())

    @property
    def waiting_on(self) -> list[FlowNode]:
        """The shown parents that have not finished (what a ``blocked`` job waits for)."""
        return [p for p in self.parents if p.status not in FINISHED]


@dataclass(frozen=True)
class FlowGraph:
    """A flow: its jobs (id order, at most the limit read), counts per status, times."""

    __module__ = "pgqueue"

    id: int
    jobs: list[FlowNode]
    counts: dict[str, int]
    created_at: datetime | None = None
    finished_at: datetime | None = None  # of its last job, once every job has finished
    next_after: int | None = None  # keyset cursor of the next page of jobs

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def finished(self) -> bool:
        return all(s in FINISHED for s in self.counts)


@dataclass(frozen=True)
class FlowSummary:
    """A flow in the list: its id (cursor), jobs per status, times."""

    __module__ = "pgqueue"

    id: int
    counts: dict[str, int] = field(default_factory=dict)
    created_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _limit(limit: int, what: str = "limit") -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"{what} must be a positive int")
    return limit


def job_graph(job_id: int, limit: int = AROUND_LIMIT) -> Operation[JobGraph]:
    """The job ``job_id`` with up to ``limit`` parents (those it waits for first) and
    children, and the count of each per status."""
    _limit(limit)
    rows = yield Statement(query("graph_job"), {"id": job_id})
    if not rows:
        raise JobNotFound(f"no job with id {job_id}")
    job = FlowNode.from_row(rows[0])
    parents: list[FlowNode] = []
    counts: dict[str, int] = {}
    if job.parent_ids:
        got = yield Statement(query("graph_parents"), {"ids": list(job.parent_ids),
                                                       "limit": limit})  # fmt: skip
        parents, counts = _split(got)
        position = {p: k for k, p in enumerate(job.parent_ids)}
        parents.sort(key=lambda n: position[n.id])
    got = yield Statement(query("graph_children"), {"id": job.id, "limit": limit})
    children, child_counts = _split(got)
    children.sort(key=lambda n: n.id)
    return JobGraph(job=job, parents=parents, parent_counts=_ordered(counts),
                    children=children, child_counts=_ordered(child_counts))  # fmt: skip


def _split(rows: list[Any]) -> tuple[list[FlowNode], dict[str, int]]:
    """Rows of jobs, then rows of (count, status): the jobs and the counts."""
    nodes, counts = [], {}
    for row in rows:
        if row[0] is None:
            counts[row[-1]] = int(row[-2])
        else:
            nodes.append(FlowNode.from_row(row))
    return nodes, counts


def flow_graph(
    flow_id: int, *, limit: int = FLOW_LIMIT, after: int = 0, status: str | None = None
) -> Operation[FlowGraph]:
    """The flow ``flow_id``: its counts, and up to ``limit`` of its jobs after id ``after``
    (optionally of one ``status``). Raises ``FlowNotFound`` for a flow without jobs."""
    _limit(limit)
    if status is not None:
        check_status(status)
    rows = yield Statement(query("graph_flow_counts"), {"flow_id": flow_id})
    if not rows:
        raise FlowNotFound(f"no flow with id {flow_id}")
    counts = _ordered({r[0]: int(r[1]) for r in rows})
    created = min(r[2] for r in rows)
    got = yield Statement(query("graph_flow_edges"), {"flow_id": flow_id, "after": after,
                                                     "status": status, "limit": limit})  # fmt: skip
    jobs = [FlowNode.from_row(r) for r in got[:limit]]
    graph = FlowGraph(id=flow_id, jobs=jobs, counts=counts, created_at=created,
                      next_after=jobs[-1].id if len(got) > limit else None)  # fmt: skip
    if graph.finished:
        graph = replace(graph, finished_at=max(r[3] for r in rows if r[3]))
    return graph


def list_flows(limit: int = FLOWS_LIMIT, before: int | None = None) -> Operation[list[FlowSummary]]:
    """The newest flows (by id) below ``before``, with their jobs per status."""
    _limit(limit)
    rows = yield Statement(query("graph_flows"), {"limit": limit,
                                                  "before": before or NO_CURSOR})  # fmt: skip
    out: dict[int, dict[str, Any]] = {}
    for flow_id, status, n, created, finished in rows:
        entry = out.setdefault(flow_id, {"counts": {}, "created": [], "finished": []})
        entry["counts"][status] = int(n)
        entry["created"].append(created)
        if finished is not None:
            entry["finished"].append(finished)
    flows = []
    for flow_id, e in out.items():
        done = all(s in FINISHED for s in e["counts"])
        flows.append(FlowSummary(id=flow_id, counts=_ordered(e["counts"]),
                                 created_at=min(e["created"]),
                                 finished_at=max(e["finished"]) if done and e["finished"]
                                 else None))  # fmt: skip
    return flows
