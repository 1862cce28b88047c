"""What a run checks, from the database and the effect tables only.

Each check returns its figures and ``ok``. The definitions:

- **lost**: a job of the run that did not end ``succeeded`` (every job has up to 50
  attempts and a short backoff, so a fault cannot exhaust them), an id the producer
  was given that is not in ``pgqueue.jobs``, or a sequence number of the stream
  with no succeeded job.
- **transactional duplicates**: a ``chaos.tx`` job with more than one effect row
  (or a succeeded one with none, or whose effect is not from its last attempt).
- **at-least-once duplicates**: ``chaos.alo`` jobs with more than one effect row.
  Allowed, but each effect of an attempt other than the last must be explained by
  that attempt's entry in the job's ``errors`` (lease expired after a kill or a
  cut, a failure after a lost connection): an unexplained one fails the run.
- **attempts undercount**: a job with an effect of an attempt above ``attempts``,
  more effects than ``attempts``, or two effects of the same attempt.
- **cron**: ``chaos.tick`` fires by ``meta.scheduled_for``: doubled (two jobs for
  one second) and missing (a second between the first and the last fire with no
  job) must both be 0.
- **fencing**: each partitioned (zombie) job ends succeeded by the other worker:
  its row unchanged after the zombie's late attempt ran to its end (the mark),
  the transactional one with exactly one effect, from the later attempt.
"""

from __future__ import annotations

from typing import Any

import psycopg

STREAM = ["chaos.alo", "chaos.tx", "chaos.alo_async", "chaos.tx_async"]
TX = ["chaos.tx", "chaos.tx_async"]
ALO = ["chaos.alo", "chaos.alo_async"]
RUN_TASKS = (*STREAM, "chaos.tick", "chaos.fence_alo", "chaos.fence_tx")


def _one(conn: psycopg.Connection[Any], sql: str, params: Any = None) -> Any:
    row = conn.execute(sql, params).fetchone()
    return row[0] if row else None


def lost(conn: psycopg.Connection[Any], produced_ids: list[int], total: int) -> dict[str, Any]:
    unfinished = conn.execute(
        "SELECT status, count(*), (array_agg(id ORDER BY id))[1:10] FROM pgqueue.jobs"
        " WHERE task = ANY(%s) AND status <> 'succeeded' GROUP BY status",
        (list(RUN_TASKS),),
    ).fetchall()
    missing_ids = _one(conn, "SELECT count(*) FROM unnest(%s::bigint[]) AS p(id)"
                             " WHERE NOT EXISTS (SELECT 1 FROM pgqueue.jobs j WHERE j.id = p.id)",
                       (produced_ids,))  # fmt: skip
    seqs = _one(conn, "SELECT count(DISTINCT (args->>0)::int) FROM pgqueue.jobs"
                      " WHERE task = ANY(%s) AND status = 'succeeded'", (STREAM,))
    jobs = _one(conn, "SELECT count(*) FROM pgqueue.jobs WHERE task = ANY(%s)", (STREAM,))
    not_succeeded = sum(r[1] for r in unfinished)
    return {
        "jobs_in_table": jobs,
        "stream_jobs": total,
        "not_succeeded": not_succeeded,
        "not_succeeded_by_status": {r[0]: {"count": r[1], "ids": r[2]} for r in unfinished},
        "produced_ids_missing": missing_ids,
        "sequence_numbers_missing": total - (seqs or 0),
        "lost": not_succeeded + missing_ids + (total - (seqs or 0)),
        "ok": not_succeeded == 0 and missing_ids == 0 and seqs == total,
    }


