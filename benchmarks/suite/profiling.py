"""Why the drain runs at the rate it does: a profile of the worker and the server.

* The worker: one tuned drain run under py-spy (``record --format
  speedscope``, every thread, child processes included). py-spy needs ptrace;
  when it cannot attach, pyinstrument (main thread only) records instead.
  The speedscope file goes to the results folder; its top functions (self
  time, inclusive time, and by area) go into the report.
* The server: pg_stat_statements when the server preloads it; otherwise the
  deltas of pg_stat_user_tables, pg_stat_database and pg_stat_wal over the
  run (pg_stat_wal is cluster-wide: other activity on the server counts).
"""

from __future__ import annotations

import collections
import contextlib
import json
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.suite import db
from benchmarks.suite.procs import WorkerProcess, check_exit, stop_all, wait_all
from benchmarks.suite.profiles import Profile
from benchmarks.suite.systems import Pgqueue

TOP = 15
AREAS = (  # first match on the leaf frame's file path
    ("pgqueue", "/pgqueue/"),
    ("psycopg", "/psycopg"),
    ("asyncio", "/asyncio/"),
    ("threading/queue", "/threading.py"),
    ("threading/queue", "/queue.py"),
    ("json", "/json/"),
    ("logging", "/logging/"),
)


def _py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def _pg_stat_statements(dsn: str) -> bool:
    rows = db.execute(dsn, "SHOW shared_preload_libraries")
    if "pg_stat_statements" not in (rows[0][0] if rows else ""):
        return False
    db.execute(dsn, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    db.execute(dsn, "SELECT pg_stat_statements_reset()")
    return True


def _statements(dsn: str) -> list[dict[str, Any]]:
    rows = db.execute(
        dsn,
        "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 120), calls, total_exec_time,"
        " mean_exec_time, rows FROM pg_stat_statements"
        " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " ORDER BY total_exec_time DESC LIMIT 10",
    )
    keys = ("query", "calls", "total_ms", "mean_ms", "rows")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def _fill(dsn: str, jobs: int) -> None:
    import pgqueue

    system = Pgqueue()
    system.reset(dsn)
    with pgqueue.App(dsn) as app:
        app.pause_queue("bench")  # the worker warms up idle; the clock starts on resume
    system.enqueue_bulk(dsn, jobs)
    db.vacuum(dsn, "pgqueue.jobs")


def _resume(dsn: str) -> None:
    import pgqueue

    with pgqueue.App(dsn) as app:
        app.resume_queue("bench")
    db.execute(dsn, "SELECT pg_notify('pgqueue_jobs', 'bench')")


UNFINISHED = """
SELECT EXISTS (SELECT 1 FROM pgqueue.jobs WHERE queue = 'bench' AND status IN ('queued', 'failed'))
    OR EXISTS (SELECT 1 FROM pgqueue.jobs WHERE status = 'running')
"""  # index probes only (jobs_claim_idx, jobs_running_idx): the poll must not load the server


def _unfinished(conn: db.Target) -> bool:
    return bool(db.execute(conn, UNFINISHED)[0][0])


def _attach(spy: str, pid: int, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--format", "speedscope", "-o", str(out),
         "--rate", "250", "--gil", "--nonblocking", "--duration", "300"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def _with_py_spy(dsn: str, profile: Profile, out: Path, config: dict[str, Any]) -> str | None:
    """Attach py-spy to a warm, idle worker, then release the queued jobs; None if it
    worked, else why not."""
    spy = _py_spy()
    if spy is None:
        return "py-spy not installed"
    worker = WorkerProcess("pgqueue", {**config, "burst": False})
    recorder: subprocess.Popen[bytes] | None = None
    try:
        deadline = time.monotonic() + 30
        while not db.execute(dsn, "SELECT count(*) FROM pgqueue.workers")[0][0]:
            if time.monotonic() > deadline or not worker.running():
                return f"the worker did not start: {worker.log_tail()}"
            time.sleep(0.05)
        time.sleep(0.5)
        recorder = _attach(spy, worker.pid, out)
        time.sleep(0.5)
        if recorder.poll() is not None:
            err = (recorder.stderr.read() if recorder.stderr else b"").decode(errors="replace")
            return (
                f"py-spy could not attach: {err.strip().splitlines()[-1:] or recorder.returncode}"
            )
        _resume(dsn)
        deadline = time.monotonic() + 60 + profile.profile_seconds
        with psycopg.connect(dsn, autocommit=True) as poll:
            while _unfinished(poll) and time.monotonic() < deadline:
                time.sleep(0.1)
        time.sleep(0.2)  # the last completions
        recorder.send_signal(signal.SIGINT)  # py-spy writes the file on Ctrl-C
        recorder.wait(60)
    finally:
        if recorder is not None and recorder.poll() is None:
            recorder.kill()
        stop_all([worker])
        worker.close()
    return None if out.exists() and out.stat().st_size else "py-spy wrote nothing"


def _with_pyinstrument(dsn: str, profile: Profile, out: Path, config: dict[str, Any]) -> str | None:
    """pyinstrument runs the worker itself (main thread only, start-up included)."""
    try:
        import pyinstrument  # noqa: F401
    except ImportError:
        return "pyinstrument not installed"
    return _plain(dsn, profile, out, config, wrap=[
        sys.executable, "-m", "pyinstrument", "-r", "speedscope", "-o", str(out)])  # fmt: skip


def _plain(dsn: str, profile: Profile, out: Path, config: dict[str, Any],
           wrap: list[str] | None = None) -> str | None:  # fmt: skip
    """The same drain without a profiler (server statistics only)."""
    _resume(dsn)
    worker = WorkerProcess("pgqueue", {**config, "burst": True}, wrap=wrap)
    try:
        wait_all([worker], time.monotonic() + 60 + profile.profile_seconds)
    finally:
        stop_all([worker])
    failure = check_exit([worker])
    if wrap and not failure and not out.exists():
        failure = worker.log_tail() or "no output"
    worker.close()
    return failure


def record(dsn: str, profile: Profile, out_dir: Path, stamp: str) -> dict[str, Any]:
    jobs = profile.drain_jobs
    out = out_dir / f"{stamp}-worker.speedscope.json"
    config = {"dsn": dsn, "queues": ["bench"], "processes": 1,
              "concurrency": profile.concurrency_tuned}  # fmt: skip
    result: dict[str, Any] = {
        "workload": f"drain of {jobs:,} no-op jobs, concurrency "
        f"{profile.concurrency_tuned}, 1 process"
    }
    statements = _pg_stat_statements(dsn)
    errors = []
    for tool, how in (("py-spy", _with_py_spy), ("pyinstrument", _with_pyinstrument),
                      (None, _plain)):  # fmt: skip
        with contextlib.suppress(FileNotFoundError):
            out.unlink()
        _fill(dsn, jobs)
        if statements:
            db.execute(dsn, "SELECT pg_stat_statements_reset()")
        before = db.snapshot(dsn, "pgqueue", "jobs")
        since = db.server_now(dsn)
        error = how(dsn, profile, out, config)
        if error is None:
            result["tool"] = tool
            break
        errors.append(f"{tool}: {error}")
    else:
        result["tool"] = None
    if errors:
        result["fallback_reason"] = "; ".join(errors)
    count, seconds = Pgqueue().full_span(dsn, since)
    result["jobs"] = count
    result["drain_seconds"] = seconds
    result["rate_under_profiler"] = count / seconds if count and seconds else None
    time.sleep(0.6)  # statistics are flushed at most once a second
    after = db.snapshot(dsn, "pgqueue", "jobs")
    result["server"] = server_costs(db.delta(before, after), count)
    if statements:
        result["server"]["statements"] = _statements(dsn)
        result["server"]["source"] = "pg_stat_statements"
    else:
        result["server"]["source"] = (
            "pg_stat_statements is not in shared_preload_libraries on this server: "
            "pg_stat_user_tables / pg_stat_database / pg_stat_wal deltas instead"
        )
    result["explain"] = explain_statements(dsn, jobs, profile.concurrency_tuned)
    if result.get("tool") and out.exists():
        result["file"] = out.name
        result["functions"] = summarize_speedscope(json.loads(out.read_text()))
    return result


def explain_statements(dsn: str, jobs: int, batch: int) -> dict[str, Any]:
    """``EXPLAIN (ANALYZE, BUFFERS, WAL)`` of one claim of ``batch`` from a queue of
    ``jobs``, then of the ``complete`` of that batch; rolled back."""
    from pgqueue._sql import query
    from pgqueue.worker._completer import complete_params

    Pgqueue().reset(dsn)
    Pgqueue().enqueue_bulk(dsn, jobs)
    db.vacuum(dsn, "pgqueue.jobs")
    token = str(uuid.uuid4())
    claim = {"queues": ["bench"], "limit": batch, "lease": 30.0, "worker_id": "explain",
             "token": token}  # fmt: skip
    out: dict[str, Any] = {"queued": jobs, "batch": batch}
    with psycopg.connect(dsn) as conn:
        for _ in range(6):  # past psycopg's prepare threshold, as in a worker
            conn.execute(query("claim"), claim).fetchall()
            conn.rollback()
        plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS, WAL) " + query("claim"), claim)
        out["claim"] = [r[0] for r in plan.fetchall()]
        conn.rollback()
        rows = conn.execute(query("claim"), claim).fetchall()
        params = complete_params([(r[0], token, "succeeded", None, None, None, None)
                                  for r in rows])  # fmt: skip
        plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS, WAL) " + query("complete"), params)
        out["complete"] = [r[0] for r in plan.fetchall()]
        conn.rollback()
    Pgqueue().reset(dsn)
    return out


