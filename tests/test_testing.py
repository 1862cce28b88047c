"""pgqueue.testing: eager mode, run_job, enqueued/assert_enqueued, drain; the pytest plugin."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import pgqueue
from pgqueue import testing


def make_app(dsn: str | None = None) -> pgqueue.App:
    app = pgqueue.App(dsn, retry=pgqueue.RetryPolicy(base=30, cap=60), max_connections=4)

    @app.task(name="add")
    def add(a: int, b: int) -> dict[str, Any]:
        ctx = pgqueue.current_job()
        ctx.set_progress({"step": 1})
        return {"sum": a + b, "job": ctx.id, "attempt": ctx.attempt, "meta": ctx.meta}

    @app.task(name="boom", max_attempts=2)
    def boom(kind: str) -> None:
        if kind == "discard":
            raise pgqueue.Discard("bad input")
        raise ValueError(kind)

    @app.task(name="fan_out")
    def fan_out(n: int) -> list[int]:
        return [add.enqueue(i, i).id for i in range(n)]

    @app.task(name="aadd")
    async def aadd(a: int, b: int) -> dict[str, Any]:
        return {"sum": a + b, "loop": id(asyncio.get_running_loop()), "tuple": (a, b)}

    return app


# -- run_job ------------------------------------------------------------------------


def test_run_job_calls_the_task_as_a_worker_would() -> None:
    app = make_app()
    add = app.tasks["add"]
    out = testing.run_job(add.options(meta={"origin": "test"}), 2, b=3)
    assert out == {"sum": 5, "job": 0, "attempt": 1, "meta": {"origin": "test"}}
    assert testing.run_job(app.tasks["aadd"], 1, 2)["tuple"] == [1, 2]  # through JSON
    with pytest.raises(ValueError, match="nope"):
        testing.run_job(app.tasks["boom"], "nope")
    with pytest.raises(TypeError, match="not JSON"):
        testing.run_job(add, object(), 1)
    with pytest.raises(TypeError, match="add"):
        testing.run_job(add, 1)  # missing argument: the enqueue-time check


async def test_run_job_async_runs_on_the_callers_loop() -> None:
    app = make_app()
    out = await testing.run_job_async(app.tasks["aadd"], 1, 2)
    assert out["loop"] == id(asyncio.get_running_loop())
    assert (await testing.run_job_async(app.tasks["add"], 1, 1))["sum"] == 2


# -- eager mode ---------------------------------------------------------------------------


def test_eager_runs_inline_and_returns_the_finished_job() -> None:
    app = make_app("postgresql://nobody@127.0.0.1:1/none")  # never connected to
    add, fan_out = app.tasks["add"], app.tasks["fan_out"]
    with testing.eager(app) as ran:
        job = add.options(meta={"k": "v"}).enqueue(1, 2)
        parent = fan_out.enqueue(2)
        many = app.enqueue_many([add.job(5, 5), add.job(6, 6)])
    assert job.status == "succeeded" and job.attempts == 1 and job.finished_at is not None
    assert job.result == {"sum": 3, "job": job.id, "attempt": 1, "meta": {"k": "v"}}
    assert job.progress == {"step": 1}
    assert job.wait() == job.result and job.refresh() is job
    assert parent.result == [3, 4]  # the nested enqueues ran inline too
    assert [j.result["sum"] for j in many] == [10, 12]
    assert len(ran) == 6
    with pytest.raises(RuntimeError, match="only available inside"):
        pgqueue.current_job()  # the job context ends with the call


def test_eager_errors_propagate_or_become_the_outcome() -> None:
    app = make_app("postgresql://nobody@127.0.0.1:1/none")
    boom = app.tasks["boom"]
    with testing.eager(app), pytest.raises(ValueError, match="first"):
        boom.enqueue("first")
    with testing.eager(app, propagate=False):
        failed = boom.enqueue("again")
        dead = boom.enqueue("discard")
        unknown = app.task_ref("missing").enqueue()
        with pytest.raises(TypeError, match="not JSON"):
            boom.enqueue({1, 2})  # still refused before anything runs
    small = pgqueue.App("postgresql://nobody@127.0.0.1:1/none", max_payload=64)
    small.task(name="big")(lambda s: s)
    with testing.eager(small), pytest.raises(ValueError):
        small.tasks["big"].enqueue("x" * 100)  # the app's payload limit holds too
    assert failed.status == "failed" and failed.last_error == "ValueError: again"
    assert "Traceback" in failed.errors[0]["traceback"]
    assert dead.status == "dead" and dead.last_error == "Discard: bad input"
    assert unknown.status == "dead" and "missing" in (unknown.last_error or "")
    with pytest.raises(pgqueue.JobFailed):
        failed.wait()


async def test_eager_async_runs_on_the_callers_loop() -> None:
    app = make_app("postgresql://nobody@127.0.0.1:1/none")
    with testing.eager(app):
        job = await app.tasks["aadd"].enqueue_async(1, 2)
        sync_job = app.tasks["aadd"].enqueue(2, 2)  # sync enqueue under a loop: a thread's loop
        jobs = await app.enqueue_many_async([app.tasks["add"].job(1, 1)])
    assert job.result["loop"] == id(asyncio.get_running_loop())
    assert sync_job.result["sum"] == 4 and sync_job.result["loop"] != job.result["loop"]
    assert jobs[0].result["sum"] == 2


def test_eager_transactional_task_joins_the_callers_transaction(clean_db: str) -> None:
    app = make_app(clean_db)

    @app.task(name="tx", transactional=True)
    def tx(n: int, connection: Any) -> int:
        connection.execute("CREATE TABLE IF NOT EXISTS public.eager_tx (n int)")
        connection.execute("INSERT INTO public.eager_tx VALUES (%s)", (n,))
        return n

    with app, app.database.connection() as conn, testing.eager(app):
        with conn.transaction():
            assert tx.enqueue(7, connection=conn).result == 7
            assert conn.execute("SELECT n FROM public.eager_tx").fetchall() == [(7,)]
            conn.execute("DROP TABLE public.eager_tx")
        assert app.list_jobs() == []  # eager mode writes no job row


# -- what was enqueued -------------------------------------------------------------------


def test_enqueued_and_its_assertions(clean_db: str) -> None:
    with make_app(clean_db) as app:
        add = app.tasks["add"]
        first = add.options(meta={"tenant": 1, "x": 2}).enqueue(1, 2)
        add.options(queue="other").enqueue(3, 4)
        assert [j.id for j in testing.enqueued(app, add)] == [first.id, first.id + 1]
        assert [j.args for j in testing.enqueued(app, "add", queue="other")] == [[3, 4]]
        assert testing.enqueued(app, add, args=(1, 2), meta={"tenant": 1})[0].id == first.id
        assert testing.enqueued(app, status=("queued", "running"))
        assert testing.assert_enqueued(app, add, count=2)
        testing.refute_enqueued(app, add, args=[9, 9])
        testing.refute_enqueued(app, "boom")
        with pytest.raises(AssertionError, match=r"found 0\. Jobs of that task:\n  #1 add"):
            testing.assert_enqueued(app, add, args=[5, 5])
        with pytest.raises(AssertionError, match="expected no job matching task='add'"):
            testing.refute_enqueued(app, add, args=[1, 2])
        with pytest.raises(TypeError, match="unknown field colour"):
            testing.enqueued(app, colour="red")


# -- drain -------------------------------------------------------------------------------


def test_drain_runs_ready_jobs_with_a_real_worker(clean_db: str) -> None:
    with make_app(clean_db) as app:
        add, boom, fan_out = app.tasks["add"], app.tasks["boom"], app.tasks["fan_out"]
        done = add.enqueue(1, 1)
        parent = fan_out.enqueue(3)
        later = add.options(delay=3600).enqueue(2, 2)
        failing = boom.enqueue("x")
        assert testing.drain(app) == 6  # add, fan_out and its 3 children, boom's first attempt
        assert done.refresh().status == "succeeded"
        assert done.refresh().result["job"] == done.id
        assert len(parent.refresh().result) == 3
        assert later.refresh().status == "queued"  # scheduled: waits
        assert failing.refresh().status == "failed"  # its retry waits too (30 s backoff)
        assert testing.drain(app, include_scheduled=True) == 2  # later, and boom's last attempt
        assert later.refresh().status == "succeeded"
        assert failing.refresh().status == "dead" and failing.refresh().attempts == 2
        assert testing.drain(app) == 0


async def test_drain_async_on_the_running_loop(clean_db: str) -> None:
    app = make_app(clean_db)
    try:
        jobs = await app.enqueue_many_async([app.tasks["aadd"].job(i, i) for i in range(3)])
        assert len(await testing.assert_enqueued_async(app, "aadd", count=3, status="queued")) == 3
        await testing.refute_enqueued_async(app, "aadd", args=[9, 9])
        assert await testing.drain_async(app, "default") == 3
        assert len(await testing.enqueued_async(app, status="succeeded")) == 3
        assert [(await j.refresh_async()).result["sum"] for j in jobs] == [0, 2, 4]
        with pytest.raises(RuntimeError, match="drain_async"):
            testing.drain(app)

        @app.task(name="forever")
        async def forever() -> None:
            await asyncio.sleep(60)

        stuck = forever.enqueue()
        with pytest.raises(TimeoutError, match=r"still running after 0\.3s"):
            await testing.drain_async(app, timeout=0.3)
        assert (await stuck.refresh_async()).status == "queued"  # released by the abort
    finally:
        await app.close_async()


# -- the pytest plugin ---------------------------------------------------------------------


def test_pytest_plugin_fixtures_in_a_users_suite(tmp_path: Path, pg_dsn: str) -> None:
    """A user's suite: its own App module, the plugin's fixtures, no conftest of ours."""
    (tmp_path / "myapp.py").write_text(
        textwrap.dedent("""
        import pgqueue
        app = pgqueue.App()

        @app.task(name="greet")
        def greet(name: str) -> str:
            return f"hello {name}"
    """)
    )
    (tmp_path / "test_user.py").write_text(
        textwrap.dedent("""
        from pgqueue import testing
        import myapp

        def test_enqueue_then_drain(pgqueue_app):
            assert pgqueue_app is myapp.app
            myapp.greet.enqueue("ada")
            testing.assert_enqueued(pgqueue_app, myapp.greet, args=["ada"])
            assert testing.drain(pgqueue_app) == 1
            assert testing.enqueued(pgqueue_app, myapp.greet)[0].result == "hello ada"

        def test_clean_schema_per_test(pgqueue_app, pgqueue_db, pgqueue_dsn):
            assert pgqueue_db == pgqueue_dsn
            testing.refute_enqueued(pgqueue_app)
    """)
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--pgqueue-app",
         "myapp:app", str(tmp_path / "test_user.py")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path), "PGQUEUE_TEST_DSN": pg_dsn},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout
