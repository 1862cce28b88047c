"""The dashboard's reads, as operations (generators of statements, see ``pgqueue._db``).

Each returns plain dicts for the templates. The SQL is in ``pgqueue/sql/web.sql``;
every page shows it in its "SQL" disclosure. Counts are exact up to ``CAP``;
beyond it an estimate from a block sample of the table is shown (an exact
count would read every row of a million-job queue).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from pgqueue._db import Operation, Statement
from pgqueue._graph import JobGraph, job_graph
from pgqueue._sql import query

CAP = 10_000  # exact counts up to this many rows per queue and state
PAGE = 50  # jobs per page
GRAPH_AROUND = 12  # parents and children listed on a job's page (all are counted)
STATES = ("ready", "scheduled", "running", "retrying", "dead")
SAMPLE_ROWS = 30_000  # rows a count estimate samples (block sampling: a few hundred pages)
STATUSES = ("queued", "blocked", "running", "succeeded", "failed", "dead", "cancelled")


@dataclass(frozen=True)
class Count:
    """A count as shown: exact, or (``estimated``) a sampled estimate past the cap."""

    value: int
    estimated: bool = False
    capped: bool = False  # at least this many (counting stopped there)

    def __str__(self) -> str:
        if self.capped:
            return f"{self.value:,}+"
        return f"~{self.value:,}" if self.estimated else f"{self.value:,}"


def overview() -> Operation[dict[str, Any]]:
    """Queues (counts, controls), the last hour's throughput and latency, live workers."""
    queues = yield from queue_rows()
    minutes = yield Statement(query("web_throughput"), rows="dict")
    workers = yield Statement(query("web_workers"), rows="dict")
    now = yield from clock()
    return {"queues": queues, "minutes": minutes, "workers": workers, "now": now}


def clock() -> Operation[datetime]:
    ((now,),) = yield Statement(query("web_now"))
    assert isinstance(now, datetime)
    return now


def queue_rows() -> Operation[list[dict[str, Any]]]:
    """Per queue: counts (exact, or estimated past what the indexes answer), controls."""
    rows: list[dict[str, Any]] = yield Statement(
        query("web_queue_counts"), {"cap": CAP}, rows="dict"
    )
    sample: dict[str, dict[str, float]] | None = None
    for row in rows:
        for state in STATES:
            exact = row[state]
            if exact is not None and exact < CAP:
                row[state] = Count(int(exact))
                continue
            # Past the cap, or not countable from an index: estimated from a sample.
            if sample is None:
                sample = yield from sampled_counts()
            estimate = round(sample.get(row["queue"], {}).get(state, 0.0))
            row[state] = Count(max(estimate, exact or 0), estimated=True)
    return rows


def sampled_counts(task: str | None = None, since: datetime | None = None
                   ) -> Operation[dict[str, dict[str, float]]]:  # fmt: skip
    """Per queue and state, the estimated number of jobs (a block sample, scaled)."""
    ((total,),) = yield Statement(query("web_table_rows"))
    total = max(float(total), 0.0)  # -1: never analysed
    percent = min(100.0, 100.0 * SAMPLE_ROWS / max(total, 1.0))
    params = {"percent": percent, "task": task, "since": since}
    rows = yield Statement(query("web_sample"), params, rows="dict")
    out: dict[str, dict[str, float]] = {}
    for r in rows:
        # Scale by the rows the sample saw against the table's estimate (not by
        # the percentage: block sampling sees a varying share of the rows).
        scale = max(total, float(r["sampled"])) / float(r["sampled"])
        out[r["queue"]] = {k: float(r[k]) * scale for k in (*STATES, "dead_matching")}
    return out


def queue_names() -> Operation[list[str]]:
    rows = yield Statement(query("web_queue_names"))
    return [r[0] for r in rows]


def workers() -> Operation[list[dict[str, Any]]]:
    rows: list[dict[str, Any]] = yield Statement(query("web_workers"), rows="dict")
    return rows


