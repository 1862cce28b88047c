"""Flows: chain, group and chord, nested, enqueued in one transaction and run by a worker."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session
from test_worker_app import scalar

import pgqueue
from pgqueue import chain, chord, current_job, group
from pgqueue._canvas import flatten
from pgqueue.testing import eager

FAST = {"poll_interval": 0.1, "rescue_interval": 0.2}


@pytest.fixture
def app(clean_db: str) -> Iterator[pgqueue.App]:
    app = pgqueue.App(clean_db, retry=pgqueue.RetryPolicy(base=0.01, cap=0.01))
    seen: dict[str, Any] = {}
    app.seen = seen  # type: ignore[attr-defined]

    @app.task(name="t.fetch")
    def fetch(url: str) -> str:
        return f"<{url}>"

    @app.task(name="t.parse")
    def parse(html: str) -> str:
        return html.upper()

    @app.task(name="t.store")
    async def store(text: str, table: str = "pages") -> str:
        seen["store"] = current_job().parent_results
        return f"{table}:{text}"

    @app.task(name="t.merge")
    def merge(results: list[Any], sep: str = "+") -> str:
        return sep.join(map(str, results))

    @app.task(name="t.count")
    def count() -> int:
        return 7

    @app.task(name="t.fail", max_attempts=1)
    def fail() -> None:
        raise RuntimeError("broken")

    @app.task(name="t.cleanup")
    def cleanup() -> str:
        seen["cleanup"] = True
        return "cleaned"

    yield app
    app.close()


def drain(app: pgqueue.App) -> None:
    assert app.run_worker(concurrency=4, until_empty=True, **FAST) == 0


def t(app: pgqueue.App, name: str) -> pgqueue.Task[Any, Any]:
    return app.tasks[f"t.{name}"]


def test_a_chain_passes_each_result_to_the_next_step(app: pgqueue.App) -> None:
    fetch, parse, store = t(app, "fetch"), t(app, "parse"), t(app, "store")
    handle = app.enqueue_flow(chain(fetch.job("a"), parse.job(), store.job(table="t")))
    assert [j.status for j in handle.jobs] == ["queued", "blocked", "blocked"]
    assert {j.flow_id for j in handle.jobs} == {handle.id} == {handle.jobs[0].id}
    assert handle.jobs[2].parent_ids == [handle.jobs[1].id]
    assert handle.status() == "running"
    drain(app)
    assert handle.wait(timeout=10) == "t:<A>"
    assert handle.status() == "succeeded"
    assert app.seen["store"] == {handle.jobs[1].id: "<A>"}  # type: ignore[attr-defined]
    stored = app.get_job(handle.jobs[2].id)  # the row keeps the arguments as given
    assert (stored.args, stored.kwargs) == ([], {"table": "t"})


def test_a_chord_gets_its_headers_results_in_order(app: pgqueue.App) -> None:
    fetch, merge = t(app, "fetch"), t(app, "merge")
    handle = app.enqueue_flow(chord([fetch.job(u) for u in "xyz"], merge.job(sep=",")))
    drain(app)
    assert handle.wait(timeout=10) == "<x>,<y>,<z>"


def test_nested_flows(app: pgqueue.App) -> None:
    fetch, parse, merge, count = t(app, "fetch"), t(app, "parse"), t(app, "merge"), t(app, "count")
    flow = chain(
        group(fetch.job("p"), chain(fetch.job("q"), parse.job())),   # a group of a job and a chain
        merge.job(),                                                  # gets ["<p>", "<Q>"]
        chord(group(parse.job(), parse.job()), merge.job(sep="|")),   # a chord inside a chain
        count.options(pass_result=False).job(),                       # opts out of the result
    )  # fmt: skip
    specs, tails = flatten(flow)
    assert len(specs) == 8 and tails == [7]
    piped = fetch.job("a") | group(parse.job(), parse.job()) | merge.job()
    assert [s.task for s in flatten(piped)[0]] == ["t.fetch", "t.parse", "t.parse", "t.merge"]
    handle = app.enqueue_flow(flow)
    drain(app)
    assert handle.wait(timeout=10) == 7
    results = [app.get_job(j.id).result for j in handle.jobs]
    assert results == ["<p>", "<q>", "<Q>", "<p>+<Q>", "<P>+<Q>", "<P>+<Q>", "<P>+<Q>|<P>+<Q>", 7]


def test_a_group_flow_returns_the_list_of_results(app: pgqueue.App) -> None:
    fetch = t(app, "fetch")
    handle = app.enqueue_flow(group(fetch.job(str(n)) for n in range(3)))
    drain(app)
    assert handle.wait(timeout=10) == ["<0>", "<1>", "<2>"]
    again = app.get_flow(handle.id)
    assert [j.id for j in again.jobs] == [j.id for j in handle.jobs]
    assert again.wait(timeout=10) == ["<0>", "<1>", "<2>"]


def test_a_failed_step_cancels_the_rest_unless_declared_run(app: pgqueue.App) -> None:
    fetch, parse, fail = t(app, "fetch"), t(app, "parse"), t(app, "fail")
    cleanup = t(app, "cleanup")
    flow = chain(fetch.job("a"), fail.options(pass_result=False).job(), parse.job(),
                 cleanup.options(on_parent_failure="run", pass_result=False).job())  # fmt: skip
    handle = app.enqueue_flow(flow)
    drain(app)
    with pytest.raises(pgqueue.JobFailed, match=r"\(t.fail\) ended dead"):
        handle.wait(timeout=10)
    jobs = handle.refresh().jobs
    assert [j.status for j in jobs] == ["succeeded", "dead", "cancelled", "succeeded"]
    assert jobs[2].last_error == f"ParentFailed: parent job {jobs[1].id} (t.fail) ended dead"
    assert app.seen.get("cleanup") is True  # type: ignore[attr-defined]
    assert handle.status() == "failed"
    assert handle.counts() == {"succeeded": 2, "dead": 1, "cancelled": 1}


def test_cancelling_a_flow_cancels_every_unfinished_job(app: pgqueue.App, clean_db: str) -> None:
    fetch, parse = t(app, "fetch"), t(app, "parse")
    handle = app.enqueue_flow(chain(fetch.job("a"), parse.job(), parse.job()))
    assert handle.cancel() == {"cancelled": [j.id for j in handle.jobs], "requested": []}
    assert handle.status() == "cancelled"
    assert handle.cancel() == {"cancelled": [], "requested": []}
    with pytest.raises(pgqueue.FlowNotFound):
        app.get_flow(999999)


def test_a_flow_joins_the_callers_transaction(app: pgqueue.App, clean_db: str) -> None:
    fetch, parse = t(app, "fetch"), t(app, "parse")
    with psycopg.connect(clean_db) as conn:
        app.enqueue_flow(chain(fetch.job("a"), parse.job()), connection=conn)
        conn.rollback()
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.jobs") == 0


def test_a_flow_joins_a_sqlalchemy_session(app: pgqueue.App, clean_db: str) -> None:
    fetch, parse = t(app, "fetch"), t(app, "parse")
    engine = create_engine(clean_db.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with Session(engine) as session:
            handle = app.enqueue_flow(chain(fetch.job("s"), parse.job()), connection=session)
            assert scalar(clean_db, "SELECT count(*) FROM pgqueue.jobs") == 0  # not committed
            session.commit()
    finally:
        engine.dispose()
    drain(app)
    assert handle.wait(timeout=10) == "<S>"


def test_flows_async(app: pgqueue.App) -> None:
    fetch, parse = t(app, "fetch"), t(app, "parse")

    async def main() -> Any:
        handle = await app.enqueue_flow_async(chain(fetch.job("z"), parse.job()))
        await app.run_worker_async(until_empty=True, **FAST)
        again = await app.get_flow_async(handle.id)
        assert await again.status_async() == "succeeded"
        return await handle.wait_async(timeout=10)

    assert asyncio.run(main()) == "<Z>"


def test_a_step_missing_its_argument_needs_a_parent(app: pgqueue.App) -> None:
    parse = t(app, "parse")
    with pytest.raises(TypeError, match="missing a required argument: 'html'"):
        parse.enqueue()
    with pytest.raises(TypeError, match="missing a required argument"):
        app.enqueue_flow(group(parse.job()))
    with pytest.raises(TypeError, match="missing a required argument"):
        parse.options(pass_result=False).job()
    with pytest.raises(TypeError, match="a flow is made of"):
        chain(t(app, "fetch").job("a"), "b")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one job"):
        chord([], parse.job())
    with pytest.raises(ValueError, match="at least one job"):
        app.enqueue_flow(chain(group()))


def test_eager_mode_runs_flows_in_order(app: pgqueue.App) -> None:
    fetch, parse, merge, fail = t(app, "fetch"), t(app, "parse"), t(app, "merge"), t(app, "fail")
    with eager(app):
        handle = app.enqueue_flow(chain(chord([fetch.job("a"), fetch.job("b")], merge.job()),
                                        parse.job()))  # fmt: skip
        assert handle.wait() == "<A>+<B>"
    with eager(app, propagate=False):
        failed = app.enqueue_flow(chain(fail.job(), parse.job()))
        assert [j.status for j in failed.jobs] == ["dead", "cancelled"]
        with pytest.raises(pgqueue.JobFailed):
            failed.wait()
