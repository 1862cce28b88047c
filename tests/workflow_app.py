"""The workflows the workflow tests run, in this process or in worker subprocesses
(``pgqueue worker workflow_app:app``; ``tests/`` is on their ``PYTHONPATH``).

Every step notes each execution in ``public.wf_runs`` over a connection of its
own, outside any transaction, so a step run twice cannot hide.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

import pgqueue

app = pgqueue.App(
    lease=float(os.environ.get("PGQUEUE_TEST_LEASE", "30")),
    retry=pgqueue.RetryPolicy(base=0.01, cap=0.05),
    max_connections=6,
)

DDL = """
CREATE TABLE IF NOT EXISTS public.wf_runs (
    step text NOT NULL, key text NOT NULL, pid integer NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE IF NOT EXISTS public.wf_inventory (order_id text NOT NULL);
TRUNCATE public.wf_runs, public.wf_inventory;
"""

_local = threading.local()


def prepare(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(DDL)


@pytest.fixture(name="app")
def app_fixture(clean_db: str) -> Iterator[pgqueue.App]:
    """This module's app on the test's clean database (tests import the fixture)."""
    prepare(clean_db)
    app.use_dsn(clean_db)
    yield app
    app.close()


def runs(dsn: str, step: str, key: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM public.wf_runs WHERE step = %s AND key = %s", (step, key)
        ).fetchone()
    assert row is not None
    return int(row[0])


def note(step: str, key: str) -> int:
    """Count an execution of ``step`` for ``key``; returns how many there were, this one too."""
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = _local.conn = psycopg.connect(app.dsn, autocommit=True)
    row = conn.execute(
        "WITH ins AS (INSERT INTO public.wf_runs (step, key, pid) VALUES (%s, %s, %s))"
        " SELECT count(*) + 1 FROM public.wf_runs WHERE step = %s AND key = %s",
        (step, key, os.getpid(), step, key),
    ).fetchone()
    assert row is not None
    return int(row[0])


# -- the order-fulfilment example ---------------------------------------------------------


@app.step(max_attempts=3)
def charge_payment(order_id: str) -> str:
    note("charge_payment", order_id)
    return f"ch-{order_id}"


@app.step(transactional=True)
def reserve_inventory(order_id: str, hang: float, connection: Any) -> bool:
    first = note("reserve_inventory", order_id) == 1
    connection.execute("INSERT INTO public.wf_inventory (order_id) VALUES (%s)", (order_id,))
    if first and hang:
        time.sleep(hang)  # the test kills the worker here, its transaction open
    return True


@app.step
def create_shipment(order_id: str) -> str:
    note("create_shipment", order_id)
    return f"sh-{order_id}"


@app.step
def refund_payment(charge_id: str) -> str:
    note("refund_payment", charge_id)
    return "refunded"


@app.workflow(queue="orders", name="wf.fulfil_order")
def fulfil_order(order_id: str, hang: float = 0.0, wait: float = 30.0, nap: float = 0.0) -> str:
    charge_id = charge_payment(order_id)
    reserve_inventory(order_id, hang)
    ok = pgqueue.wait_for_event("inventory_confirmed", timeout=wait)
    if ok:
        pgqueue.sleep(nap)  # durable: frees the worker
        return create_shipment(order_id)
    refund_payment(charge_id)
    return "refunded"


# -- smaller ones -----------------------------------------------------------------------


@app.step(name="wf.step_a")
def step_a(key: str) -> str:
    note("a", key)
    return "a"


@app.step(name="wf.step_b")
def step_b(key: str) -> str:
    note("b", key)
    return "b"


@app.workflow(name="wf.napper")
def napper(key: str, seconds: float) -> dict[str, Any]:
    before = pgqueue.now()
    step_a(key)
    pgqueue.sleep(seconds)
    after = pgqueue.now()
    return {"slept": (after - before).total_seconds(), "b": step_b(key)}


@app.workflow(name="wf.anapper")
async def anapper(key: str, seconds: float) -> dict[str, Any]:
    before = await pgqueue.now_async()
    await step_a(key)  # a sync step, awaited: it runs in a thread
    await pgqueue.sleep_async(seconds)
    after = await pgqueue.now_async()
    return {"slept": (after - before).total_seconds(), "r": await pgqueue.random_async()}


@app.workflow(name="wf.waiter")
def waiter(key: str, timeout: float) -> dict[str, Any]:
    got = pgqueue.wait_for_event("go", timeout=timeout)
    if got is None:
        return {"timeout": True, "b": step_b(key)}
    return {"got": got, "a": step_a(key)}


@app.workflow(name="wf.await_waiter")
async def await_waiter(key: str) -> Any:
    return await pgqueue.wait_for_event_async("go", timeout=30)


FICKLE: dict[str, bool] = {}  # key -> call step_a first (flipped by a test between attempts)


@app.workflow(name="wf.fickle")
def fickle(key: str) -> str:
    if FICKLE.get(key, True):
        step_a(key)
    else:
        step_b(key)
    pgqueue.sleep(0.2)
    return "done"


@app.step(name="wf.slow")
def slow(key: str, seconds: float) -> str:
    note("slow", key)
    time.sleep(seconds)
    return "slow"


@app.workflow(name="wf.cancellable")
def cancellable(key: str, seconds: float) -> str:
    step_a(key)
    slow(key, seconds)
    return step_b(key)


@app.step(name="wf.flaky", max_attempts=3)
def flaky(key: str, fail: int) -> int:
    n = note("flaky", key)
    if n <= fail:
        raise RuntimeError(f"flaky run {n}")
    return n


@app.workflow(name="wf.retrying")
def retrying(key: str, fail: int) -> Any:
    try:
        return flaky(key, fail)
    except pgqueue.StepFailed as exc:
        return {"failed": exc.error, "b": step_b(key)}


@app.task(name="wf.double", queue="math")
def double(x: int) -> int:
    note("double", str(x))
    return 2 * x


@app.task(name="wf.boom", queue="math", max_attempts=1)
def boom() -> None:
    raise ValueError("boom")


@app.workflow(name="wf.child")
def child(x: int) -> int:
    step_a(str(x))
    return x + 1


@app.workflow(name="wf.parent")
def parent(x: int) -> dict[str, Any]:
    doubled = pgqueue.run_task(double.job(x))
    plus = pgqueue.run_task(child.job(doubled))
    try:
        pgqueue.run_task(boom.job())
        failed = None
    except pgqueue.StepFailed as exc:
        failed = exc.error
    return {"doubled": doubled, "plus": plus, "failed": failed}


@app.workflow(name="wf.aparent")
async def aparent(x: int) -> int:
    return int(await pgqueue.run_task_async(double.job(x)))


@app.step(name="wf.tx_slow", transactional=True, timeout=0.2)
def tx_slow(connection: Any) -> None:
    connection.execute("SELECT pg_sleep(5)")


@app.step(name="wf.async_slow", timeout=0.2)
async def async_slow() -> None:
    await asyncio.sleep(5)


@app.workflow(name="wf.timeouts")
async def timeouts() -> list[str]:
    out = []
    for step in (tx_slow, async_slow):  # tx_slow is sync: it runs in a thread
        try:
            await step()
            out.append("ran")
        except pgqueue.StepFailed as exc:
            out.append(exc.error.partition(":")[0])
    return out
