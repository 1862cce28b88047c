"""Job dependencies: blocked jobs, their release by the parent's outcome, failure policy,
replay, concurrency of parents finishing at once, enqueue-time checks, the pruner."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from test_worker_app import scalar, wait_until

import pgqueue
from pgqueue import _flows
from pgqueue._sql import query
from pgqueue.maintenance import Pruner


@pytest.fixture
def app(clean_db: str) -> Iterator[pgqueue.App]:
    app = pgqueue.App(clean_db)
    yield app
    app.close()


def status(app: pgqueue.App, job: pgqueue.Job | int) -> str:
    return app.get_job(job if isinstance(job, int) else job.id).status


def claim(dsn: str, queue: str = "default") -> dict[int, str]:
    """Claim every ready job of ``queue`` as a worker would: {id: lease token}."""
    token = str(uuid.uuid4())
    params = {"queues": [queue], "limit": 100, "lease": 30.0, "worker_id": "t", "token": token}
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(query("claim"), params).fetchall()
    return {int(r[0]): token for r in rows}


def complete_params(outcomes: dict[int, tuple[str, str, str | None]]) -> dict[str, Any]:
    """The ``complete`` statement's arrays: {id: (token, status, result JSON)}."""
    ids = list(outcomes)
    return {
        "ids": ids,
        "tokens": [outcomes[i][0] for i in ids],
        "statuses": [outcomes[i][1] for i in ids],
        "results": [outcomes[i][2] for i in ids],
        "delays": [None] * len(ids),
        "errors": [None if outcomes[i][1] == "succeeded" else "boom" for i in ids],
        "entries": [None] * len(ids),
    }


def complete(dsn: str, outcomes: dict[int, tuple[str, str, str | None]]) -> None:
    """Record outcomes with the completer's own statement, in one transaction."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(query("complete"), complete_params(outcomes))


def finish(dsn: str, tokens: dict[int, str], job_id: int, outcome: str = "succeeded",
           result: str | None = "1") -> None:  # fmt: skip
    complete(dsn, {job_id: (tokens[job_id], outcome, result)})


# -- (1) the low-level form ------------------------------------------------------------


def test_child_is_blocked_until_its_last_parent_succeeds(app: pgqueue.App, clean_db: str) -> None:
    ref = app.task_ref("t.step")
    a, b = ref.enqueue(1), ref.enqueue(2)
    child = ref.options(depends_on=[a, b.id]).enqueue(3)
    assert (child.status, child.parent_ids) == ("blocked", [a.id, b.id])
    assert scalar(clean_db, "SELECT pending_parents FROM pgqueue.jobs WHERE id = %s",
                  (child.id,)) == 2  # fmt: skip
    tokens = claim(clean_db)
    assert set(tokens) == {a.id, b.id}  # the blocked child is invisible to the claim
    finish(clean_db, tokens, a.id)
    assert status(app, child) == "blocked"
    with psycopg.connect(clean_db, autocommit=True) as listener:
        listener.execute("LISTEN pgqueue_jobs")
        finish(clean_db, tokens, b.id)  # the last parent: released in the same statement
        notes = list(listener.notifies(timeout=2, stop_after=1))
    assert [n.payload for n in notes] == ["default"]
    assert status(app, child) == "queued"
    assert set(claim(clean_db)) == {child.id}


def test_enqueue_many_links_specs_of_the_same_batch(app: pgqueue.App, clean_db: str) -> None:
    ref = app.task_ref("t.step")
    first = ref.job(1)
    second = ref.options(depends_on=[first]).job(2)
    third = ref.options(depends_on=[first, second], queue="other").job(3)
    jobs = app.enqueue_many([first, second, third])
    assert [j.status for j in jobs] == ["queued", "blocked", "blocked"]
    assert jobs[2].parent_ids == [jobs[0].id, jobs[1].id]
    edges = scalar(clean_db, "SELECT count(*) FROM pgqueue.job_dependencies")
    assert edges == 3
    assert all(j.flow_id is None for j in jobs)  # a plain batch is no flow


def test_a_large_batch_with_dependencies_links_every_job(app: pgqueue.App, clean_db: str) -> None:
    ref = app.task_ref("t.step")
    head = ref.job(0)
    specs = [head, *(ref.options(depends_on=[head]).job(i) for i in range(1, 200))]
    jobs = app.enqueue_many(specs)
    assert [j.id for j in jobs] == sorted(j.id for j in jobs)
    counts = dict(psycopg.connect(clean_db, autocommit=True).execute(
        "SELECT status, count(*) FROM pgqueue.jobs GROUP BY status").fetchall())  # fmt: skip
    assert counts == {"queued": 1, "blocked": 199}
    tokens = claim(clean_db)
    finish(clean_db, tokens, jobs[0].id)
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.jobs WHERE status = 'queued'") == 199


def test_async_enqueue_and_the_children_of_a_job(app: pgqueue.App) -> None:
    ref = app.task_ref("t.step")

    async def main() -> tuple[pgqueue.Job, pgqueue.Job]:
        parent = await ref.enqueue_async(1)
        child = await ref.options(depends_on=[parent]).enqueue_async(2)
        return parent, child

    parent, child = asyncio.run(main())
    assert (child.status, child.parent_ids) == ("blocked", [parent.id])
    kids = app.database.run(_flows.children(app, parent.id))
    assert [k.id for k in kids] == [child.id]


def test_parents_already_finished_decide_at_enqueue(app: pgqueue.App, clean_db: str) -> None:
    ref = app.task_ref("t.step")
    ok, bad = ref.enqueue(1), ref.enqueue(2)
    tokens = claim(clean_db)
    finish(clean_db, tokens, ok.id)
    finish(clean_db, tokens, bad.id, "dead", None)
    assert ref.options(depends_on=[ok]).enqueue(3).status == "queued"
    cancelled = ref.options(depends_on=[ok, bad]).enqueue(4)
    assert cancelled.status == "cancelled"
    assert cancelled.last_error == f"ParentFailed: parent job {bad.id} (t.step) ended dead"
    assert status(app, cancelled) == "cancelled"
    anyway = ref.options(depends_on=[bad], on_parent_failure="run").enqueue(5)
    assert anyway.status == "queued"


def test_a_missing_parent_is_a_clear_error_and_nothing_is_inserted(
    app: pgqueue.App, clean_db: str
) -> None:
    ref = app.task_ref("t.step")
    real = ref.enqueue(1)
    with pytest.raises(pgqueue.DependencyError, match="job 424242, which does not exist"):
        ref.options(depends_on=[real, 424242]).enqueue(2)
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.jobs") == 1
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.job_dependencies") == 0


def test_bad_dependencies_fail_before_any_io(app: pgqueue.App) -> None:
    ref = app.task_ref("t.step")
    orphan = ref.job(1)
    with pytest.raises(pgqueue.DependencyError, match="not earlier in the same batch"):
        app.enqueue_many([ref.options(depends_on=[orphan]).job(2), orphan])
    with pytest.raises(ValueError, match="positive"):
        ref.options(depends_on=[0])
    with pytest.raises(TypeError, match="depends_on takes"):
        ref.options(depends_on=["7"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="on_parent_failure"):
        ref.options(on_parent_failure="ignore")
    with pytest.raises(ValueError, match="unique_key"):
        ref.options(depends_on=[1], unique_key="k")
    offline = pgqueue.App("postgresql://nobody@127.0.0.1:1/none")  # never connects
    with pytest.raises(pgqueue.DependencyError):
        offline.task_ref("t").options(depends_on=[orphan]).enqueue()


def test_the_enqueue_joins_the_callers_transaction(app: pgqueue.App, clean_db: str) -> None:
    ref = app.task_ref("t.step")
    parent = ref.enqueue(1)
    with psycopg.connect(clean_db) as conn:
        ref.options(depends_on=[parent], connection=conn).enqueue(2)
        conn.rollback()
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.jobs") == 1
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.job_dependencies") == 0


# -- concurrency ----------------------------------------------------------------------


def _waiting_on_lock(dsn: str, marker: str) -> bool:
    return bool(scalar(dsn, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                            " AND query LIKE %s", (f"%{marker}%",)))  # fmt: skip


def test_two_parents_finishing_in_concurrent_transactions_release_the_child(
    app: pgqueue.App, clean_db: str
) -> None:
    ref = app.task_ref("t.step")
    a, b = ref.enqueue(1), ref.enqueue(2)
    child = ref.options(depends_on=[a, b]).enqueue(3)
    tokens = claim(clean_db)
    first = psycopg.connect(clean_db)
    try:
        # a's completion, uncommitted, holds the child's row lock (its count went 2 -> 1).
        first.execute(query("complete"), complete_params({a.id: (tokens[a.id], "succeeded", "1")}))
        # b's completion starts now, in its own snapshot (a not committed yet), and
        # waits on the child's row; then it counts down from the row a left: 0.
        marker = "-- second parent"
        second = threading.Thread(target=lambda: _complete_marked(clean_db, tokens, b.id, marker))
        second.start()
        wait_until(lambda: _waiting_on_lock(clean_db, marker))
        first.commit()
        second.join(10)
    finally:
        first.close()
    assert status(app, child) == "queued"
    assert scalar(clean_db, "SELECT pending_parents FROM pgqueue.jobs WHERE id = %s",
                  (child.id,)) == 0  # fmt: skip


def _complete_marked(dsn: str, tokens: dict[int, str], job_id: int, marker: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        params = complete_params({job_id: (tokens[job_id], "succeeded", "2")})
        conn.execute(marker + "\n" + query("complete"), params)  # shown in pg_stat_activity


def test_depending_on_a_running_job_never_loses_the_release(
    app: pgqueue.App, clean_db: str
) -> None:
    ref = app.task_ref("t.step")
    parent = ref.enqueue(1)
    tokens = claim(clean_db)  # running
    marker = "-- parent completes"
    with psycopg.connect(clean_db) as producer:
        child = ref.options(depends_on=[parent], connection=producer).enqueue(2)
        assert child.status == "blocked"
        # The parent finishes while the child's transaction is open: its completion
        # waits for the producer's commit (the parent row is locked), then sees the edge.
        done = threading.Thread(target=lambda: _complete_marked(clean_db, tokens, parent.id,
                                                                marker))  # fmt: skip
        done.start()
        wait_until(lambda: _waiting_on_lock(clean_db, marker))
        producer.commit()
    done.join(10)
    assert status(app, parent) == "succeeded"
    assert status(app, child) == "queued"


# -- (3) failure policy ---------------------------------------------------------------


def test_a_dead_parent_cancels_its_dependents_recursively_unless_declared_run(
    app: pgqueue.App, clean_db: str
) -> None:
    ref = app.task_ref("t.step")
    a = ref.job(1)
    b = ref.options(depends_on=[a]).job(2)
    c = ref.options(depends_on=[b]).job(3)
    cleanup = ref.options(depends_on=[c], on_parent_failure="run").job(4)
    other = ref.job(5)
    joined = ref.options(depends_on=[other, b]).job(6)
    jobs = app.enqueue_many([a, b, c, cleanup, other, joined])
    tokens = claim(clean_db)
    with psycopg.connect(clean_db, autocommit=True) as listener:
        listener.execute("LISTEN pgqueue_done")
        finish(clean_db, tokens, jobs[0].id, "dead", None)
        cancelled = {int(i) for n in listener.notifies(timeout=2, stop_after=1)
                     for i in n.payload.split(",")}  # fmt: skip
    got = {j.id: app.get_job(j.id) for j in jobs}
    ids = [j.id for j in jobs]
    assert [got[i].status for i in ids] == ["dead", "cancelled", "cancelled", "queued",
                                            "running", "cancelled"]  # fmt: skip
    assert got[ids[1]].last_error == f"ParentFailed: parent job {ids[0]} (t.step) ended dead"
    assert got[ids[2]].last_error == f"ParentFailed: parent job {ids[1]} (t.step) ended cancelled"
    assert got[ids[1]].errors[-1]["type"] == "pgqueue.ParentFailed"
    assert {ids[1], ids[2], ids[5]} <= cancelled  # waiters are woken


def test_replaying_a_dead_parent_reblocks_what_its_failure_cancelled(
    app: pgqueue.App, clean_db: str
) -> None:
    ref = app.task_ref("t.step")
    a = ref.job(1)
    b = ref.options(depends_on=[a]).job(2)
    c = ref.options(depends_on=[b]).job(3)
    jobs = app.enqueue_many([a, b, c])
    user_cancelled = ref.options(depends_on=[jobs[0]]).enqueue(4)
    app.cancel_jobs([user_cancelled.id])
    tokens = claim(clean_db)
    finish(clean_db, tokens, jobs[0].id, "dead", None)
    assert [status(app, j) for j in jobs] == ["dead", "cancelled", "cancelled"]

    assert app.replay_dead() == 1
    assert [status(app, j) for j in jobs] == ["queued", "blocked", "blocked"]
    assert status(app, user_cancelled) == "cancelled"  # cancelled by hand: stays so
    tokens = claim(clean_db)
    finish(clean_db, tokens, jobs[0].id)
    assert [status(app, j) for j in jobs] == ["succeeded", "queued", "blocked"]


def test_cancelling_a_parent_cancels_its_blocked_dependents(app: pgqueue.App) -> None:
    ref = app.task_ref("t.step")
    parent = ref.enqueue(1)
    child = ref.options(depends_on=[parent]).enqueue(2)
    assert app.cancel_jobs([parent.id])["cancelled"] == [parent.id]
    assert status(app, child) == "cancelled"
    assert app.cancel_jobs([child.id])["cancelled"] == []  # already finished


def test_the_rescuer_sending_a_parent_to_dead_cancels_its_dependents(
    app: pgqueue.App, clean_db: str
) -> None:
    ref = app.task_ref("t.step")
    parent = ref.options(max_attempts=1).enqueue(1)
    child = ref.options(depends_on=[parent]).enqueue(2)
    claim(clean_db)
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute("UPDATE pgqueue.jobs SET leased_until = now() - interval '1s'"
                     " WHERE id = %s", (parent.id,))  # fmt: skip
        conn.execute(query("rescue"), {"limit": 10, "after": None})
    assert status(app, parent) == "dead"
    assert status(app, child) == "cancelled"


def test_block_on_makes_an_existing_job_wait(app: pgqueue.App, clean_db: str) -> None:
    ref = app.task_ref("t.step")
    waiter, parent = ref.enqueue(1), ref.enqueue(2)
    with psycopg.connect(clean_db, autocommit=True) as conn:
        pending = conn.execute("SELECT pgqueue.block_on(%s, %s)",
                               (waiter.id, [parent.id])).fetchone()  # fmt: skip
        assert pending == (1,)
        with pytest.raises(psycopg.errors.ForeignKeyViolation, match="does not exist"):
            conn.execute("SELECT pgqueue.block_on(%s, %s)", (waiter.id, [999999]))
    assert (status(app, waiter), app.get_job(waiter.id).parent_ids) == ("blocked", [parent.id])
    finish(clean_db, claim(clean_db), parent.id)
    assert status(app, waiter) == "queued"


# -- (6) the pruner -----------------------------------------------------------------------


def test_the_pruner_keeps_a_parent_while_its_dependents_are_unfinished(
    app: pgqueue.App, clean_db: str
) -> None:
    ref = app.task_ref("t.step")
    a, b = ref.enqueue(1), ref.enqueue(2)
    child = ref.options(depends_on=[a, b]).enqueue(3)
    tokens = claim(clean_db)
    finish(clean_db, tokens, a.id)
    pruner = Pruner(app.database, retention=0)
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    try:
        assert pruner.run_once(now=later) == 0  # a succeeded, but its child still waits
        finish(clean_db, tokens, b.id)
        finish(clean_db, claim(clean_db), child.id)
        assert pruner.run_once(now=later) == 3
    finally:
        pruner.stop()
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.job_dependencies") == 0


def test_purge_keeps_a_parent_whose_dependents_wait(app: pgqueue.App, clean_db: str) -> None:
    ref = app.task_ref("t.step")
    parent = ref.enqueue(1)
    child = ref.options(depends_on=[parent], queue="later").enqueue(2)
    assert app.purge(queue="default") == 0
    assert status(app, child) == "blocked"


def test_stats_and_views_count_blocked_jobs(app: pgqueue.App, clean_db: str) -> None:
    ref = app.task_ref("t.step")
    parent = ref.enqueue(1)
    ref.options(depends_on=[parent]).enqueue(2)
    (row,) = app.queue_stats()
    assert (row["queued"], row["blocked"]) == (1, 1)
    assert scalar(clean_db, "SELECT count FROM pgqueue.queue_stats WHERE status = 'blocked'") == 1
