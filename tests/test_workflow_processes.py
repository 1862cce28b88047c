"""Durable workflows across real worker processes: SIGKILL mid-step, restarts, events.

The workers run ``pgqueue worker workflow_app:app`` in subprocesses with short
leases; the steps count their executions in ``public.wf_runs``.
"""

from __future__ import annotations

import signal

import workflow_app as wf
from test_worker_app import scalar, wait_until, worker_process
from workflow_app import app_fixture  # noqa: F401  (the `app` fixture)

import pgqueue

LEASE = 1.0  # seconds: a killed worker's workflow comes back quickly
APP = "workflow_app:app"
FAST = ("--poll-interval", "0.2", "--rescue-interval", "0.2")


def waiting_for(handle: pgqueue.WorkflowHandle, kind: str) -> bool:
    steps = handle.steps()
    return bool(steps) and steps[-1].kind == kind and not steps[-1].finished


def test_order_fulfilment_survives_a_sigkill_during_a_transactional_step(
    app: pgqueue.App, clean_db: str
) -> None:
    handle = wf.fulfil_order.start("o-42", hang=60.0, wait=60.0, nap=0.5)
    with worker_process(clean_db, *FAST, "--no-rescue", lease=LEASE, app=APP) as first:
        wait_until(lambda: wf.runs(clean_db, "reserve_inventory", "o-42") == 1)
        first.signal(signal.SIGKILL)  # in reserve_inventory, its transaction open
        assert first.wait() == -signal.SIGKILL
    assert wf.runs(clean_db, "charge_payment", "o-42") == 1
    with worker_process(clean_db, *FAST, lease=LEASE, app=APP):
        wait_until(lambda: waiting_for(handle, "event"))  # rescued, replayed, now waiting
        app.send_event(handle.id, "inventory_confirmed", True)
        assert handle.wait(timeout=30) == "sh-o-42"
    # charge_payment was replayed from its checkpoint, not run again; the killed
    # reserve_inventory rolled back with its transaction, the second run committed once.
    assert wf.runs(clean_db, "charge_payment", "o-42") == 1
    assert wf.runs(clean_db, "reserve_inventory", "o-42") == 2
    assert scalar(clean_db, "SELECT count(*) FROM public.wf_inventory WHERE order_id = 'o-42'") == 1
    assert wf.runs(clean_db, "create_shipment", "o-42") == 1
    assert wf.runs(clean_db, "refund_payment", "ch-o-42") == 0
    assert [(s.seq, s.kind, s.name.rpartition(".")[2]) for s in handle.steps()] == [
        (0, "workflow", "fulfil_order"), (1, "step", "charge_payment"),
        (2, "step", "reserve_inventory"), (3, "event", "wait_for_event:inventory_confirmed"),
        (4, "sleep", "sleep"), (5, "step", "create_shipment"),
    ]  # fmt: skip
    job = app.get_job(handle.id)
    assert job.attempts == 2  # the attempt lost with the killed worker counts; waits do not
    assert "LeaseExpired" in job.errors[0]["error"]


def test_a_workflow_sleeping_across_a_worker_restart_completes(
    app: pgqueue.App, clean_db: str
) -> None:
    handle = wf.napper.start("s1", 3.0)
    with worker_process(clean_db, *FAST, lease=LEASE, app=APP) as first:
        wait_until(lambda: waiting_for(handle, "sleep"))
        assert handle.status() == "queued"
        first.signal(signal.SIGTERM)
        assert first.wait() == 0  # nothing was running: a clean stop
    with worker_process(clean_db, *FAST, lease=LEASE, app=APP):
        result = handle.wait(timeout=30)
    assert result["b"] == "b" and result["slept"] >= 3.0
    assert wf.runs(clean_db, "a", "s1") == 1 and wf.runs(clean_db, "b", "s1") == 1


def test_an_idle_worker_resumes_a_workflow_on_send_event(
    app: pgqueue.App, clean_db: str
) -> None:
    handle = wf.waiter.start("e1", 3600)
    with worker_process(clean_db, *FAST, lease=LEASE, app=APP):
        wait_until(lambda: waiting_for(handle, "event"))
        app.send_event(handle.id, "go", {"ok": True})
        assert handle.wait(timeout=30) == {"got": {"ok": True}, "a": "a"}