def server_costs(delta: dict[str, float], jobs: int) -> dict[str, Any]:
    per = max(jobs, 1)
    upd = delta.get("table.tup_upd", 0.0)
    return {
        "per_job": {
            "commits": delta.get("db.xact_commit", 0.0) / per,
            "row_updates": upd / per,
            "wal_bytes": delta.get("wal.wal_bytes", 0.0) / per,
            "wal_records": delta.get("wal.wal_records", 0.0) / per,
            "wal_full_page_images": delta.get("wal.wal_fpi", 0.0) / per,
            "buffer_hits": delta.get("db.blks_hit", 0.0) / per,
            "buffer_reads": delta.get("db.blks_read", 0.0) / per,
        },
        "hot_update_ratio": (delta.get("table.tup_hot_upd", 0.0) / upd) if upd else None,
        "dead_tuples_after": delta.get("table.dead_tup"),
        "raw": delta,
    }


def _area(path: str) -> str:
    for name, needle in AREAS:
        if needle in path:
            return name
    return "other"


def summarize_speedscope(doc: dict[str, Any]) -> dict[str, Any]:
    """Self and inclusive time per function over every thread, and self time by area."""
    frames = list(doc.get("shared", {}).get("frames", []))
    # py-spy --subprocesses roots each stack in a pseudo-frame naming the process.
    pseudo = {
        i
        for i, f in enumerate(frames)
        if not f.get("file") and str(f.get("name", "")).startswith("process ")
    }
    frames.append({"name": "<no Python frame: C code holding the GIL>", "file": "", "line": 0})
    bare = len(frames) - 1
    self_t: collections.Counter[int] = collections.Counter()
    incl_t: collections.Counter[int] = collections.Counter()
    total = 0.0
    for prof in doc.get("profiles", []):
        if prof.get("type") == "sampled":
            for sample, weight in zip(prof["samples"], prof["weights"], strict=False):
                stack = [i for i in sample if i not in pseudo] or [bare]
                total += weight
                self_t[stack[-1]] += weight
                for frame in set(stack):
                    incl_t[frame] += weight
        elif prof.get("type") == "evented":
            stack: list[tuple[int, float]] = []
            last = prof.get("startValue", 0.0)
            for ev in prof.get("events", []):
                at = ev["at"]
                if stack:
                    self_t[stack[-1][0]] += at - last
                    total += at - last
                last = at
                if ev["type"] == "O":
                    stack.append((ev["frame"], at))
                elif stack:
                    frame, opened = stack.pop()
                    if all(f != frame for f, _ in stack):
                        incl_t[frame] += at - opened

    def label(i: int) -> str:
        f = frames[i]
        path = str(f.get("file") or "")
        short = "/".join(path.split("/")[-2:])
        return f"{f.get('name')} ({short}:{f.get('line')})"

    areas: collections.Counter[str] = collections.Counter()
    for i, t in self_t.items():
        areas[_area(str(frames[i].get("file") or ""))] += t
    share = (lambda t: t / total) if total else (lambda t: 0.0)
    starts = [p.get("startValue", 0.0) for p in doc.get("profiles", [])]
    ends = [p.get("endValue", 0.0) for p in doc.get("profiles", [])]
    wall = (max(ends) - min(starts)) if starts and ends else 0.0
    return {
        "samples_seconds": total,
        "wall_seconds": wall,
        "self": [{"function": label(i), "share": share(t)} for i, t in self_t.most_common(TOP)],
        "inclusive": [
            {"function": label(i), "share": share(t)} for i, t in incl_t.most_common(TOP)
        ],
        "areas": {k: share(v) for k, v in areas.most_common()},
    }
