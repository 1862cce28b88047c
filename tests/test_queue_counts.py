"""The per-queue counts (``pgqueue stats``, the metrics collector's queue gauges): every
state in its column, finished jobs outside the last minute in none, and the plan reads
the partial indexes, not every finished job the retention keeps."""

from __future__ import annotations

import psycopg

import pgqueue
from pgqueue._sql import query

STATES = """
UPDATE pgqueue.jobs SET
    status = s.status,
    run_at = now() + s.run_in,
    finished_at = CASE WHEN s.status IN ('succeeded', 'dead', 'cancelled')
                       THEN now() - s.finished_ago END,
    leased_until = CASE WHEN s.status = 'running' THEN now() + interval '1 minute' END
FROM (VALUES
    (1, 'queued', interval '-1 minute', NULL::interval),   -- ready
    (2, 'queued', interval '1 hour', NULL),                -- scheduled
    (3, 'running', interval '-1 minute', NULL),
    (4, 'running', interval '-1 minute', NULL),
    (5, 'failed', interval '1 minute', NULL),              -- retrying
    (6, 'failed', interval '-1 minute', NULL),             -- a retry now due: ready
    (7, 'dead', interval '-1 minute', interval '1 day'),
    (8, 'succeeded', interval '-1 minute', interval '5 seconds'),
    (9, 'succeeded', interval '-1 minute', interval '1 hour'),
    (10, 'cancelled', interval '-1 minute', interval '5 seconds'),
    (11, 'blocked', interval '-1 minute', NULL)
) AS s(n, status, run_in, finished_ago)
WHERE pgqueue.jobs.id = (SELECT min(id) FROM pgqueue.jobs) + s.n - 1
"""


def test_counts_by_state(clean_db: str) -> None:
    with pgqueue.App(clean_db) as app:
        app.enqueue_many([app.task_ref("t", queue="mail").job(i) for i in range(11)])
        with psycopg.connect(clean_db, autocommit=True) as conn:
            conn.execute(STATES)
        (stats,) = app.queue_stats()
        metrics = psycopg.connect(clean_db).execute(query("metrics_queues")).fetchall()
    assert {k: v for k, v in stats.items() if k != "oldest_waiting_seconds"} == {
        "queue": "mail", "queued": 1, "scheduled": 1, "blocked": 1, "running": 2, "retrying": 2,
        "dead": 1,
        "done_last_minute": 1,
    }  # fmt: skip
    assert stats["oldest_waiting_seconds"] >= 60
    ((queue, ready, scheduled, running, retrying, dead, oldest),) = metrics
    assert (queue, ready, scheduled, running, retrying, dead) == ("mail", 2, 1, 2, 1, 1)
    assert oldest >= 60


def test_the_counts_do_not_read_finished_jobs(clean_db: str) -> None:
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO pgqueue.jobs (queue, task, args, status, started_at, finished_at)"
            " SELECT 'mail', 't', '[]', 'succeeded', now() - interval '1 hour',"
            " now() - interval '1 hour' FROM generate_series(1, 20000)"
        )
        conn.execute("ANALYZE pgqueue.jobs")
        for name in ("metrics_queues", "queue_stats"):
            plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + query(name)).fetchall())
            assert "Seq Scan" not in plan, (name, plan)
