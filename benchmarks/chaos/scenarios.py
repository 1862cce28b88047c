"""The faults, one scenario at a time, each while the workers drain the job stream.

Every fault is appended to ``ctx.faults`` as a dict: ``scenario``, ``kind``,
``at`` (injected), ``back`` (the server, or the network, whole again) and, for
kills, the ``pids`` killed; recovery is measured after the run (``recovery.py``).
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.chaos import procs
from benchmarks.chaos.cluster import ChaosCluster, Namespace
from benchmarks.chaos.recovery import Monitor, connect
from benchmarks.chaos.tasks import app, fence_alo, fence_tx


@dataclass
class Ctx:
    cluster: ChaosCluster
    dsn: str
    workers: list[procs.Proc]
    monitor: Monitor
    rng: random.Random
    lease: float
    rescue: float
    work_ms: float
    logdir: Path
    faults: list[dict[str, Any]] = field(default_factory=list)
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)
    _conn: psycopg.Connection[Any] | None = None

    @property
    def bound(self) -> float:
        return self.lease + self.rescue

    @property
    def settle(self) -> float:
        """Seconds after a fault before the next scenario: its recovery window."""
        return self.bound + 3.0

    def db(self) -> psycopg.Connection[Any]:
        """The harness's connection, opened again after the server went away."""
        for _ in range(100):
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = connect(self.dsn)
                self._conn.execute("SELECT 1")
                return self._conn
            except psycopg.Error:
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                time.sleep(0.2)
        raise RuntimeError("the chaos cluster did not come back")

    def fault(self, scenario: str, kind: str, at: float, back: float, **extra: Any) -> None:
        self.faults.append({"scenario": scenario, "kind": kind, "at": at, "back": back, **extra})


# -- worker kills --------------------------------------------------------------


def sigkill(ctx: Ctx, duration: float) -> None:
    """SIGKILL a whole worker (supervisor and children: a host dying) or one
    supervisor child, every 1-2.5 s; a killed worker is started again 0.3-1.5 s later."""
    end = time.monotonic() + duration
    restart: dict[int, float] = {}  # index in ctx.workers -> when to start it again
    groups = children = 0
    while time.monotonic() < end:
        time.sleep(ctx.rng.uniform(1.0, 2.5))
        now = time.monotonic()
        for i, when in list(restart.items()):
            if when <= now:
                ctx.workers[i].start()
                del restart[i]
        alive = [i for i, w in enumerate(ctx.workers) if w.running() and i not in restart]
        if not alive:
            continue
        i = ctx.rng.choice(alive)
        at = time.time()
        if ctx.rng.random() < 0.4 and len(alive) > 1:
            pids = ctx.workers[i].kill_group()
            restart[i] = time.monotonic() + ctx.rng.uniform(0.3, 1.5)
            ctx.fault("sigkill", "sigkill-worker", at, at, pids=pids)
            groups += 1
        else:
            pid = ctx.workers[i].kill_child(ctx.rng)
            if pid is not None:
                ctx.fault("sigkill", "sigkill-child", at, at, pids=[pid])
                children += 1
    for i in restart:
        ctx.workers[i].start()
    time.sleep(ctx.settle)  # the last kill's orphans are rescued before the server is touched
    ctx.figures["sigkill"] = {"workers_killed": groups, "children_killed": children,
                              "duration_s": duration}  # fmt: skip


# -- the server ----------------------------------------------------------------


def restarts(ctx: Ctx, modes: list[str]) -> None:
    """``pg_ctl stop -m <mode>`` then start, the modes in turn (immediate: a crash)."""
    downtimes = []
    for mode in modes:
        at = time.time()
        ctx.cluster.restart(mode)  # type: ignore[arg-type]
        back = time.time()
        downtimes.append(round(back - at, 3))
        ctx.fault("restart", f"restart-{mode}", at, back)
        time.sleep(ctx.settle)
    ctx.figures["restart"] = {"modes": modes, "downtime_s": downtimes}


def _pgqueue_backends(conn: psycopg.Connection[Any]) -> list[int]:
    rows = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (procs.APP_NAME,)
    ).fetchall()
    return [r[0] for r in rows]


def terminate_storm(ctx: Ctx, duration: float, share: float = 0.3) -> None:
    """Every 0.25 s, ``pg_terminate_backend`` a random ``share`` of pgqueue's sessions
    (those whose application_name the workers carry)."""
    at = time.time()
    end = time.monotonic() + duration
    killed = pulses = 0
    while time.monotonic() < end:
        conn = ctx.db()
        pids = [p for p in _pgqueue_backends(conn) if ctx.rng.random() < share]
        if pids:
            row = conn.execute("SELECT count(*) FILTER (WHERE pg_terminate_backend(p))"
                               " FROM unnest(%s::int[]) AS p", (pids,)).fetchone()  # fmt: skip
            killed += row[0] if row else 0
        pulses += 1
        time.sleep(0.25)
    back = time.time()
    ctx.fault("terminate", "terminate-storm", at, back, terminated=killed)
    ctx.figures["terminate"] = {"duration_s": duration, "pulses": pulses,
                                "backends_terminated": killed}  # fmt: skip
    time.sleep(ctx.settle)


