"""Where the server's time goes in a phase: pg_stat_statements and backend CPU deltas.

``snapshot(conn)`` reads the statements of the connection's database from
``pg_stat_statements`` (when the server preloads it; otherwise None, and the
reports leave the table out), ``server_cpu(conn)`` the CPU seconds of the
server's processes (from ``/proc``, when the server runs on this machine).
``top(before, after)`` is the delta between two snapshots: the statements that
took the most execution time, with calls, mean time and shared buffers per call.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.load import TICKS

STATEMENTS = """
SELECT queryid, left(regexp_replace(query, '\\s+', ' ', 'g'), 90), calls,
       total_exec_time, shared_blks_hit + shared_blks_read
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
"""

Snapshot = dict[int, tuple[str, int, float, int]]


def snapshot(conn: psycopg.Connection[Any]) -> Snapshot | None:
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            rows = conn.execute(STATEMENTS).fetchall()
    except psycopg.Error:  # not preloaded, or no right to create it: no table
        return None
    return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}


def top(before: Snapshot | None, after: Snapshot | None, n: int = 6) -> list[dict[str, Any]]:
    if before is None or after is None:
        return []
    out: list[dict[str, Any]] = []
    for qid, (text, calls, total, blocks) in after.items():
        c0, t0, b0 = before.get(qid, (text, 0, 0.0, 0))[1:]
        calls_d = calls - c0
        if calls_d > 0:
            out.append({"query": text, "calls": calls_d, "total_ms": round(total - t0, 1),
                        "mean_ms": round((total - t0) / calls_d, 3),
                        "buffers_per_call": round((blocks - b0) / calls_d, 1)})  # fmt: skip
    out.sort(key=lambda s: float(s["total_ms"]), reverse=True)
    return out[:n]


def server_cpu(conn: psycopg.Connection[Any]) -> float | None:
    """CPU seconds of the server: the postmaster (with the backends it reaped) and
    its live children; None when the server is not a process of this machine. (Each
    backend has a session of its own, so a process group would not find them.)"""
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    try:
        postmaster = _stat(row[0] if row else 0)[0]
        total = _stat(postmaster)[1]
    except OSError:
        return None
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                parent, cpu = _stat(int(entry.name))
                if parent == postmaster:
                    total += cpu
    return total / TICKS


def _stat(pid: int) -> tuple[int, int]:
    """(parent pid, CPU ticks with reaped children) of a process, from /proc."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[1]), sum(int(f) for f in fields[11:15])
