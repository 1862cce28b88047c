"""The rescuer's moving bound: a pass scans from the last cutoff, a full pass from the start."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from test_heartbeat import claim_jobs
from test_worker_app import prepare_tables, scalar

import pgqueue
from pgqueue.maintenance import Rescuer
from pgqueue.maintenance.rescuer import LOCK_KEY
from pgqueue.worker._heartbeat import Heartbeat


@pytest.fixture
def dsn(clean_db: str) -> str:
    prepare_tables(clean_db)
    return clean_db


@pytest.fixture
def rescuer(dsn: str) -> Iterator[Rescuer]:
    app = pgqueue.App(dsn)
    # No full pass but the first, unless a test asks for one.
    rescuer = Rescuer(app.database, interval=60, full_every=3600)
    yield rescuer
    rescuer.stop()
    app.close()


def running_job(dsn: str) -> tuple[int, str]:
    """A claimed job (30 s lease) and its lease token."""
    ids, token = claim_jobs(dsn, 1)
    return ids[0], token


def set_lease(dsn: str, job_id: int, expression: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"UPDATE pgqueue.jobs SET leased_until = {expression} WHERE id = %s",
                     (job_id,))  # fmt: skip


def status(dsn: str, job_id: int) -> str:
    return str(scalar(dsn, "SELECT status FROM pgqueue.jobs WHERE id = %s", (job_id,)))


def test_a_bounded_pass_rescues_what_lapsed_since_the_previous_pass(
    dsn: str, rescuer: Rescuer
) -> None:
    job_id, _ = running_job(dsn)
    assert rescuer.run_once() == 0  # the first pass (a full one) sets the bound
    first_cutoff = rescuer.after
    assert first_cutoff is not None
    set_lease(dsn, job_id, "now()")  # lapses after the bound

    assert rescuer.run_once() == 1
    assert status(dsn, job_id) == "queued"
    assert rescuer.after is not None and rescuer.after > first_cutoff


def test_a_lease_behind_the_bound_is_rescued_by_the_full_pass(dsn: str, rescuer: Rescuer) -> None:
    job_id, _ = running_job(dsn)
    assert rescuer.run_once() == 0
    # Lapsed a minute before the previous pass's cutoff, yet that pass did not see it
    # (what a claim committed more than a lease after it began, or a row locked at
    # that moment, leaves behind).
    set_lease(dsn, job_id, "now() - interval '1 minute'")

    assert rescuer.run_once() == 0  # the bounded pass starts after it
    assert status(dsn, job_id) == "running"

    rescuer.full_every = 0.0  # the full pass is due
    assert rescuer.run_once() == 1
    assert status(dsn, job_id) == "queued"


def test_a_heartbeated_job_is_not_rescued(dsn: str, rescuer: Rescuer) -> None:
    job_id, token = running_job(dsn)
    assert rescuer.run_once() == 0
    set_lease(dsn, job_id, "now()")  # about to be rescued ...
    app = pgqueue.App(dsn)
    beat = Heartbeat(app.database, worker_id="w", queues=["default"], concurrency=1, interval=60,
                     held=lambda: [(job_id, token, 30.0)], on_lost=lambda ids: None,
                     on_cancel=lambda ids: None)  # fmt: skip
    try:
        beat.beat()  # ... when its worker renews it
    finally:
        beat.stop()
        app.close()

    assert rescuer.run_once() == 0  # bounded
    rescuer.full_every = 0.0
    assert rescuer.run_once() == 0  # full
    assert status(dsn, job_id) == "running"
    assert scalar(dsn, "SELECT lease_token::text FROM pgqueue.jobs WHERE id = %s",
                  (job_id,)) == token  # fmt: skip


def test_a_skipped_turn_keeps_the_bound(dsn: str, rescuer: Rescuer) -> None:
    job_id, _ = running_job(dsn)
    assert rescuer.run_once() == 0
    bound = rescuer.after
    set_lease(dsn, job_id, "now()")
    with psycopg.connect(dsn) as other:  # another process's rescuer, mid-pass
        other.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        assert rescuer.run_once() == 0
    assert rescuer.after == bound
    assert rescuer.run_once() == 1  # the next turn still scans from the old bound

