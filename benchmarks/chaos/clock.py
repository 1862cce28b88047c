"""Clock skew: the argument that only the database's clock decides, checked against
the source on every run.

No scheduler runs with a faked clock here (libfaketime is not installed on the
machine the suite was written on); instead this module proves the property
that makes skew harmless: nothing a worker, scheduler or producer host reads
from its own wall clock reaches a lease, a ``run_at`` comparison or a cron fire.

1. Every wall-clock read in ``pgqueue/`` (``time.time()``, ``datetime.now``,
   ``utcnow``, ``date.today``) must be on :data:`PY_ALLOWED`, with the reason it
   does not decide anything. ``time.monotonic`` measures intervals on one host
   and never leaves it.
2. Every timestamp parameter of ``pgqueue/sql/*.sql`` (``%(x)s::timestamptz``)
   must be on :data:`SQL_ALLOWED`, with where its value comes from.
3. Leases, claims, rescues and cron are written against ``now()``:
   :data:`SQL_REQUIRED` lists the fragments that must be present.

A new wall-clock read or timestamp parameter fails the check until someone
argues it here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

PY_CLOCK = re.compile(r"time\.time\(\)|datetime\.now\(|datetime\.utcnow\(|date\.today\(")

PY_ALLOWED = {
    "pgqueue/_eager.py": "eager mode (tests, no worker): runs the task inline and writes nothing",
    "pgqueue/worker/_executor.py": "the 'at' of an error entry in jobs.errors: a record for "
                                   "people, never compared by the rescuer, the claim or fencing",
    "pgqueue/_schedules.py": "run-now's meta.scheduled_for (informational, meta.manual=true, no "
                             "unique key); the job's run_at is the database's now()",
    "pgqueue/_replay.py": "a workflow step's started_at in the step log (a record for people); "
                          "sleep and event deadlines are now() + seconds on the server",
    "pgqueue/_workflow.py": "pgqueue.now(): the value a workflow asked for, checkpointed so a "
                            "replay sees the first run's; it decides only the user's own code",
}  # fmt: skip

SQL_ALLOWED = {
    "since": "an operator's filter (dashboard, replay --since): a time the user typed",
    "run_at": "a caller's explicit absolute run_at: the caller chose that instant",
    "earliest": "the earliest caller-given run_at of a batch (decides only whether to NOTIFY)",
    "now": "scheduler and pruner: None in production (coalesce(..., now())); tests inject it",
    "last": "cron fires planned from next_run_at and the database's now() (schedules_clock)",
    "next": "the same plan: croniter applied to database times",
    "seg_after": "claim bounds: run_at values this worker read back from claimed rows",
    "after": "the rescuer's lower bound: the database's now() at its previous pass, read back",
}

SQL_REQUIRED = {
    "worker.sql": ["leased_until = now() + make_interval(secs => %(lease)s)",  # claim lease
                   "AND run_at <= now()",  # claim: due jobs by the server's clock
                   "leased_until < now()",  # rescue: expired by the server's clock
                   "SET leased_until = now() + make_interval(secs => h.lease)"],  # heartbeat
    "jobs.sql": ["now() + make_interval(secs => %(delay)s)"],  # delays become server times
    "schedules.sql": ["coalesce(%(now)s::timestamptz, now())", "SELECT now()"],
}  # fmt: skip


def check(root: Path = ROOT) -> dict[str, Any]:
    package = root / "pgqueue"
    py_found: list[dict[str, Any]] = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if PY_CLOCK.search(line):
                py_found.append({"where": f"{rel}:{n}", "code": line.strip(),
                                 "why_harmless": PY_ALLOWED.get(rel)})  # fmt: skip
    sql_found: list[dict[str, Any]] = []
    missing: list[str] = []
    for path in sorted((package / "sql").glob("*.sql")):
        text = path.read_text()
        for m in re.finditer(r"%\((\w+)\)s::timestamptz", text):
            lineno = text.count("\n", 0, m.start()) + 1
            sql_found.append({"where": f"pgqueue/sql/{path.name}:{lineno}", "param": m.group(1),
                              "source": SQL_ALLOWED.get(m.group(1))})  # fmt: skip
        missing += [f"{path.name}: {frag}" for frag in SQL_REQUIRED.get(path.name, [])
                    if frag not in text]  # fmt: skip
    unargued = [f["where"] for f in py_found if f["why_harmless"] is None]
    unargued += [f["where"] for f in sql_found if f["source"] is None]
    return {"python_wall_clock_reads": py_found, "sql_timestamp_parameters": sql_found,
            "required_now_fragments_missing": missing, "unargued": unargued,
            "ok": not unargued and not missing}  # fmt: skip
