"""The run: a cluster, workers, the job stream, the scenarios in turn, the checks, the report.

``python -m benchmarks.chaos`` (``make chaos``) is the full run; ``--quick`` is the
bounded one CI runs (``tests/test_chaos_quick.py``). Exit status 0 when every
check passed, 1 when one failed, 2 when the run itself could not be carried out.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.chaos import checks, clock, procs, recovery, report, scenarios
from benchmarks.chaos.cluster import ChaosCluster, Namespace

RESULTS = Path(__file__).resolve().parents[1] / "results"
SCHEDULE = "chaos-tick"
DBNAME = "chaos"


@dataclass(frozen=True)
class Plan:
    jobs: int
    lease: float
    rescue: float
    workers: int  # pgqueue worker commands (supervisors)
    processes: int  # children per supervisor
    concurrency: int
    work_ms: float
    sigkill_s: float
    restart_modes: tuple[str, ...]
    storm_s: float
    exhaustion_rounds: int
    exhaustion_hold_s: float
    read_only_rounds: int
    partition_rounds: int
    drain_timeout_s: float

    @property
    def read_only_hold(self) -> float:
        return self.lease + 2.0  # longer than a lease: the heartbeats cannot renew meanwhile

    def planned_seconds(self) -> float:
        settle = self.lease + self.rescue + 3.0
        return (3 + self.sigkill_s + settle + len(self.restart_modes) * (3 + settle)
                + self.storm_s + settle
                + self.exhaustion_rounds * (self.exhaustion_hold_s + settle)
                + self.read_only_rounds * (self.read_only_hold + settle)
                + self.partition_rounds * (self.lease + self.rescue + 12))  # fmt: skip


FULL = Plan(jobs=100_000, lease=5.0, rescue=1.0, workers=3, processes=2, concurrency=8,
            work_ms=100, sigkill_s=150, restart_modes=("immediate", "fast", "immediate", "fast"),
            storm_s=45, exhaustion_rounds=2, exhaustion_hold_s=8, read_only_rounds=2,
            partition_rounds=2, drain_timeout_s=600)  # fmt: skip
QUICK = Plan(jobs=500, lease=2.0, rescue=0.5, workers=2, processes=2, concurrency=4,
             work_ms=300, sigkill_s=6, restart_modes=("immediate",), storm_s=3,
             exhaustion_rounds=0, exhaustion_hold_s=2, read_only_rounds=1, partition_rounds=1,
             drain_timeout_s=120)  # fmt: skip


def parse(argv: list[str] | None) -> argparse.Namespace:
    doc = (__doc__ or "").split("\n")[0]
    p = argparse.ArgumentParser(prog="python -m benchmarks.chaos", description=doc)
    p.add_argument("--quick", action="store_true", help="the bounded CI run (about a minute)")
    p.add_argument("--jobs", type=int, help="jobs in the stream (full: 100000, quick: 500)")
    p.add_argument("--seed", type=int, default=17, help="seed of every random choice")
    p.add_argument("--out", type=Path, help="directory of the report (default: "
                   "benchmarks/results, or the temporary directory with --quick)")
    p.add_argument("--no-partition", action="store_true", help="skip the network namespace")
    p.add_argument("--keep", action="store_true", help="keep the run directory (logs)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    # The harness's own producer pool retries through every outage; its log lines are noise.
    logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)
    plan = QUICK if args.quick else FULL
    if args.jobs:
        plan = Plan(**{**asdict(plan), "jobs": args.jobs})
    rundir = Path(tempfile.mkdtemp(prefix="pgqueue-chaos-"))
    rundir.chmod(0o755)  # the postgres user reaches its data directory through it
    ok = False
    try:
        result = run(plan, args, rundir)
        ok = result["verdict"]["ok"]
        name = f"{time.strftime('%Y-%m-%d')}-chaos{'-quick' if args.quick else ''}"
        out = args.out or (Path(tempfile.gettempdir()) if args.quick else RESULTS)
        md, js = report.write(result, out, name)
        print(f"chaos: {'PASS' if ok else 'FAIL'}; report {md} and {js}")
        print(report.summary(result))
    except Exception as exc:
        print(f"chaos: the run failed: {type(exc).__name__}: {exc}; logs in {rundir}/logs",
              file=sys.stderr)
        args.keep = True
        return 2
    finally:
        if not args.keep and ok:
            shutil.rmtree(rundir, ignore_errors=True)
        elif args.keep or not ok:
            print(f"chaos: logs in {rundir}/logs", file=sys.stderr)
    return 0 if ok else 1


def _migrate(server_dsn: str) -> str:
    from pgqueue._migrate import migrate_dsn

    with recovery.connect(server_dsn) as admin:
        admin.execute(f"CREATE DATABASE {DBNAME}")
    dsn = server_dsn.rsplit("/", 1)[0] + f"/{DBNAME}"
    migrate_dsn(dsn)
    from benchmarks.chaos.tasks import SCHEMA

    with recovery.connect(dsn) as conn:
        conn.execute(SCHEMA)
    return dsn


def _wait_workers(dsn: str, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with recovery.connect(dsn) as conn:
            row = conn.execute("SELECT count(*) FROM pgqueue.workers").fetchone()
        if row and row[0] >= count:
            return
        time.sleep(0.2)
    raise RuntimeError(f"fewer than {count} worker processes registered in {timeout:.0f} s")


def _drain(dsn: str, timeout: float) -> float:
    """Wait until no job of the run is unfinished; returns the seconds it took."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            with recovery.connect(dsn) as conn:
                row = conn.execute("SELECT count(*) FROM pgqueue.jobs WHERE status IN"
                                   " ('queued', 'failed', 'running')").fetchone()  # fmt: skip
            if row and row[0] == 0:
                return time.monotonic() - t0
        except Exception:
            pass
        time.sleep(0.5)
    return time.monotonic() - t0


