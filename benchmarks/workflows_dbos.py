"""DBOS Transact as the peer of ``benchmarks.workflows``: the same 3-step no-op workflow.

Run by ``python -m benchmarks.workflows --dbos-python PATH`` with the interpreter of
a virtualenv that has ``dbos`` installed (it is not a dependency of pgqueue):
``PATH -m benchmarks.workflows_dbos DSN N CONCURRENCY``. Prints one JSON object.
Workflows are enqueued on a DBOS queue and run by this one process; the rate is over
their own span (first start to last update, from DBOS's ``workflow_status``).
"""

from __future__ import annotations

import json
import sys
import time


def main(dsn: str, n: int, concurrency: int) -> dict[str, object]:
    import psycopg
    from dbos import DBOS  # type: ignore[import-not-found]

    DBOS(config={"name": "pgqueue-bench", "system_database_url": dsn})

    @DBOS.step()
    def s1(i: int) -> int:
        return i

    @DBOS.step()
    def s2(i: int) -> int:
        return i

    @DBOS.step()
    def s3(i: int) -> int:
        return i

    @DBOS.workflow()
    def wf3(i: int) -> int:
        return s1(i) + s2(i) + s3(i)

    DBOS.launch()
    queue = DBOS.register_queue("bench", worker_concurrency=concurrency,
                                polling_interval_sec=0.05)
    t0 = time.perf_counter()
    handles = [queue.enqueue(wf3, i) for i in range(n)]
    enqueued = time.perf_counter() - t0
    for handle in handles:
        handle.get_result()
    wall = time.perf_counter() - t0
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT (max(updated_at) - min(created_at)) / 1000.0, count(*)"
            " FROM dbos.workflow_status WHERE status = 'SUCCESS'"
        ).fetchone()
    DBOS.destroy()
    span = float(row[0]) if row and row[0] else wall
    return {"workflows": n, "succeeded": row[1] if row else None,
            "workflows_per_s_span": round(n / span), "workflows_per_s_wall": round(n / wall),
            "enqueue_s": round(enqueued, 3)}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