@dataclass(frozen=True)
class JobFilter:
    """The filters of ``/jobs``, parsed from the query string (bad values: ValueError)."""

    queue: str | None = None
    task: str | None = None
    status: str | None = None
    unique_key: str | None = None
    older: float | None = None  # created at least this many seconds ago
    newer: float | None = None  # created at most this many seconds ago
    text: str | None = None
    before: int | None = None  # keyset: ids below this one
    since: datetime | None = None  # finished since (finished statuses only)

    @classmethod
    def parse(cls, params: Any) -> JobFilter:
        def text(name: str) -> str | None:
            value = (params.get(name) or "").strip()
            return value or None

        status = text("status")
        if status is not None and status not in STATUSES:
            raise ValueError(f"unknown status {status!r}; one of {', '.join(STATUSES)}")
        return cls(queue=text("queue"), task=text("task"), status=status,
                   unique_key=text("unique_key"), older=_seconds(text("older"), "older"),
                   newer=_seconds(text("newer"), "newer"), text=text("q"),
                   before=_positive(text("before"), "before"))  # fmt: skip

    def params(self) -> dict[str, Any]:
        like = None
        if self.text is not None:
            escaped = self.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            like = f"%{escaped}%"
        return {"queue": self.queue, "task": self.task, "status": self.status,
                "unique_key": self.unique_key, "older": self.older, "newer": self.newer,
                "text": like, "before": self.before, "since": self.since, "floor": None,
                "limit": PAGE + 1}  # fmt: skip

    def query_string(self, **changes: Any) -> str:
        """This filter as a query string, with ``changes`` (None drops a key)."""
        from urllib.parse import urlencode

        values = {"queue": self.queue, "task": self.task, "status": self.status,
                  "unique_key": self.unique_key, "older": self.older, "newer": self.newer,
                  "q": self.text, "before": self.before}  # fmt: skip
        values.update(changes)
        return urlencode({k: _plain(v) for k, v in values.items() if v is not None})


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _seconds(value: str | None, name: str) -> float | None:
    if value is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    factor = units.get(value[-1].lower(), 0)
    number = value[:-1] if factor else value
    try:
        seconds = float(number) * (factor or 1)
    except ValueError:
        raise ValueError(f"{name}: not a duration (e.g. 90, 15m, 2h, 1d): {value!r}") from None
    if seconds < 0:
        raise ValueError(f"{name}: must be >= 0")
    return seconds


def _positive(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"{name}: not a job id: {value!r}") from None
    if n <= 0:
        raise ValueError(f"{name}: must be a positive id")
    return n


FINISHED = ("succeeded", "dead", "cancelled")


SEARCH_WINDOW = 50_000  # ids a free-text search reads per page (it cannot use an index)


def jobs_query(flt: JobFilter) -> str:
    """The query of a jobs page: by finish time for a finished status (its index), else by id."""
    if flt.status in FINISHED and flt.text is None:
        return "web_jobs_finished"
    return "web_jobs"


def jobs_page(flt: JobFilter) -> Operation[dict[str, Any]]:
    """One page of jobs and the cursor of the next (None on the last page).

    A free-text search reads one window of ``SEARCH_WINDOW`` ids per page, newest
    first: a page may hold fewer matches than it could, and "older" goes on with
    the next window (``searched`` says which ids were read).
    """
    params = flt.params()
    searched = None
    if flt.text is not None:
        ((top,),) = yield Statement(query("web_jobs_top"), {"before": flt.before})
        floor = max(1, int(top or 1) - SEARCH_WINDOW)
        params["floor"] = floor
        searched = (floor, int(top or 1) - 1)
    rows: list[dict[str, Any]] = yield Statement(query(jobs_query(flt)), params, rows="dict")
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    cursor = rows[-1]["id"] if more else None
    if searched is not None and not more and searched[0] > 1:
        cursor = searched[0]  # nothing more in this window: the next one
    return {"jobs": rows, "next": cursor, "searched": searched}


def job_detail(job_id: int) -> Operation[dict[str, Any] | None]:
    rows = yield Statement(query("web_job"), {"id": job_id}, rows="dict")
    if not rows:
        return None
    job: dict[str, Any] = rows[0]
    graph = yield from job_graph(job_id, limit=GRAPH_AROUND)
    job["graph"] = graph if (graph.job.parent_ids or graph.children or job["flow_id"]) else None
    job["why"] = why_not_running(job, graph)
    job["timeline"] = timeline(job)
    # A workflow's step log (none for other jobs), and what a suspended one waits for.
    job["steps"] = yield Statement(query("workflow_steps"), {"id": job_id}, rows="dict")
    waiting = workflow_wait(job)
    if waiting:
        job["why"].insert(0, waiting)
    return job


def workflow_wait(job: dict[str, Any]) -> str | None:
    """What a suspended workflow waits for: its last step, when that one is pending."""
    steps = job["steps"]
    if job["status"] not in ("queued", "blocked") or not steps or steps[-1]["finished_at"]:
        return None
    last = steps[-1]
    if last["kind"] == "event":
        return f"workflow waiting for event {last['event']!r} (until {_ts(last['wake_at'])})"
    if last["kind"] == "sleep":
        return f"workflow sleeping until {_ts(last['wake_at'])}"
    if last["kind"] == "child":
        return f"workflow waiting for its child job {last['child_id']}"
    return None


