"""PostgreSQL's ceiling for pgqueue's own SQL: a plain psycopg loop, no framework.

Each loop process claims a batch with pgqueue's ``claim`` query (the worker's
batch size: its concurrency), completes the whole batch with pgqueue's
``complete`` query, and goes again, on one autocommit connection, until the
queue is empty or the window closes. Nothing runs in between: this is what
the database does with these two statements, the rate a worker would reach if
its Python cost were zero and it never waited. (A pgqueue worker claims and
completes on two connections at once, so it can beat one loop.)
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from typing import Any

import psycopg

from pgqueue._sql import query
from pgqueue.worker._completer import complete_params


def run_loop(config: dict[str, Any]) -> int:
    """The loop process (``python -m benchmarks.suite.workers ceiling``)."""
    stop = False

    def on_term(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    batch = int(config["batch"])
    claim_sql, complete_sql = query("claim"), query("complete")
    params = {
        "queues": config["queues"],
        "limit": batch,
        "lease": 30.0,
        "worker_id": f"ceiling:{os.getpid()}",
        "token": "",
    }
    jobs = claims = 0
    claim_s = complete_s = 0.0
    with psycopg.connect(config["dsn"], autocommit=True) as conn:
        while not stop:
            params["token"] = token = str(uuid.uuid4())  # one per claim, as the worker does
            t0 = time.perf_counter()
            rows = conn.execute(claim_sql, params).fetchall()
            t1 = time.perf_counter()
            claim_s += t1 - t0
            if not rows:
                break
            k = len(rows)
            # The worker's own parameters for the same batch (array literals).
            outcomes = [(r[0], token, "succeeded", None, None, None, None) for r in rows]
            conn.execute(
                complete_sql,
                complete_params(outcomes),
                prepare=False,  # as the worker's completer: never a generic plan
            ).fetchall()
            complete_s += time.perf_counter() - t1
            jobs += k
            claims += 1
    print(
        json.dumps(
            {"jobs": jobs, "round_trips": claims, "claim_s": claim_s, "complete_s": complete_s}
        )
    )
    return 0