def exhaustion(ctx: Ctx, hold: float, rounds: int) -> None:
    """Another client takes every connection slot (superuser: the reserved ones too)
    for ``hold`` seconds, then lets go. Meanwhile pgqueue's sessions are terminated
    every 0.5 s and the client takes each slot they free, so pgqueue's processes
    reconnect into a full server; the figure is how many sessions they still held."""
    held_max = 0
    sessions: list[int] = []
    for _ in range(rounds):
        filler: list[psycopg.Connection[Any]] = []
        conn = ctx.db()
        at = time.time()
        _grab(ctx.dsn, filler)
        end = time.monotonic() + hold
        next_pulse = 0.0
        while time.monotonic() < end:
            with contextlib.suppress(psycopg.Error):
                if time.monotonic() >= next_pulse:
                    conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                 " WHERE application_name = %s", (procs.APP_NAME,))  # fmt: skip
                    next_pulse = time.monotonic() + 0.5
                _grab(ctx.dsn, filler)
                sessions.append(len(_pgqueue_backends(conn)))
            time.sleep(0.01)
        held_max = max(held_max, len(filler))
        for c in filler:
            c.close()
        back = time.time()
        ctx.fault("exhaustion", "connections-exhausted", at, back, held=len(filler))
        time.sleep(ctx.settle)
    sessions.sort()
    ctx.figures["exhaustion"] = {
        "rounds": rounds, "hold_s": hold, "connections_held": held_max,
        "pgqueue_sessions_during_hold_median": sessions[len(sessions) // 2] if sessions else None,
        "pgqueue_sessions_during_hold_max": sessions[-1] if sessions else None,
    }


def _grab(dsn: str, held: list[psycopg.Connection[Any]]) -> None:
    """Open connections into ``held`` until the server refuses one."""
    while True:
        try:
            held.append(psycopg.connect(dsn, autocommit=True, connect_timeout=2,
                                        application_name="chaos-filler"))  # fmt: skip
        except psycopg.OperationalError:
            return


def read_only(ctx: Ctx, hold: float, rounds: int) -> None:
    """``ALTER SYSTEM SET default_transaction_read_only = on`` + reload for ``hold``
    seconds (what a failover to a standby looks like to a client), then off."""
    writes_in_window = 0
    for _ in range(rounds):
        conn = ctx.db()
        conn.execute("SET default_transaction_read_only = off")  # this session still writes
        conn.execute("ALTER SYSTEM SET default_transaction_read_only = on")
        conn.execute("SELECT pg_reload_conf()")
        at = time.time()
        time.sleep(hold)
        conn = ctx.db()
        conn.execute("SET default_transaction_read_only = off")
        conn.execute("ALTER SYSTEM RESET default_transaction_read_only")
        conn.execute("SELECT pg_reload_conf()")
        back = time.time()
        # Effects committed well inside the window would mean the server was not read-only.
        row = conn.execute("SELECT count(*) FROM chaos.effects WHERE at BETWEEN"
                           " to_timestamp(%s) AND to_timestamp(%s)", (at + 0.5, back - 0.2)
                           ).fetchone()  # fmt: skip
        writes_in_window += row[0] if row else 0
        ctx.fault("read_only", "read-only", at, back)
        time.sleep(ctx.settle)
    ctx.figures["read_only"] = {"rounds": rounds, "hold_s": hold,
                                "effects_committed_while_read_only": writes_in_window}  # fmt: skip


# -- the network ---------------------------------------------------------------


def partition(ctx: Ctx, ns: Namespace, rounds: int) -> None:
    """A worker in its own network namespace claims two fence jobs (one at least once,
    one transactional); its link degrades, then goes down; its leases lapse, the
    rescuer frees the jobs and a host-side worker runs and finishes them; the link
    comes back and the zombie's first attempts end: their completions must be refused."""
    ns_dsn = ctx.cluster.host_dsn(ns.host_addr, ctx.dsn.rsplit("/", 1)[1])
    zombie = procs.worker("zombie", ns_dsn, ctx.logdir, queues="fence", processes=1,
                          concurrency=4, lease=ctx.lease, rescue_interval=ctx.rescue,
                          work_ms=ctx.work_ms, rescue=False, prefix=ns.prefix())  # fmt: skip
    taker = procs.worker("taker", ctx.dsn, ctx.logdir, queues="fence", processes=1,
                         concurrency=4, lease=ctx.lease, rescue_interval=ctx.rescue,
                         work_ms=ctx.work_ms)  # fmt: skip
    results = []
    zombie.start()
    try:
        for n in range(rounds):
            results.append(_partition_round(ctx, ns, zombie, taker, n))
    finally:
        if _link_down(ns):  # a round that failed half-way must not leave the link cut
            ns.restore()
        taker.stop(5)
        zombie.stop(5)
    ctx.figures["partition"] = {"rounds": rounds, "shaping": ns.shaping, "jobs": results}


def _link_down(ns: Namespace) -> bool:
    out = ns.run("ip", "-o", "link", "show", ns.ns_if).stdout
    return "state DOWN" in out or ",UP" not in out


def _wait(what: str, check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise RuntimeError(f"partition: timed out waiting for {what}")


def _partition_round(ctx: Ctx, ns: Namespace, zombie: procs.Proc, taker: procs.Proc,
                     n: int) -> dict[str, Any]:  # fmt: skip
    release = ctx.logdir / f"release-{n}"
    jobs = app.enqueue_many([fence_alo.job(str(release)), fence_tx.job(str(release))])
    ids = [j.id for j in jobs]

    def held() -> list[Any] | None:
        rows = ctx.db().execute(
            "SELECT worker_id FROM pgqueue.jobs WHERE id = ANY(%s) AND status = 'running'"
            " ORDER BY id", (ids,)).fetchall()  # fmt: skip
        return [r[0] for r in rows] if len(rows) == 2 else None

    zombie_ids = _wait("the zombie's claim", held, 60)
    shaping = ns.degrade(delay_ms=200, loss_pct=5)
    time.sleep(min(2.0, ctx.lease / 2))  # degraded, not cut: the heartbeat still gets through
    cut = time.time()
    ns.cut()
    taker.start()

    def finished() -> list[Any] | None:
        rows = ctx.db().execute(
            "SELECT id, status, worker_id, attempts, result::text, finished_at FROM pgqueue.jobs"
            " WHERE id = ANY(%s) AND status = 'succeeded' ORDER BY id", (ids,)).fetchall()
        return rows if len(rows) == 2 else None

    try:
        before = _wait("the takeover", finished, ctx.bound + 60)
    except RuntimeError:  # never taken over: recorded, and the fencing check fails on it
        before = None
    restored = time.time()
    ns.heal_shaping()
    ns.restore()
    release.touch()

    def marked() -> bool:
        row = ctx.db().execute("SELECT count(*) FROM chaos.marks WHERE job_id = ANY(%s)"
                               " AND attempt = 1", (ids,)).fetchone()  # fmt: skip
        return bool(row and row[0] == 2)

    # On a timeout there is no mark, and the fencing check cannot call the job refused.
    with contextlib.suppress(RuntimeError):
        _wait("the zombie's late attempts", marked, 60)
    time.sleep(3.0)  # the zombie's completer gets its chance (and its retries)
    after = ctx.db().execute("SELECT id, status, worker_id, attempts, result::text, finished_at"
                             " FROM pgqueue.jobs WHERE id = ANY(%s) ORDER BY id", (ids,)
                             ).fetchall()  # fmt: skip
    taker.stop(5)
    ctx.fault("partition", "network-cut", cut, cut, pids=[zombie.pid], jobs=ids,
              zombie_workers=zombie_ids, restored=restored, shaping=shaping,
              unchanged=[before is not None and tuple(map(str, a)) == tuple(map(str, b))
                         for a, b in zip(before or after, after, strict=True)])  # fmt: skip
    return {"jobs": ids, "cut_at": cut, "taken_over": before is not None,
            "restored_after_s": round(restored - cut, 3)}


# -- cron ----------------------------------------------------------------------


class Schedulers(threading.Thread):
    """Four ``pgqueue scheduler`` processes, one SIGKILLed every 2-5 s and started
    again 0.2-2 s later, for as long as the run lasts (a thread of its own)."""

    def __init__(self, ctx: Ctx, rng: random.Random, count: int = 4) -> None:
        super().__init__(name="chaos-schedulers", daemon=True)
        self._halt = threading.Event()
        self.ctx = ctx
        self.rng = rng
        self.procs = [procs.scheduler(f"scheduler-{i}", ctx.dsn, ctx.logdir) for i in range(count)]
        self.kills = 0
        self._next_kill = 0.0
        self._restart: dict[int, float] = {}

    def run(self) -> None:
        for p in self.procs:
            p.start()
        self._next_kill = time.monotonic() + self.rng.uniform(2, 5)
        while not self._halt.wait(0.05):
            self.step()

    def step(self) -> None:
        """Kill or restart when it is time."""
        now = time.monotonic()
        for i, when in list(self._restart.items()):
            if when <= now:
                self.procs[i].start()
                del self._restart[i]
        if now >= self._next_kill:
            i = self.rng.randrange(len(self.procs))
            if i not in self._restart and self.procs[i].running():
                self.procs[i].kill_group()
                self.kills += 1
                self._restart[i] = now + self.rng.uniform(0.2, 2.0)
            self._next_kill = now + self.rng.uniform(2, 5)

    def stop(self) -> None:
        self._halt.set()
        self.join(10)
        for p in self.procs:
            p.stop(5)

