"""Retry and dead-letter replay skip jobs whose unique key is held again, and go on."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

import pgqueue
from pgqueue.cli._base import run


@pytest.fixture
def app(clean_db: str) -> Iterator[pgqueue.App]:
    with pgqueue.App(clean_db) as application:
        yield application


def kill(dsn: str, *ids: int) -> None:
    """Mark jobs dead, as the worker does when their attempts are used up."""
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "UPDATE pgqueue.jobs SET status = 'dead', finished_at = now(), attempts = 3"
            " WHERE id = ANY(%s)",
            (list(ids),),
        )


def status(dsn: str, job_id: int) -> str:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT status FROM pgqueue.jobs WHERE id = %s", (job_id,)).fetchone()
    assert row is not None
    return str(row[0])


def held_dead_job(app: pgqueue.App, dsn: str, key: str = "k") -> tuple[int, int]:
    """A dead job whose key a newer unfinished job holds: ``(dead id, holder id)``."""
    task = app.task_ref("t.a")
    dead = task.options(unique_key=key).enqueue(1).id
    kill(dsn, dead)
    holder = task.options(unique_key=key).enqueue(2).id
    assert holder != dead
    return dead, holder


def test_replay_skips_a_held_key_and_replays_the_rest(app: pgqueue.App, clean_db: str) -> None:
    dead, holder = held_dead_job(app, clean_db)
    plain = app.task_ref("t.a").enqueue(3).id
    kill(clean_db, plain)

    replayed = app.replay_dead()

    assert replayed == 1 and isinstance(replayed, int)
    assert replayed.skipped == [dead]
    assert status(clean_db, plain) == "queued"
    assert (status(clean_db, dead), status(clean_db, holder)) == ("dead", "queued")


def test_replay_moves_past_skipped_jobs_batch_after_batch(app: pgqueue.App, clean_db: str) -> None:
    first, _ = held_dead_job(app, clean_db, "k1")
    second, _ = held_dead_job(app, clean_db, "k2")
    plain = [app.task_ref("t.b").enqueue(i).id for i in range(3)]
    kill(clean_db, *plain)

    replayed = app.replay_dead(batch_size=1)

    assert (replayed, replayed.skipped) == (3, [first, second])
    assert [status(clean_db, i) for i in plain] == ["queued"] * 3


def test_two_dead_jobs_with_one_key_replay_one(app: pgqueue.App, clean_db: str) -> None:
    task = app.task_ref("t.a")
    older = task.options(unique_key="k").enqueue(1).id
    kill(clean_db, older)
    newer = task.options(unique_key="k").enqueue(2).id
    kill(clean_db, newer)

    replayed = app.replay_dead()

    assert (replayed, replayed.skipped) == (1, [newer])
    assert status(clean_db, older) == "queued"


def test_a_key_held_by_another_task_does_not_block(app: pgqueue.App, clean_db: str) -> None:
    mine = app.task_ref("t.a").options(unique_key="k").enqueue(1).id
    kill(clean_db, mine)
    app.task_ref("t.b").options(unique_key="k").enqueue(2)  # another task's key

    replayed = app.replay_dead()

    assert (replayed, replayed.skipped) == (1, [])


def test_retry_skips_a_held_key_and_retries_the_rest(app: pgqueue.App, clean_db: str) -> None:
    dead, _ = held_dead_job(app, clean_db)
    plain = app.task_ref("t.a").enqueue(3).id
    kill(clean_db, plain)

    retried = app.retry_jobs([dead, plain])

    assert retried == [plain] and isinstance(retried, list)
    assert retried.skipped == [dead]
    assert status(clean_db, dead) == "dead"


async def test_retry_async_reports_skipped(app: pgqueue.App, clean_db: str) -> None:
    dead, _ = held_dead_job(app, clean_db)

    retried = await app.retry_jobs_async([dead])

    assert (retried, retried.skipped) == ([], [dead])


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = run(list(argv))
    out, _ = capsys.readouterr()
    return code, out


def test_cli_replay_and_retry_print_the_skipped(
    app: pgqueue.App, clean_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    dead, _ = held_dead_job(app, clean_db)
    plain = app.task_ref("t.a").enqueue(3).id
    kill(clean_db, plain)

    code, out = cli(capsys, "dead", "replay", "--dsn", clean_db)
    assert code == 0
    assert out.strip() == (
        f"replayed 1 dead job(s); skipped 1, unique key held by an unfinished job: [{dead}]"
    )

    code, out = cli(capsys, "retry", str(dead), "--dsn", clean_db)
    assert code == 1
    assert out.strip() == (
        f"requeued 0 job(s); skipped 1, unique key held by an unfinished job: [{dead}]"
    )


def test_result_types_are_public() -> None:
    values: list[Any] = [pgqueue.Replayed(2, [5, 3]), pgqueue.Retried([4, 1], [9])]
    assert values[0] == 2 and values[0].skipped == [3, 5]
    assert values[1] == [1, 4] and values[1].skipped == [9]