def transactional(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    dup = _one(conn, "SELECT count(*) FROM (SELECT job_id FROM chaos.effects e JOIN pgqueue.jobs j"
                     " ON j.id = e.job_id WHERE j.task = ANY(%s) GROUP BY job_id"
                     " HAVING count(*) > 1) AS d", (TX,))  # fmt: skip
    missing = _one(conn, "SELECT count(*) FROM pgqueue.jobs j WHERE j.task = ANY(%s)"
                         " AND j.status = 'succeeded' AND NOT EXISTS"
                         " (SELECT 1 FROM chaos.effects e WHERE e.job_id = j.id)", (TX,))
    stale = _one(conn, "SELECT count(*) FROM chaos.effects e JOIN pgqueue.jobs j ON j.id = e.job_id"
                       " WHERE j.task = ANY(%s) AND e.attempt <> j.attempts", (TX,))  # fmt: skip
    jobs = _one(conn, "SELECT count(*) FROM pgqueue.jobs WHERE task = ANY(%s)", (TX,))
    retried = _one(conn, "SELECT count(*) FROM pgqueue.jobs WHERE task = ANY(%s)"
                         " AND attempts > 1", (TX,))  # fmt: skip
    return {"jobs": jobs, "jobs_with_more_than_one_attempt": retried, "duplicated": dup,
            "succeeded_without_effect": missing, "effect_not_from_last_attempt": stale,
            "ok": dup == 0 and missing == 0 and stale == 0}  # fmt: skip


def at_least_once(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    tasks = [*ALO, "chaos.fence_alo"]
    dup_jobs = _one(conn, "SELECT count(*) FROM (SELECT job_id FROM chaos.effects e"
                          " JOIN pgqueue.jobs j ON j.id = e.job_id WHERE j.task = ANY(%s)"
                          " GROUP BY job_id HAVING count(*) > 1) AS d", (tasks,))  # fmt: skip
    extra = conn.execute(
        "SELECT e.job_id, e.attempt, EXISTS (SELECT 1 FROM jsonb_array_elements(j.errors) AS x"
        "   WHERE (x->>'attempt')::int = e.attempt) AS explained,"
        " (SELECT x->>'error' FROM jsonb_array_elements(j.errors) AS x"
        "   WHERE (x->>'attempt')::int = e.attempt LIMIT 1) AS why"
        " FROM chaos.effects e JOIN pgqueue.jobs j ON j.id = e.job_id"
        " WHERE j.task = ANY(%s) AND e.attempt <> j.attempts",
        (tasks,),
    ).fetchall()
    unexplained = [(r[0], r[1]) for r in extra if not r[2]]
    reasons: dict[str, int] = {}
    for r in extra:
        if r[2]:
            key = str(r[3]).split(":", 1)[0]
            reasons[key] = reasons.get(key, 0) + 1
    missing = _one(conn, "SELECT count(*) FROM pgqueue.jobs j WHERE j.task = ANY(%s)"
                         " AND j.status = 'succeeded' AND NOT EXISTS (SELECT 1 FROM chaos.effects e"
                         " WHERE e.job_id = j.id AND e.attempt = j.attempts)", (ALO,))  # fmt: skip
    return {"jobs_with_duplicate_effects": dup_jobs, "extra_effects": len(extra),
            "explained": len(extra) - len(unexplained), "explained_by": reasons,
            "unexplained": len(unexplained), "unexplained_sample": unexplained[:10],
            "succeeded_without_last_effect": missing,
            "ok": not unexplained and missing == 0}  # fmt: skip


def undercount(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    rows = conn.execute(
        "SELECT j.id FROM pgqueue.jobs j JOIN chaos.effects e ON e.job_id = j.id"
        " GROUP BY j.id, j.attempts"
        " HAVING max(e.attempt) > j.attempts OR count(*) > j.attempts"
        "     OR count(*) > count(DISTINCT e.attempt)"
    ).fetchall()
    return {"jobs": len(rows), "sample": [r[0] for r in rows[:10]], "ok": not rows}


def cron(conn: psycopg.Connection[Any], name: str) -> dict[str, Any]:
    doubled = _one(conn, "SELECT count(*) FROM (SELECT meta->>'scheduled_for' FROM pgqueue.jobs"
                         " WHERE task = 'chaos.tick' AND meta->>'schedule' = %s GROUP BY 1"
                         " HAVING count(*) > 1) AS d", (name,))  # fmt: skip
    row = conn.execute(
        "WITH f AS (SELECT DISTINCT (meta->>'scheduled_for')::timestamptz AS at FROM pgqueue.jobs"
        "           WHERE task = 'chaos.tick' AND meta->>'schedule' = %s)"
        " SELECT (SELECT count(*) FROM f), min(at), max(at),"
        "  (SELECT count(*) FROM generate_series((SELECT min(at) FROM f), (SELECT max(at) FROM f),"
        "   interval '1 second') AS s(at) WHERE s.at NOT IN (SELECT at FROM f))"
        " FROM f",
        (name,),
    ).fetchone()
    fires, first, last, missing = row if row else (0, None, None, None)
    return {"fires": fires, "first": str(first), "last": str(last), "doubled": doubled,
            "missing": missing, "ok": fires > 0 and doubled == 0 and missing == 0}  # fmt: skip


def fencing(conn: psycopg.Connection[Any], faults: list[dict[str, Any]]) -> dict[str, Any]:
    cases = []
    for f in faults:
        if f["kind"] != "network-cut":
            continue
        for job_id, unchanged, zombie_worker in zip(f["jobs"], f["unchanged"],
                                                    f["zombie_workers"], strict=True):  # fmt: skip
            row = conn.execute(
                "SELECT task, status, attempts, worker_id, result->>'pid',"
                " extract(epoch FROM finished_at),"
                " EXISTS (SELECT 1 FROM jsonb_array_elements(errors) x"
                "   WHERE (x->>'attempt')::int = 1 AND x->>'error' LIKE 'LeaseExpired%%')"
                " FROM pgqueue.jobs WHERE id = %s", (job_id,)).fetchone()  # fmt: skip
            assert row is not None
            task, status, attempts, worker_id, _pid, finished, rescued = row
            effects = conn.execute("SELECT attempt, extract(epoch FROM at) FROM chaos.effects"
                                   " WHERE job_id = %s ORDER BY attempt", (job_id,)).fetchall()
            mark = _one(conn, "SELECT extract(epoch FROM at) FROM chaos.marks"
                              " WHERE job_id = %s AND attempt = 1", (job_id,))  # fmt: skip
            late = mark is not None and float(mark) > float(finished)
            if task == "chaos.fence_tx":
                effects_ok = [e[0] for e in effects] == [attempts]
            else:
                effects_ok = [e[0] for e in effects] == [1, attempts]
            refused = (status == "succeeded" and attempts >= 2 and worker_id != zombie_worker
                       and unchanged and late and rescued and effects_ok)  # fmt: skip
            cases.append({"job": job_id, "task": task, "status": status, "attempts": attempts,
                          "recorded_by": worker_id, "zombie": zombie_worker,
                          "zombie_finished_after_takeover_s":
                              None if mark is None else round(float(mark) - float(finished), 3),
                          "row_unchanged_by_zombie": unchanged,
                          "effect_attempts": [e[0] for e in effects], "refused": refused})
    refused = sum(1 for c in cases if c["refused"])
    return {"zombie_completions": len(cases), "refused": refused, "cases": cases,
            "ok": bool(cases) and refused == len(cases)}
