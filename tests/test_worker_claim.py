"""The worker's statements on their own: claim, complete (and its fence), heartbeat, release."""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
import pytest

from pgqueue._sql import query
from pgqueue.worker._bounds import ClaimBounds


def claim(conn: psycopg.Connection[Any], limit: int, queues: list[str] | None = None,
          lease: float = 30.0, worker: str = "w1") -> list[tuple[Any, ...]]:  # fmt: skip
    """Rows as (id, queue, task, args, kwargs, attempts, max_attempts, token, meta):
    the claim's token (one per claim) put in each row."""
    token = str(uuid.uuid4())
    params = {"queues": queues or ["default"], "limit": limit, "lease": lease,
              "worker_id": worker, "token": token}  # fmt: skip
    rows = conn.execute(query("claim"), params).fetchall()
    return [(*row[:7], token, row[7]) for row in rows]


def complete(conn: psycopg.Connection[Any], job_id: int, token: str,
             status: str = "succeeded", result: Any = None) -> list[tuple[Any, ...]]:  # fmt: skip
    params = {
        "ids": [job_id], "tokens": [token], "statuses": [status],
        "results": [None if result is None else json.dumps(result)], "delays": [None],
        "errors": [None], "entries": [None],
    }  # fmt: skip
    return conn.execute(query("complete"), params).fetchall()


def insert_jobs(conn: psycopg.Connection[Any], n: int, queue: str = "default") -> None:
    conn.execute(
        "INSERT INTO pgqueue.jobs (queue, task, priority, run_at)"
        " SELECT %s, 't', (i %% 5)::smallint, now() - make_interval(secs => i %% 100)"
        " FROM generate_series(1, %s) AS i",
        (queue, n),
    )


@pytest.fixture
def db(clean_db: str) -> Any:
    with psycopg.connect(clean_db, autocommit=True) as conn:
        yield conn


def test_claim_uses_the_partial_index_at_a_100k_backlog(db: psycopg.Connection[Any]) -> None:
    insert_jobs(db, 100_000)
    insert_jobs(db, 2_000, queue="other")
    db.execute("UPDATE pgqueue.jobs SET status = 'succeeded' WHERE id % 3 = 0")
    db.execute("VACUUM ANALYZE pgqueue.jobs")
    params = {"queues": ["default", "other"], "limit": 50, "lease": 30.0, "worker_id": "w",
              "token": str(uuid.uuid4())}  # fmt: skip
    with db.transaction(force_rollback=True):
        plan = "\n".join(
            r[0] for r in db.execute("EXPLAIN (ANALYZE, COSTS OFF) " + query("claim"), params)
        )
    assert "jobs_claim_idx" in plan, plan
    assert "Seq Scan on jobs" not in plan, plan
    assert "Sort" not in plan.split("LockRows")[-1], plan  # the index gives the order


def test_claim_takes_up_to_limit_in_order_and_skips_locked_rows(
    db: psycopg.Connection[Any], clean_db: str
) -> None:
    insert_jobs(db, 10)
    with psycopg.connect(clean_db) as other:  # holds its claim open (not autocommit)
        first = claim(other, 4, worker="w1")
        second = claim(db, 100, worker="w2")  # does not wait for the first
        other.commit()
    assert len(first) == 4 and len(second) == 6
    assert not {r[0] for r in first} & {r[0] for r in second}
    rows = db.execute(
        "SELECT id FROM pgqueue.jobs ORDER BY priority DESC, run_at, id LIMIT 4"
    ).fetchall()
    assert sorted(r[0] for r in first) == sorted(r[0] for r in rows)
    states = db.execute(
        "SELECT status, attempts, worker_id, leased_until > now(), lease_token IS NOT NULL"
        " FROM pgqueue.jobs WHERE id = %s",
        (first[0][0],),
    ).fetchone()
    assert states == ("running", 1, "w1", True, True)


@pytest.mark.parametrize("statement", ["claim", "claim_after"])
def test_claim_is_durable_unless_claim_commit_says_otherwise(
    db: psycopg.Connection[Any], statement: str
) -> None:
    """A claim commits with the session's synchronous_commit (a crash cannot undo a
    started attempt: test_claim_durability); ``pgqueue.claim_commit`` overrides it for
    the claim's transaction alone. The bounded claim (claim_after) does the same."""
    insert_jobs(db, 2)
    params = {"queues": ["default"], "limit": 1, "lease": 30.0, "worker_id": "w1",
              **ClaimBounds().segments(["default"])}  # fmt: skip
    db.execute("SET synchronous_commit = on")
    for setting, expected in ((None, "on"), ("off", "off")):
        if setting is not None:
            db.execute("SELECT set_config('pgqueue.claim_commit', %s, false)", (setting,))
        with db.transaction():
            rows = db.execute(query(statement), {**params, "token": str(uuid.uuid4())})
            assert len(rows.fetchall()) == 1
            assert db.execute("SHOW synchronous_commit").fetchone() == (expected,)
    assert db.execute("SHOW synchronous_commit").fetchone() == ("on",)  # that transaction only


