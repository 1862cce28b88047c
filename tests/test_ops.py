"""Operations: queue controls, back-pressure, purge, pruning, their CLI."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest

import pgqueue
from pgqueue._sql import query
from pgqueue.cli._base import run
from pgqueue.maintenance.pruner import CATCH_UP_DELAY, Pruner


@pytest.fixture
def app(clean_db: str) -> Iterator[pgqueue.App]:
    with pgqueue.App(clean_db) as app:
        yield app


def claim(dsn: str, queues: list[str], limit: int = 10) -> list[Any]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        params = {
            "queues": queues,
            "limit": limit,
            "lease": 30.0,
            "worker_id": "test",
            "token": str(uuid.uuid4()),
        }
        return conn.execute(query("claim"), params).fetchall()


def test_paused_queue_is_not_claimed_until_resumed(app: pgqueue.App, clean_db: str) -> None:
    app.enqueue_many([app.task_ref("t", queue=q).job() for q in ("a", "a", "b")])
    app.pause_queue("a")
    assert {r[1] for r in claim(clean_db, ["a", "b"])} == {"b"}
    with psycopg.connect(clean_db, autocommit=True) as listener:
        listener.execute("LISTEN pgqueue_jobs")
        app.resume_queue("a")
        assert [n.payload for n in listener.notifies(timeout=1, stop_after=1)] == ["a"]
    assert len(claim(clean_db, ["a"])) == 2
    assert {q.name: q.paused for q in app.list_queues()} == {"a": False, "b": False}


def test_max_depth_refuses_the_whole_batch(app: pgqueue.App, clean_db: str) -> None:
    task = app.task_ref("t", queue="narrow")
    app.set_queue("narrow", max_depth=3)
    assert len(app.enqueue_many([task.job(i) for i in range(2)])) == 2
    with pytest.raises(pgqueue.QueueFull, match="narrow"):
        app.enqueue_many([task.job(i) for i in range(2)])  # 2 + 2 > 3: nothing inserted
    task.enqueue(3)
    with pytest.raises(pgqueue.QueueFull):
        task.enqueue(4)
    assert len(app.list_jobs(queue="narrow")) == 3
    # Other queues are not affected; clearing the limit lifts it.
    task.options(queue="wide").enqueue(1)
    app.set_queue("narrow", clear=("max_depth",))
    task.enqueue(5)
    with pytest.raises(ValueError, match="cannot clear"):
        app.set_queue("narrow", clear=("colour",))
    with pytest.raises(ValueError, match="max_depth"):
        app.set_queue("narrow", max_depth=-1)


async def test_max_depth_async(clean_db: str) -> None:
    async with pgqueue.App(clean_db) as app:
        app.set_queue("narrow", max_depth=0)
        with pytest.raises(pgqueue.QueueFull):
            await app.task_ref("t", queue="narrow").enqueue_async()


def set_finished(dsn: str, status: str, ids: list[int], age: timedelta) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "UPDATE pgqueue.jobs SET status = %s, finished_at = now() - %s WHERE id = ANY(%s)",
            (status, age, ids),
        )


def statuses(dsn: str) -> dict[int, str]:
    with psycopg.connect(dsn) as conn:
        return dict(conn.execute("SELECT id, status FROM pgqueue.jobs").fetchall())


def test_pruner_retention_defaults_and_overrides(app: pgqueue.App, clean_db: str) -> None:
    t = app.task_ref("t")
    jobs = [j.id for j in app.enqueue_many([t.job(i) for i in range(6)])]
    kept = [j.id for j in app.enqueue_many([t.options(queue="keep").job(i) for i in range(2)])]
    set_finished(clean_db, "succeeded", jobs[0:2], timedelta(days=2))  # past 1 day: pruned
    set_finished(clean_db, "cancelled", jobs[2:3], timedelta(hours=1))  # recent: kept
    set_finished(clean_db, "dead", jobs[3:4], timedelta(days=31))  # past 30 days: pruned
    set_finished(clean_db, "dead", jobs[4:5], timedelta(days=2))  # dead keep longer
    set_finished(clean_db, "succeeded", kept, timedelta(days=2))
    app.set_queue("keep", retention=7 * 86400)  # this queue keeps a week
    pruner = Pruner(app.database, batch=1)
    assert pruner.run_once() == 3
    left = statuses(clean_db)
    assert sorted(left) == sorted([jobs[2], jobs[4], jobs[5], *kept])
    assert left[jobs[5]] == "queued"
    # Injected time: a month later, everything finished goes, the queued job stays.
    later = datetime.now(timezone.utc) + timedelta(days=40)
    assert pruner.run_once(now=later) == 4
    assert statuses(clean_db) == {jobs[5]: "queued"}


def test_a_pass_stopped_at_its_cap_asks_for_the_next_one_at_once(
    app: pgqueue.App, clean_db: str
) -> None:
    t = app.task_ref("t")
    jobs = [j.id for j in app.enqueue_many([t.job(i) for i in range(5)])]
    set_finished(clean_db, "succeeded", jobs, timedelta(days=2))
    pruner = Pruner(app.database, batch=2, max_batches=2)
    try:
        assert pruner.loop_pass() == CATCH_UP_DELAY  # 4 of 5 deleted, one left
        assert len(statuses(clean_db)) == 1
        assert pruner.loop_pass() is None  # the last one: back to the usual interval
        assert statuses(clean_db) == {}
    finally:
        pruner.close()


def test_pruning_under_load_loses_no_unfinished_job(app: pgqueue.App, clean_db: str) -> None:
    t = app.task_ref("t")
    done = [j.id for j in app.enqueue_many([t.job(i) for i in range(3000)])]
    set_finished(clean_db, "succeeded", done, timedelta(days=3))
    stop = threading.Event()
    added: list[int] = []

    def produce() -> None:
        while not stop.is_set():
            added.extend(j.id for j in app.enqueue_many([t.job(i) for i in range(50)]))

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        pruner = Pruner(app.database, batch=100)
        deleted = pruner.run_once()
    finally:
        stop.set()
        producer.join()
    assert deleted == 3000
    left = statuses(clean_db)
    assert sorted(left) == sorted(added) and set(left.values()) == {"queued"}


def test_one_pruner_pass_at_a_time(app: pgqueue.App, clean_db: str) -> None:
    with psycopg.connect(clean_db, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(7250004)")
        assert Pruner(app.database).run_once() == 0
    p = Pruner(app.database, interval=0.05)
    p.start()
    p.start()  # idempotent
    p.stop()
    p.stop()


def test_purge(app: pgqueue.App, clean_db: str) -> None:
    t = app.task_ref("t")
    ids = [j.id for j in app.enqueue_many([t.job(i) for i in range(5)])]
    other = t.options(queue="other").enqueue().id
    set_finished(clean_db, "dead", ids[:2], timedelta(0))
    with psycopg.connect(clean_db) as conn:
        conn.execute("UPDATE pgqueue.jobs SET status = 'running',"
                     " leased_until = now() + interval '1 minute' WHERE id = %s", (ids[2],))
    with pytest.raises(ValueError, match="at least one filter"):
        app.purge()
    with pytest.raises(ValueError, match="running"):
        app.purge(statuses=["running"])
    assert app.purge(statuses=["dead"], batch_size=1) == 2
    assert app.purge(queue="default") == 2  # the running one stays
    assert sorted(statuses(clean_db)) == sorted([ids[2], other])


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = run(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_queue_and_purge_cli(app: pgqueue.App, clean_db: str, capsys: Any) -> None:
    app.task_ref("t", queue="mail").enqueue()
    assert cli(capsys, "queue", "pause", "mail", "--dsn", clean_db)[0] == 0
    code, out, _ = cli(capsys, "queue", "list", "--json", "--dsn", clean_db)
    assert code == 0 and json.loads(out)[0]["paused"] is True
    code, out, _ = cli(capsys, "queue", "set", "mail", "--max-running", "2", "--rate-limit",
                       "10", "--rate-period", "60", "--dsn", clean_db)  # fmt: skip
    assert code == 0 and "mail" in out
    settings = {q.name: q for q in app.list_queues()}["mail"]
    assert (settings.max_running, settings.rate_limit, settings.rate_period) == (2, 10, 60.0)
    code, _, err = cli(capsys, "queue", "set", "mail", "--max-running", "-1", "--dsn", clean_db)
    assert code == 2 and "max_running must be >= 0" in err
    code, _, err = cli(capsys, "purge", "--dsn", clean_db)
    assert code == 2 and "needs a filter" in err
    code, out, _ = cli(capsys, "purge", "--queue", "mail", "--yes", "--dsn", clean_db)
    assert code == 0 and "purged 1" in out
    code, out, _ = cli(capsys, "stats", "--watch", "0.01", "--iterations", "2", "--dsn", clean_db)
    assert code == 0 and out.count("pgqueue stats") == 2
