"""The facade's reads of flows as graphs (``App`` inherits them; ``_app`` stays small).

Thin delegations to ``_graph``'s operations, each with an ``_async`` twin.
"""

from __future__ import annotations

from pgqueue import _graph
from pgqueue._db import Database
from pgqueue._graph import FlowGraph, FlowSummary, JobGraph


class GraphReads:
    """``job_graph``, ``flow_graph`` and ``list_flows`` over ``self.database``."""

    database: Database

    def job_graph(self, job_id: int, *, limit: int = _graph.AROUND_LIMIT) -> JobGraph:
        """The job with up to ``limit`` of its parents and children (``JobNotFound``)."""
        return self.database.run(_graph.job_graph(job_id, limit), transaction=True)

    async def job_graph_async(self, job_id: int, *, limit: int = _graph.AROUND_LIMIT
                              ) -> JobGraph:  # fmt: skip
        return await self.database.run_async(_graph.job_graph(job_id, limit), transaction=True)

    def flow_graph(self, flow_id: int, *, limit: int = _graph.FLOW_LIMIT, after: int = 0,
                   status: str | None = None) -> FlowGraph:  # fmt: skip
        """The flow's counts per status and up to ``limit`` of its jobs (id order) after
        id ``after``, optionally of one ``status`` (``FlowNotFound`` for an unknown flow)."""
        op = _graph.flow_graph(flow_id, limit=limit, after=after, status=status)
        return self.database.run(op, transaction=True)

    async def flow_graph_async(self, flow_id: int, *, limit: int = _graph.FLOW_LIMIT,
                               after: int = 0, status: str | None = None) -> FlowGraph:  # fmt: skip
        op = _graph.flow_graph(flow_id, limit=limit, after=after, status=status)
        return await self.database.run_async(op, transaction=True)

    def list_flows(self, *, limit: int = _graph.FLOWS_LIMIT, before: int | None = None
                   ) -> list[FlowSummary]:  # fmt: skip
        """The newest flows (below flow id ``before``), with their jobs per status."""
        return self.database.run(_graph.list_flows(limit, before))

    async def list_flows_async(self, *, limit: int = _graph.FLOWS_LIMIT,
                               before: int | None = None) -> list[FlowSummary]:  # fmt: skip
        return await self.database.run_async(_graph.list_flows(limit, before))