def test_claim_skips_future_and_paused(db: psycopg.Connection[Any]) -> None:
    db.execute(
        "INSERT INTO pgqueue.jobs (queue, task, run_at) VALUES ('default', 't', now() + '1h')"
    )
    db.execute("INSERT INTO pgqueue.jobs (queue, task) VALUES ('paused', 't')")
    db.execute("INSERT INTO pgqueue.queues (name, paused) VALUES ('paused', true)")
    assert claim(db, 10, ["default", "paused"]) == []


def test_a_worker_that_lost_its_lease_cannot_finish_the_job(db: psycopg.Connection[Any]) -> None:
    """The fence: rescue, re-claim, then the zombie's late completion is rejected."""
    insert_jobs(db, 1)
    (job_id, *_, zombie_token, _meta) = claim(db, 1, lease=30, worker="zombie")[0]
    db.execute("UPDATE pgqueue.jobs SET leased_until = now() - interval '1s'")
    rescued = db.execute(query("rescue"), {"limit": 10, "after": None}).fetchall()
    assert [(r[0], r[1]) for r in rescued] == [(job_id, "queued")]
    (_, *_, live_token, _meta) = claim(db, 1, worker="alive")[0]
    assert live_token != zombie_token

    hb = {"ids": [job_id], "tokens": [zombie_token], "leases": [30.0]}
    assert db.execute(query("heartbeat"), hb).fetchall() == []  # no renewal for the zombie
    assert complete(db, job_id, zombie_token, result="zombie") == []  # fenced
    assert complete(db, job_id, live_token, result="alive") != []
    status, result, attempts, errors = (
        db.execute(
            "SELECT status, result, attempts, errors FROM pgqueue.jobs WHERE id = %s", (job_id,)
        ).fetchone()
        or ()
    )
    assert (status, result, attempts) == ("succeeded", "alive", 2)
    assert errors[0]["error"].startswith("LeaseExpired: worker zombie")
    assert complete(db, job_id, live_token, status="failed") == []  # finished: no second outcome


def test_rescue_sends_exhausted_jobs_to_dead(db: psycopg.Connection[Any]) -> None:
    db.execute("INSERT INTO pgqueue.jobs (task, max_attempts) VALUES ('t', 1)")
    claim(db, 1)
    db.execute("UPDATE pgqueue.jobs SET leased_until = now() - interval '1s'")
    rows = db.execute(query("rescue"), {"limit": 10, "after": None}).fetchall()
    assert [r[1] for r in rows] == ["dead"]
    assert db.execute("SELECT finished_at IS NOT NULL FROM pgqueue.jobs").fetchone() == (True,)


def test_release_gives_back_unstarted_without_counting_an_attempt(
    db: psycopg.Connection[Any],
) -> None:
    insert_jobs(db, 2)
    (a, *_, ta, _), (b, *_, tb, _) = claim(db, 2)
    params = {"ids": [a, b], "tokens": [ta, tb], "started": [False, True]}
    assert len(db.execute(query("release"), params).fetchall()) == 2
    rows = db.execute(
        "SELECT id, status, attempts, worker_id, lease_token FROM pgqueue.jobs ORDER BY id"
    ).fetchall()
    assert sorted(rows) == sorted([(a, "queued", 0, None, None), (b, "queued", 1, None, None)])


def test_complete_params_survive_any_text(db: psycopg.Connection[Any]) -> None:
    from pgqueue.worker._completer import complete_params

    insert_jobs(db, 3)
    (a, *_, token, _), (b, *_), (c, *_) = claim(db, 3)
    nasty = 'q"uo\\te, {brace} NULL\n\ttab \u2603 ""'
    batch = [
        (a, token, "succeeded", json.dumps({"s": nasty, "n": [1, None]}), None, None, None),
        (b, token, "failed", None, 2.5, nasty, json.dumps({"error": nasty})),
        (c, token, "dead", None, None, "", json.dumps({"error": ""})),
    ]
    done = db.execute(query("complete"), complete_params(batch)).fetchall()
    assert sorted(r[0] for r in done) == [a, b, c]
    rows = db.execute(
        "SELECT id, status, result, last_error, errors, run_at > now() + interval '2 seconds'"
        " FROM pgqueue.jobs ORDER BY id"
    ).fetchall()
    assert rows == [
        (a, "succeeded", {"s": nasty, "n": [1, None]}, None, [], False),
        (b, "failed", None, nasty, [{"error": nasty}], True),
        (c, "dead", None, "", [{"error": ""}], False),
    ]