def run(plan: Plan, args: argparse.Namespace, rundir: Path) -> dict[str, Any]:
    logdir = rundir / "logs"
    logdir.mkdir()
    logdir.chmod(0o777)
    rng = random.Random(args.seed)
    skip_partition = "--no-partition" if args.no_partition else Namespace.available()
    ns = None if skip_partition else Namespace(str(os.getpid() % 100000))
    cluster: ChaosCluster | None = None
    workers: list[procs.Proc] = []
    sched: scenarios.Schedulers | None = None
    monitor: recovery.Monitor | None = None
    t_start = time.time()
    try:
        if ns is not None:
            ns.create()
        # Room for every process's pools and task connections (about 25 per worker
        # process), so that only the exhaustion scenario runs out of slots.
        cluster = ChaosCluster(rundir / "data", extra_addresses=(ns.host_addr,) if ns else (),
                               hba_cidrs=(ns.cidr,) if ns else (), max_connections=400)  # fmt: skip
        dsn = _migrate(cluster.start())
        from benchmarks.chaos.tasks import app

        app.use_dsn(dsn)
        monitor = recovery.Monitor(dsn)
        monitor.start()
        workers = [procs.worker(f"worker-{i}", dsn, logdir, queues="chaos",
                                processes=plan.processes, concurrency=plan.concurrency,
                                lease=plan.lease, rescue_interval=plan.rescue,
                                work_ms=plan.work_ms) for i in range(plan.workers)]  # fmt: skip
        for w in workers:
            w.start()
        _wait_workers(dsn, plan.workers * plan.processes)
        ctx = scenarios.Ctx(cluster, dsn, workers, monitor, rng, plan.lease, plan.rescue,
                            plan.work_ms, logdir)  # fmt: skip
        app.add_schedule(SCHEDULE, cron="* * * * * *", task="chaos.tick")
        sched = scenarios.Schedulers(ctx, random.Random(args.seed + 1))
        sched.start()
        from benchmarks.chaos.producer import Producer

        producer = Producer(plan.jobs, time.monotonic() + plan.planned_seconds())
        producer.start()
        timeline: list[dict[str, Any]] = []

        def phase(name: str, fn: Any, *a: Any) -> None:
            t0 = time.time()
            fn(*a)
            timeline.append({"scenario": name, "start": t0, "seconds": round(time.time() - t0, 1)})

        phase("warmup", time.sleep, 3)
        phase("sigkill", scenarios.sigkill, ctx, plan.sigkill_s)
        phase("restart", scenarios.restarts, ctx, list(plan.restart_modes))
        phase("terminate", scenarios.terminate_storm, ctx, plan.storm_s)
        if plan.exhaustion_rounds:
            phase("exhaustion", scenarios.exhaustion, ctx, plan.exhaustion_hold_s,
                  plan.exhaustion_rounds)
        phase("read_only", scenarios.read_only, ctx, plan.read_only_hold, plan.read_only_rounds)
        if ns is not None and plan.partition_rounds:
            phase("partition", scenarios.partition, ctx, ns, plan.partition_rounds)
        producer.deadline = time.monotonic()  # whatever is left goes in now
        producer.join(plan.drain_timeout_s)
        drain_s = _drain(dsn, plan.drain_timeout_s)
        app.pause_schedule(SCHEDULE)
        sched.stop()
        _drain(dsn, 30)
        exits = {w.name: w.stop() for w in workers}
        monitor.stop()
        conn = ctx.db()
        for f in ctx.faults:
            if f["kind"].startswith("sigkill") or f["kind"] == "network-cut":
                f["recovery"] = recovery.kill_recovery(conn, f["at"], f["pids"], ctx.bound,
                                                       f.get("jobs"))
            else:
                f["recovery"] = recovery.server_recovery(conn, monitor, f["at"], f["back"],
                                                         ctx.bound)
        kills = [f for f in ctx.faults if f["scenario"] == "sigkill"]
        if "sigkill" in ctx.figures:
            ctx.figures["sigkill"].update(
                kills_that_orphaned_jobs=sum(1 for f in kills if f["recovery"]["orphans"]),
                orphaned_jobs_rescued=sum(f["recovery"]["orphans"] for f in kills))
        for t in timeline:  # the work done while each scenario's faults were injected
            row = conn.execute("SELECT count(*) FROM pgqueue.jobs WHERE finished_at BETWEEN"
                               " to_timestamp(%s) AND to_timestamp(%s)",
                               (t["start"], t["start"] + t["seconds"])).fetchone()  # fmt: skip
            t["jobs_finished"] = row[0] if row else 0
        recovered = [f["recovery"]["ok"] for f in ctx.faults]
        fencing = (checks.fencing(conn, ctx.faults) if ns is not None
                   else {"skipped": skip_partition, "ok": True})  # fmt: skip
        results = {
            "lost": checks.lost(conn, producer.ids, plan.jobs),
            "transactional_duplicates": checks.transactional(conn),
            "at_least_once_duplicates": checks.at_least_once(conn),
            "attempts_undercount": checks.undercount(conn),
            "recovery": {"bound_s": ctx.bound, "faults": len(recovered),
                         "within_bound": sum(recovered), "ok": all(recovered)},
            "cron": {**checks.cron(conn, SCHEDULE), "schedulers": len(sched.procs),
                     "scheduler_kills": sched.kills},
            "fencing": fencing,
            "clock": clock.check(),
        }
        ok = all(r["ok"] for r in results.values())
        return {
            "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t_start)),
            "seconds": round(time.time() - t_start, 1),
            "command": _command(args),
            "plan": asdict(plan),
            "server": _server_info(conn),
            "producer": {"enqueued": producer.enqueued, "jobs_returned": len(producer.ids),
                         "failed_batches_retried": producer.failures},
            "drain_after_last_scenario_s": round(drain_s, 1),
            "worker_exit_codes": exits,
            "timeline": timeline,
            "scenarios": ctx.figures,
            "faults": ctx.faults,
            "checks": results,
            "verdict": {"ok": ok, "failed": [k for k, r in results.items() if not r["ok"]]},
        }
    finally:
        if sched is not None:
            sched.stop()
        for w in workers:
            w.stop(5)
        if monitor is not None and monitor.is_alive():
            monitor.stop()
        if ns is not None:
            ns.close()
        if cluster is not None:
            cluster.destroy()


def _command(args: argparse.Namespace) -> str:
    words = ["python -m benchmarks.chaos"]
    if args.quick:
        words.append("--quick")
    if args.jobs:
        words.append(f"--jobs {args.jobs}")
    words.append(f"--seed {args.seed}")
    return " ".join(words)


def _server_info(conn: Any) -> dict[str, Any]:
    rows = conn.execute("SELECT name, setting FROM pg_settings WHERE name IN ('server_version',"
                        " 'fsync', 'synchronous_commit', 'max_connections')").fetchall()
    info = {r[0]: r[1] for r in rows}
    # Each deadlock costs a deadlock_timeout before the retry (the cluster is new: from 0).
    row = conn.execute("SELECT deadlocks FROM pg_stat_database"
                       " WHERE datname = current_database()").fetchone()  # fmt: skip
    info["deadlocks"] = row[0] if row else None
    return info


if __name__ == "__main__":
    sys.exit(main())
