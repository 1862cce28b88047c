"""Watching the running set, and the recovery time of each fault.

A fault is recovered when both hold, measured from the moment the server is
back (the fault's ``back``; for a killed worker, the kill):

1. work resumed: the first job completion after ``back`` (``finished_at``, the
   database's clock);
2. no lapsed lease is left behind: the running set holds no job whose
   ``leased_until`` has passed, from that moment on (sampled every 0.1 s by
   :class:`Monitor`, on a connection of its own).

For a killed worker the second is exact, from the database: each job it held is
rescued, and the rescue writes its time in the job's ``errors``
(``LeaseExpired: worker <host>:<pid>:...``), so its recovery is the last rescue
of a job of that pid minus the kill.

The bound is one lease plus one rescuer interval (README, "Delivery guarantees").
Host and server share one clock here, so harness times and ``now()`` compare.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import psycopg

HARNESS = "chaos-harness"  # application_name of the harness's own connections
SAMPLE = 0.1


def connect(dsn: str, timeout: float = 3.0) -> psycopg.Connection[Any]:
    return psycopg.connect(dsn, autocommit=True, connect_timeout=max(1, round(timeout)),
                           application_name=HARNESS)


@dataclass
class Sample:
    at: float
    expired: int  # running jobs whose lease has passed
    running: int
    waiting: int  # queued or failed (retry), due or not


class Monitor(threading.Thread):
    """Samples the running set every 0.1 s; a sample is skipped while the server is away."""

    def __init__(self, dsn: str) -> None:
        super().__init__(name="chaos-monitor", daemon=True)
        self.dsn = dsn
        self.samples: list[Sample] = []
        self._halt = threading.Event()
        self._conn: psycopg.Connection[Any] | None = None

    def stop(self) -> None:
        self._halt.set()
        self.join(5)

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = connect(self.dsn, 1.0)
                row = self._conn.execute(
                    "SELECT count(*) FILTER (WHERE status = 'running' AND leased_until < now()),"
                    " count(*) FILTER (WHERE status = 'running'),"
                    " count(*) FILTER (WHERE status IN ('queued', 'failed'))"
                    " FROM pgqueue.jobs WHERE status IN ('running', 'queued', 'failed')"
                ).fetchone()
                assert row is not None
                self.samples.append(Sample(time.time(), row[0], row[1], row[2]))
            except psycopg.Error:
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
            self._halt.wait(SAMPLE)

    def clear_after(self, back: float, until: float) -> float | None:
        """The first sample time >= ``back`` from which no sample up to ``until`` saw a
        lapsed lease (None: one was still there at ``until``)."""
        window = [s for s in self.samples if back <= s.at <= until]
        if not window:
            return None
        clear: float | None = window[0].at if window[0].expired == 0 else None
        for s in window:
            if s.expired:
                clear = None
            elif clear is None:
                clear = s.at
        return clear

    def waiting_at(self, moment: float) -> int:
        before = [s for s in self.samples if s.at <= moment]
        return before[-1].waiting + before[-1].running if before else 0


def first_completion_after(conn: psycopg.Connection[Any], back: float) -> float | None:
    row = conn.execute(
        "SELECT extract(epoch FROM min(finished_at)) FROM pgqueue.jobs"
        " WHERE finished_at > to_timestamp(%s) AND status = 'succeeded'",
        (back,),
    ).fetchone()
    return float(row[0]) if row and row[0] is not None else None


def server_recovery(conn: psycopg.Connection[Any], monitor: Monitor, at: float, back: float,
                    bound: float) -> dict[str, Any]:  # fmt: skip
    """Recovery of a server-side fault from ``at`` to ``back`` (see the module doc)."""
    until = back + bound + 3.0
    first = first_completion_after(conn, back)
    clear = monitor.clear_after(back, until)
    lapsed = max((s.expired for s in monitor.samples if at <= s.at <= until), default=0)
    out: dict[str, Any] = {"first_completion_s": _rel(first, back),
                           "leases_clear_s": _rel(clear, back),
                           "lapsed_leases_seen": lapsed,
                           "work_waiting": monitor.waiting_at(at)}  # fmt: skip
    if first is None or clear is None:
        out.update(recovery_s=None, ok=False)
        return out
    recovery = max(first, clear) - back
    out.update(recovery_s=round(recovery, 3), ok=recovery <= bound)
    return out


def kill_recovery(conn: psycopg.Connection[Any], at: float, pids: list[int],
                  bound: float, jobs: list[int] | None = None) -> dict[str, Any]:  # fmt: skip
    """Recovery of a SIGKILL (or a cut) at ``at`` of ``pids``: the rescues of their
    jobs after ``at`` (``errors``), of ``jobs`` only when given."""
    patterns = [f"LeaseExpired: worker %:{pid}:%" for pid in pids]
    rows = conn.execute(
        "SELECT j.id, extract(epoch FROM (e->>'at')::timestamptz)"
        " FROM pgqueue.jobs AS j, jsonb_array_elements(j.errors) AS e"
        " WHERE e->>'error' LIKE ANY(%s) AND (e->>'at')::timestamptz >= to_timestamp(%s)"
        " AND (%s::bigint[] IS NULL OR j.id = ANY(%s::bigint[]))",
        (patterns, at, jobs, jobs),
    ).fetchall()
    if not rows:
        return {"orphans": 0, "recovery_s": None, "ok": True}
    last = max(float(r[1]) for r in rows)
    recovery = last - at
    return {"orphans": len({r[0] for r in rows}), "recovery_s": round(recovery, 3),
            "ok": recovery <= bound}  # fmt: skip


def _rel(moment: float | None, back: float) -> float | None:
    return None if moment is None else round(moment - back, 3)
