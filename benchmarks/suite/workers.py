"""Every worker the suite times runs as ``python -m benchmarks.suite.workers KIND CONFIG``.

KIND: ``pgqueue`` (``app.run_worker``; ``processes`` > 1 is pgqueue's own
supervisor), ``ceiling`` (the plain SQL loop), ``procrastinate``,
``pgqueuer``, ``celery`` (Celery's own worker on a Redis broker),
``producer`` (the load workloads' producer, ``benchmarks/load.py``).
CONFIG: a JSON object with at least ``dsn`` and ``burst`` (exit once the
queue is empty); ``claim_log``: a file each claim's duration is appended
to; ``options``: further ``WorkerConfig`` settings. Started and stopped by
``procs.py``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def run_pgqueue(config: dict[str, Any]) -> int:
    os.environ["PGQUEUE_DSN"] = config["dsn"]
    from benchmarks.suite.tasks import app

    options: dict[str, Any] = {}
    if config.get("claim_log"):
        from benchmarks.horizon_worker import time_claims

        time_claims(config["claim_log"])
    if config.get("max_tasks"):
        options["max_tasks"] = int(config["max_tasks"])
    options.update(config.get("options") or {})
    code = app.run_worker(
        config.get("queues", ["bench"]),
        concurrency=int(config["concurrency"]),
        processes=int(config.get("processes", 1)),
        until_empty=bool(config["burst"]),
        **options,
    )
    return 0 if code in (0, 75) else code


def main(argv: list[str]) -> int:
    kind, config = argv[0], json.loads(argv[1])
    if kind == "pgqueue":
        return run_pgqueue(config)
    if kind == "ceiling":
        from benchmarks.suite.ceiling import run_loop

        return run_loop(config)
    if kind == "procrastinate":
        from benchmarks.suite.peers.procrastinate_peer import run_worker

        return run_worker(config)
    if kind == "pgqueuer":
        from benchmarks.suite.peers.pgqueuer_peer import run_worker as run_pgqueuer

        return run_pgqueuer(config)
    if kind == "celery":
        from benchmarks.suite.peers.celery_peer import run_worker as run_celery

        return run_celery(config)
    if kind == "producer":
        from benchmarks.load import run_producer

        return run_producer(config)
    raise SystemExit(f"unknown worker kind {kind!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
