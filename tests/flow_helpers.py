"""Flows in any state, written with plain SQL as the README's SQL contract describes a
plain-SQL producer (blocked rows with parent_ids, pending_parents and their edges).

The graph views (CLI, dashboard) are tested on flows whose jobs sit in chosen
statuses, which no worker run could hold still.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

FINISHED = ("succeeded", "dead", "cancelled")


@dataclass(frozen=True)
class Step:
    """One job of a flow: its task, its status, its parents (indexes of earlier steps)."""

    task: str
    status: str = "queued"
    parents: tuple[int, ...] = ()
    queue: str = "flows"
    on_parent_failure: str | None = None


def sql_flow(dsn: str, steps: Sequence[Step]) -> list[int]:
    """Insert ``steps`` as one flow (its id is the first job's); returns the job ids."""
    with psycopg.connect(dsn) as conn:
        (ids,) = conn.execute(
            "SELECT array_agg(nextval(pg_get_serial_sequence('pgqueue.jobs', 'id')))"
            " FROM generate_series(1, %s)", (len(steps),)).fetchone()  # type: ignore[misc]  # fmt: skip
        ids = sorted(ids)
        flow = ids[0]
        for i, step in enumerate(steps):
            parents = [ids[p] for p in step.parents]
            pending = sum(1 for p in step.parents if steps[p].status not in FINISHED)
            finished = "now()" if step.status in FINISHED else "NULL"
            conn.execute(
                "INSERT INTO pgqueue.jobs (id, queue, task, status, flow_id, parent_ids,"
                " pending_parents, pass_result, on_parent_failure, finished_at, started_at,"
                " attempts, leased_until)"
                f" OVERRIDING SYSTEM VALUE VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s,"
                f" {finished}, {finished}, %s, CASE WHEN %s THEN now() + interval '1 hour' END)",
                (ids[i], step.queue, step.task, step.status, flow, parents or None, pending,
                 "none" if parents else None, step.on_parent_failure,
                 0 if step.status in ("queued", "blocked") else 1,
                 step.status == "running"),  # a running job holds a lease
            )  # fmt: skip
            if parents:
                conn.execute("UPDATE pgqueue.jobs SET has_dependents = true WHERE id = ANY(%s)",
                             (parents,))  # fmt: skip
                conn.execute("INSERT INTO pgqueue.job_dependencies (parent_id, child_id)"
                             " SELECT unnest(%s::bigint[]), %s", (parents, ids[i]))  # fmt: skip
    return ids


def diamond(dsn: str) -> list[int]:
    """fetch x3 (succeeded, running, queued) -> merge (blocked) -> store, cleanup ('run')."""
    return sql_flow(dsn, [
        Step("app.fetch", "succeeded"), Step("app.fetch", "running"), Step("app.fetch", "queued"),
        Step("app.merge", "blocked", (0, 1, 2)), Step("app.store", "blocked", (3,)),
        Step("app.cleanup", "blocked", (3,), on_parent_failure="run"),
    ])  # fmt: skip


def big_chord(dsn: str, width: int) -> list[int]:
    """A chord of ``width`` succeeded jobs and a queued callback, inserted set-wise."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            """
            WITH ids AS (
                SELECT nextval(pg_get_serial_sequence('pgqueue.jobs', 'id')) AS id
                FROM generate_series(1, %(n)s + 1)
            ), numbered AS (
                SELECT id, row_number() OVER (ORDER BY id) AS k, min(id) OVER () AS flow
                FROM ids
            ), header AS (
                SELECT array_agg(id ORDER BY id) FILTER (WHERE k <= %(n)s) AS parents
                FROM numbered
            ), ins AS (
                INSERT INTO pgqueue.jobs (id, queue, task, status, flow_id, parent_ids,
                                          has_dependents, pass_result, attempts,
                                          started_at, finished_at)
                OVERRIDING SYSTEM VALUE
                SELECT n.id, 'flows', CASE WHEN n.k <= %(n)s THEN 'app.fetch' ELSE 'app.merge' END,
                       CASE WHEN n.k <= %(n)s THEN 'succeeded' ELSE 'queued' END, n.flow,
                       CASE WHEN n.k > %(n)s THEN h.parents END, n.k <= %(n)s,
                       CASE WHEN n.k > %(n)s THEN 'list' END, 1,
                       CASE WHEN n.k <= %(n)s THEN now() END,
                       CASE WHEN n.k <= %(n)s THEN now() END
                FROM numbered AS n, header AS h
                RETURNING id
            )
            SELECT id FROM ins ORDER BY id
            """,
            {"n": width},
        ).fetchall()
        ids = [r[0] for r in rows]
        conn.execute("INSERT INTO pgqueue.job_dependencies (parent_id, child_id)"
                     " SELECT unnest(%s::bigint[]), %s", (ids[:-1], ids[-1]))  # fmt: skip
    return ids
