"""The chaos harness's checks catch what they are there to catch.

Each test writes, with plain SQL, the history a defect would leave (a lost job, a
transactional effect twice, an at-least-once repeat nobody explains, an attempt
count below the executions, a cron second fired twice or skipped) and proves
the check fails on it, and passes on the healthy history beside it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.chaos import checks, clock  # noqa: E402
from benchmarks.chaos.tasks import SCHEMA  # noqa: E402
from pgqueue._migrate import migrate_dsn  # noqa: E402


@pytest.fixture
def db(fresh_db_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    migrate_dsn(fresh_db_dsn)
    with psycopg.connect(fresh_db_dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)
        yield conn


def job(conn: psycopg.Connection[Any], task: str, seq: int, *, status: str = "succeeded",
        attempts: int = 1, errors: list[dict[str, Any]] | None = None,
        meta: dict[str, Any] | None = None) -> int:  # fmt: skip
    row = conn.execute(
        "INSERT INTO pgqueue.jobs (task, queue, args, status, attempts, errors, meta, finished_at)"
        " VALUES (%s, 'chaos', %s, %s, %s, %s, %s, now()) RETURNING id",
        (task, json.dumps([seq]), status, attempts, json.dumps(errors or []),
         json.dumps(meta or {})),
    ).fetchone()  # fmt: skip
    assert row is not None
    return int(row[0])


def effect(conn: psycopg.Connection[Any], job_id: int, attempt: int, kind: str) -> None:
    conn.execute("INSERT INTO chaos.effects (job_id, attempt, pid, kind) VALUES (%s, %s, 1, %s)",
                 (job_id, attempt, kind))  # fmt: skip


def test_lost_counts_unfinished_jobs_missing_ids_and_missing_sequence_numbers(db: Any) -> None:
    a = job(db, "chaos.alo", 0)
    assert checks.lost(db, [a], 1)["ok"]
    job(db, "chaos.tx", 1, status="dead")
    result = checks.lost(db, [a, 999], 3)
    assert (result["not_succeeded"], result["produced_ids_missing"],
            result["sequence_numbers_missing"]) == (1, 1, 2)  # fmt: skip
    assert not result["ok"]


def test_a_transactional_effect_twice_fails(db: Any) -> None:
    once = job(db, "chaos.tx", 0, attempts=2)
    effect(db, once, 2, "tx")
    assert checks.transactional(db)["ok"]
    twice = job(db, "chaos.tx", 1, attempts=2)
    effect(db, twice, 1, "tx")
    effect(db, twice, 2, "tx")
    result = checks.transactional(db)
    assert result["duplicated"] == 1 and result["effect_not_from_last_attempt"] == 1
    assert not result["ok"]


def test_an_at_least_once_repeat_needs_the_attempts_error(db: Any) -> None:
    lapsed = {"attempt": 1, "error": "LeaseExpired: worker h:1:a lost the job"}
    explained = job(db, "chaos.alo", 0, attempts=2, errors=[lapsed])
    effect(db, explained, 1, "alo")
    effect(db, explained, 2, "alo")
    result = checks.at_least_once(db)
    assert result["ok"] and result["explained_by"] == {"LeaseExpired": 1}
    silent = job(db, "chaos.alo", 1, attempts=2)
    effect(db, silent, 1, "alo")
    effect(db, silent, 2, "alo")
    result = checks.at_least_once(db)
    assert result["unexplained_sample"] == [(silent, 1)] and not result["ok"]


def test_two_executions_under_one_attempt_undercount(db: Any) -> None:
    fine = job(db, "chaos.alo", 0, attempts=2)
    effect(db, fine, 1, "alo")
    effect(db, fine, 2, "alo")
    assert checks.undercount(db)["ok"]
    under = job(db, "chaos.alo", 1, attempts=1)
    effect(db, under, 1, "alo")
    effect(db, under, 1, "alo")
    assert checks.undercount(db)["sample"] == [under]


@pytest.mark.parametrize(("seconds", "doubled", "missing"),
                         [([0, 1, 2, 3], 0, 0), ([0, 1, 1, 2], 1, 0), ([0, 1, 3], 0, 1)])
def test_cron_fires_doubled_and_missing(db: Any, seconds: list[int], doubled: int,
                                        missing: int) -> None:  # fmt: skip
    for n, s in enumerate(seconds):
        job(db, "chaos.tick", n, meta={"schedule": "tick",
                                       "scheduled_for": f"2026-12-01T10:00:0{s}+00:00"})
    result = checks.cron(db, "tick")
    assert (result["doubled"], result["missing"], result["ok"]) == (
        doubled, missing, doubled == missing == 0)


def test_a_new_wall_clock_read_must_be_argued(tmp_path: Path) -> None:
    assert clock.check()["ok"]
    package = tmp_path / "pgqueue"
    (package / "sql").mkdir(parents=True)
    (package / "lease.py").write_text("import time\nuntil = time.time() + 30\n")
    result = clock.check(tmp_path)
    assert result["unargued"] == ["pgqueue/lease.py:2"] and not result["ok"]
