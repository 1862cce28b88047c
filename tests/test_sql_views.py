"""The README's "Querying with SQL" answers run against a real schema with real rows."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest

import pgqueue

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_queries() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Querying with SQL", 1)[1].split("\n## ", 1)[0]
    return [q.strip() for q in re.findall(r"```sql\n(.*?)```", section, re.S)]


def test_readme_has_the_five_questions() -> None:
    assert len(readme_queries()) >= 6


@pytest.mark.parametrize("sql", readme_queries())
def test_readme_query_runs(clean_db: str, sql: str) -> None:
    with pgqueue.App(clean_db) as app:
        t = app.task_ref("t")
        ids = [j.id for j in app.enqueue_many([t.job(i) for i in range(4)])]
    with psycopg.connect(clean_db) as conn:
        conn.execute(
            "UPDATE pgqueue.jobs SET status = 'dead', finished_at = now(), last_error = 'boom'"
            " WHERE id = %s",
            (ids[0],),
        )
        conn.execute(
            "UPDATE pgqueue.jobs SET status = 'running', started_at = now() - interval '1 hour',"
            " leased_until = now() - interval '1 minute', worker_id = 'w1' WHERE id = %s",
            (ids[1],),
        )
        conn.execute(
            "INSERT INTO pgqueue.workers (id, hostname, pid, queues, concurrency)"
            " VALUES ('w1', 'h', 1, '{default}', 4)"
        )
        rows = conn.execute(sql.rstrip(";")).fetchall()
    assert rows, sql
