"""How soon an idle worker resumes after PostgreSQL comes back.

    python -m benchmarks.resume --down 4 --runs 3

On a throwaway cluster (``LocalCluster``, fsync off): an idle worker process
(poll interval 30 s, so only its reconnect brings it back), then per run the server is stopped
for ``--down`` seconds and started again, and a job is enqueued the moment
the server accepts connections. Reports the seconds from then until the job
has finished (``resume_s``), and the same round trip with the server up
(``idle_round_trip_s``) for comparison.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pgqueue
from pgqueue._embedded import LocalCluster
from pgqueue._migrate import migrate_dsn


def noop() -> None:
    return None


def make_app(dsn: str) -> pgqueue.App:
    app = pgqueue.App(dsn)
    app.task(name="bench.noop", queue="resume")(noop)
    return app


def _worker(dsn: str) -> None:
    sys.exit(make_app(dsn).run_worker("resume", poll_interval=30.0, concurrency=2))


def _round_trip(dsn: str) -> float:
    """Seconds to enqueue one job and see it finish."""
    started = time.monotonic()
    with make_app(dsn) as app:
        app.tasks["bench.noop"].enqueue().wait(timeout=60)
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.resume",
                                     description=__doc__.split("\n")[0])  # fmt: skip
    parser.add_argument("--down", type=float, default=4.0, help="seconds the server is down")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="pgqueue-resume-"))
    root.chmod(0o755)
    cluster = LocalCluster(root / "data", fast=True)
    try:
        dsn = cluster.start()
        migrate_dsn(dsn)
        proc = multiprocessing.get_context("spawn").Process(target=_worker, args=(dsn,))
        proc.start()
        _round_trip(dsn)  # the worker is up
        time.sleep(1.0)  # and idle
        idle = round(_round_trip(dsn), 3)
        figures = []
        for _ in range(args.runs):
            cluster.stop("fast")
            time.sleep(args.down)
            cluster.start()  # returns once the server accepts connections
            figures.append(round(_round_trip(dsn), 3))
        proc.terminate()
        proc.join(30)
    finally:
        cluster.destroy()
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps({"down_s": args.down, "idle_round_trip_s": idle, "resume_s": figures},
                     indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