def why_not_running(job: dict[str, Any], graph: JobGraph | None = None) -> list[str]:
    """Every reason the job is not running now (empty when it is, or is finished)."""
    now: datetime = job["now"]
    status = job["status"]
    if status == "running":
        until = job["leased_until"]
        holder = job["worker_id"] or "?"
        return [f"running: lease held by worker {holder} until {_ts(until)}"]
    if status not in ("queued", "failed", "blocked"):
        return []
    reasons = blocked_reasons(job, graph) if status == "blocked" else []
    if status != "blocked" and job["run_at"] > now:
        what = "waiting to retry" if status == "failed" else "scheduled"
        reasons.append(f"{what}: run_at {_ts(job['run_at'])} is in the future "
                       f"(in {_age((job['run_at'] - now).total_seconds())})")  # fmt: skip
    if job["queue_paused"]:
        reasons.append(f"queue {job['queue']} is paused")
    if job["max_running"] is not None and job["queue_running"] >= job["max_running"]:
        reasons.append(f"queue {job['queue']} has max_running={job['max_running']} jobs "
                       "running (its limit)")  # fmt: skip
    start = job["rate_window_start"]
    if job["rate_limit"] is not None and start is not None:
        ends = start + timedelta(seconds=job["rate_period"])
        if ends > now and job["rate_window_count"] >= job["rate_limit"]:
            reasons.append(f"queue {job['queue']} used its rate limit of {job['rate_limit']} "
                           f"per {job['rate_period']:g}s; the window ends {_ts(ends)}")  # fmt: skip
    if not job["queue_workers"]:
        reasons.append(f"no live worker serves queue {job['queue']}")
    if not reasons and status != "blocked":
        reasons.append("ready: the next free worker slot on this queue claims it "
                       "(jobs of higher priority or older run_at go first)")  # fmt: skip
    return reasons


def blocked_reasons(job: dict[str, Any], graph: JobGraph | None) -> list[str]:
    """Why a blocked job waits: which parents, and what their failure would do."""
    total = len(job["parent_ids"])
    pending = job["pending_parents"]
    waiting = [p for p in graph.parents if p.status not in FINISHED] if graph else []
    named = ", ".join(f"#{p.id} {p.task} ({p.status})" for p in waiting[:5])
    more = pending - min(len(waiting), 5)
    reasons = [f"blocked: waiting on {pending:,} of its {total:,} parent job(s) to finish"
               + (f": {named}" if named else "") + (f" and {more:,} more" if more > 0 else "")]
    if job["on_parent_failure"] == "run":
        reasons.append("it runs once they have finished, even if one fails "
                       "(on_parent_failure='run')")  # fmt: skip
    else:
        reasons.append("it runs once they have all succeeded; if one ends dead or cancelled, "
                       "this job is cancelled")  # fmt: skip
    return reasons


def timeline(job: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(time, event, detail) rows: created, each failed attempt, the last start, finish."""
    events: list[tuple[datetime | str, int, str, str]] = [
        (job["created_at"], 0, "created", f"queue {job['queue']}")
    ]
    errors = job["errors"] or []
    for entry in errors:
        detail = f"attempt {entry.get('attempt', '?')}: {entry.get('error', '')}"
        events.append((_parse(entry.get("at")), 2, entry.get("status") or "failed", detail))
    if job["started_at"] is not None:
        events.append((job["started_at"], 1, "started",
                       f"attempt {job['attempts']} by {job['worker_id'] or '?'}"))  # fmt: skip
    ended_by_error = bool(errors) and errors[-1].get("status") == job["status"]
    if job["finished_at"] is not None and not ended_by_error:
        events.append((job["finished_at"], 3, job["status"], ""))
    events.sort(key=lambda e: (_sortable(e[0]), e[1]))
    return [(_ts(e[0]) if isinstance(e[0], datetime) else e[0], e[2], e[3]) for e in events]


def _parse(text: Any) -> datetime | str:
    try:
        return datetime.fromisoformat(str(text))
    except ValueError:
        return str(text)


def _sortable(t: datetime | str) -> str:
    return t.astimezone(timezone.utc).isoformat() if isinstance(t, datetime) else t


DEAD_CAP = 1000  # the dead-letter count reads rows (a filter on queue or task): keep it short


def dead_count(queue: str | None, task: str | None, since: datetime | None) -> Operation[Count]:
    params = {"queue": queue, "task": task, "since": since}
    ((n,),) = yield Statement(query("web_dead_count"), {**params, "cap": DEAD_CAP})
    if n < DEAD_CAP:
        return Count(int(n))
    sample = yield from sampled_counts(task, since)
    estimate = round(sum(v["dead_matching"] for q, v in sample.items()
                         if queue is None or q == queue))  # fmt: skip
    return Count(max(int(n), estimate), estimated=True)


def schedules() -> Operation[list[dict[str, Any]]]:
    rows: list[dict[str, Any]] = yield Statement(query("web_schedules"), rows="dict")
    return rows


def _ts(t: datetime | None) -> str:
    return t.isoformat(sep=" ", timespec="seconds") if t is not None else "-"


def _age(seconds: float | None) -> str:
    """A short human duration: 45s, 12m, 3h 5m, 2d 4h."""
    if seconds is None:
        return "-"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s" if s < 600 else f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"
