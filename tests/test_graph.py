"""Reading flows as graphs against real PostgreSQL: the jobs around a job, a flow, the list."""

from __future__ import annotations

import asyncio

import pytest
from flow_helpers import Step, big_chord, diamond, sql_flow

import pgqueue


@pytest.fixture
def app(clean_db: str) -> pgqueue.App:
    return pgqueue.App(clean_db)



def test_the_graph_around_a_job_names_parents_children_and_counts(
    app: pgqueue.App, clean_db: str
) -> None:
    ids = diamond(clean_db)
    graph = app.job_graph(ids[3])
    assert graph.job.id == ids[3] and graph.job.flow_id == ids[0]
    assert graph.job.status == "blocked" and graph.job.pending_parents == 2
    assert [p.id for p in graph.parents] == ids[:3]  # declaration order
    assert [p.status for p in graph.parents] == ["succeeded", "running", "queued"]
    assert graph.parent_counts == {"running": 1, "queued": 1, "succeeded": 1}
    assert [p.id for p in graph.waiting_on] == ids[1:3]
    assert [(c.id, c.on_parent_failure) for c in graph.children] == [
        (ids[4], "cancel"), (ids[5], "run")]  # fmt: skip
    assert graph.child_counts == {"blocked": 2} and graph.child_total == 2
    root = app.job_graph(ids[0])
    assert root.parents == [] and root.parent_total == 0 and [c.id for c in root.children] == [
        ids[3]]  # fmt: skip


def test_a_capped_list_keeps_the_parents_a_job_waits_for(app: pgqueue.App, clean_db: str) -> None:
    ids = sql_flow(clean_db, [*(Step("t.a", "succeeded") for _ in range(5)), Step("t.a", "queued"),
                              Step("t.b", "blocked", tuple(range(6)))])  # fmt: skip
    graph = app.job_graph(ids[-1], limit=2)
    # The unfinished parent is kept although it was declared last; all are counted.
    assert [p.id for p in graph.parents] == [ids[0], ids[5]]
    assert graph.parent_total == 6 and graph.parent_counts == {"queued": 1, "succeeded": 5}


def test_a_chord_callback_of_ten_thousand_parents_reads_a_few(
    app: pgqueue.App, clean_db: str
) -> None:
    ids = big_chord(clean_db, 10_000)
    graph = app.job_graph(ids[-1], limit=10)
    assert len(graph.parents) == 10 and graph.parent_counts == {"succeeded": 10_000}
    one = app.job_graph(ids[5], limit=10)
    assert [c.id for c in one.children] == [ids[-1]]


def test_a_flow_reads_its_counts_and_its_jobs_page_by_page(
    app: pgqueue.App, clean_db: str
) -> None:
    ids = diamond(clean_db)
    flow = app.flow_graph(ids[0])
    assert flow.id == ids[0] and flow.total == 6 and not flow.finished
    assert flow.counts == {"running": 1, "queued": 1, "blocked": 3, "succeeded": 1}
    assert [j.id for j in flow.jobs] == ids and flow.next_after is None
    assert flow.jobs[3].parent_ids == tuple(ids[:3])
    first = app.flow_graph(ids[0], limit=4)
    assert [j.id for j in first.jobs] == ids[:4] and first.next_after == ids[3]
    rest = app.flow_graph(ids[0], limit=4, after=first.next_after)
    assert [j.id for j in rest.jobs] == ids[4:] and rest.next_after is None
    blocked = app.flow_graph(ids[0], status="blocked")
    assert [j.id for j in blocked.jobs] == ids[3:] and blocked.total == 6


def test_a_finished_flow_has_a_finish_time(app: pgqueue.App, clean_db: str) -> None:
    ids = sql_flow(clean_db, [Step("t.a", "succeeded"), Step("t.b", "cancelled", (0,))])
    flow = app.flow_graph(ids[0])
    assert flow.finished and flow.finished_at is not None and flow.created_at is not None


def test_unknown_flows_and_jobs_and_bad_arguments(app: pgqueue.App, clean_db: str) -> None:
    ids = diamond(clean_db)
    with pytest.raises(pgqueue.FlowNotFound, match="no flow with id 999"):
        app.flow_graph(999)
    with pytest.raises(pgqueue.JobNotFound, match="no job with id 999"):
        app.job_graph(999)
    with pytest.raises(pgqueue.FlowNotFound):
        app.flow_graph(ids[1])  # a job of the flow, not its id
    with pytest.raises(ValueError, match="unknown status"):
        app.flow_graph(ids[0], status="lost")
    for bad in (0, -1, True):
        with pytest.raises(ValueError, match="limit"):
            app.job_graph(ids[0], limit=bad)
    with pytest.raises(ValueError, match="limit"):
        app.list_flows(limit=0)


def test_flows_are_listed_newest_first_with_a_cursor(app: pgqueue.App, clean_db: str) -> None:
    a = diamond(clean_db)
    b = sql_flow(clean_db, [Step("t.a", "succeeded"), Step("t.b", "succeeded", (0,))])
    c = big_chord(clean_db, 300)
    app.task_ref("t.alone").enqueue()  # a job outside any flow is not a flow
    flows = app.list_flows()
    assert [f.id for f in flows] == [c[0], b[0], a[0]]
    assert flows[0].counts == {"queued": 1, "succeeded": 300} and flows[0].total == 301
    assert flows[1].finished_at is not None and flows[2].finished_at is None
    assert [f.id for f in app.list_flows(limit=1, before=b[0])] == [a[0]]
    assert app.list_flows(before=a[0]) == []


def test_async_twins(app: pgqueue.App, clean_db: str) -> None:
    ids = diamond(clean_db)

    async def main() -> tuple[pgqueue.JobGraph, pgqueue.FlowGraph, list[pgqueue.FlowSummary]]:
        try:
            return (await app.job_graph_async(ids[3]), await app.flow_graph_async(ids[0]),
                    await app.list_flows_async())  # fmt: skip
        finally:
            await app.close_async()

    graph, flow, flows = asyncio.run(main())
    assert graph == app.job_graph(ids[3]) and flow == app.flow_graph(ids[0])
    assert flows == app.list_flows()
