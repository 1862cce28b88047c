"""``pgqueue demo``: enqueue a mix of example jobs, run a worker until they are done.

Works with no configuration at all: without a DSN, ``App()`` starts the
embedded development database under ``./.pgqueue/``. The jobs go to their own
queue (``pgqueue-demo``); some fail and are retried, one is discarded (dead),
a few are async and a few are delayed. A burst worker runs in this process
until the queue is empty, with progress lines on the way and a per-task
summary at the end. Short retry backoff keeps it to a few seconds.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sys
import threading
import time
from collections import Counter
from typing import Any, TextIO

from pgqueue._app import App
from pgqueue._core import RetryPolicy
from pgqueue._errors import Discard
from pgqueue._migrate import migrate_dsn

DEMO_QUEUE = "pgqueue-demo"
DEMO_RETRY = RetryPolicy(base=0.2, cap=1.0)  # seconds: retries come quickly
PROGRESS_EVERY = 0.5  # seconds between progress lines

_failures: Counter[int] = Counter()  # charge_card attempts so far, per order (this process)


def build_app(dsn: str | None) -> App:
    app = App(dsn, retry=DEMO_RETRY)

    @app.task(name="demo.resize_image", queue=DEMO_QUEUE)
    def resize_image(photo_id: int, width: int = 128) -> dict[str, Any]:
        time.sleep(random.uniform(0.01, 0.05))
        return {"photo": photo_id, "thumbnail": f"{width}x{width}"}

    @app.task(name="demo.fetch_page", queue=DEMO_QUEUE)
    async def fetch_page(url: str) -> dict[str, Any]:
        await asyncio.sleep(random.uniform(0.05, 0.2))
        return {"url": url, "status": 200, "bytes": len(url) * 100}

    @app.task(name="demo.charge_card", queue=DEMO_QUEUE, max_attempts=4)
    def charge_card(order_id: int, cents: int) -> dict[str, Any]:
        # A flaky payment provider: order n fails its first (n % 3) attempts.
        _failures[order_id] += 1
        if _failures[order_id] <= order_id % 3:
            raise ConnectionError(f"payment provider timed out (order {order_id})")
        return {"order": order_id, "charged": cents}

    @app.task(name="demo.import_row", queue=DEMO_QUEUE)
    def import_row(row: dict[str, Any]) -> str:
        if "@" not in row.get("email", ""):
            raise Discard(f"row {row.get('line')} has no valid email; not worth retrying")
        return str(row["email"])

    @app.task(name="demo.send_reminder", queue=DEMO_QUEUE)
    def send_reminder(user_id: int) -> str:
        return f"reminder sent to user {user_id}"

    return app


def enqueue_jobs(app: App) -> list[int]:
    t = app.tasks
    specs = [t["demo.resize_image"].job(i) for i in range(1, 13)]
    specs += [t["demo.fetch_page"].job(f"https://example.com/page/{i}") for i in range(1, 7)]
    specs += [t["demo.charge_card"].job(order, 1999) for order in range(1, 7)]
    rows = [{"line": i, "email": f"user{i}@example.com"} for i in range(1, 5)]
    rows.append({"line": 5, "email": "not an email"})
    specs += [t["demo.import_row"].job(row) for row in rows]
    reminder = t["demo.send_reminder"]
    specs += [reminder.options(delay=1 + i / 4).job(i) for i in range(1, 5)]
    return [job.id for job in app.enqueue_many(specs)]


def _counts(app: App, ids: list[int]) -> dict[str, int]:
    with app.database.connection() as conn:
        rows = conn.execute(
            "SELECT status, count(*) FROM pgqueue.jobs WHERE id = ANY(%s) GROUP BY status",
            (ids,),
        ).fetchall()
    return {status: count for status, count in rows}


def _progress(app: App, ids: list[int], stop: threading.Event, out: TextIO) -> None:
    started = time.monotonic()
    last = None
    while not stop.wait(PROGRESS_EVERY):
        c = _counts(app, ids)
        done = c.get("succeeded", 0) + c.get("dead", 0)
        line = (
            f"  [{time.monotonic() - started:4.1f}s] {done:>2}/{len(ids)} finished"
            f"  succeeded {c.get('succeeded', 0)}, dead {c.get('dead', 0)},"
            f" running {c.get('running', 0)}, retrying {c.get('failed', 0)},"
            f" waiting {c.get('queued', 0)}"
        )
        if line.split("]", 1)[1] != last:
            print(line, file=out, flush=True)
            last = line.split("]", 1)[1]


def summary(app: App, ids: list[int]) -> list[tuple[str, int, int, int, int]]:
    """Per task: jobs, succeeded, dead, retries (attempts beyond the first)."""
    with app.database.connection() as conn:
        rows = conn.execute(
            "SELECT task, count(*), count(*) FILTER (WHERE status = 'succeeded'),"
            " count(*) FILTER (WHERE status = 'dead'), coalesce(sum(attempts - 1), 0)"
            " FROM pgqueue.jobs WHERE id = ANY(%s) GROUP BY task ORDER BY task",
            (ids,),
        ).fetchall()
    return [(r[0], int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows]


def print_summary(rows: list[tuple[str, int, int, int, int]], out: TextIO) -> None:
    header = ("task", "jobs", "succeeded", "dead", "retries")
    width = max(len(header[0]), *(len(r[0]) for r in rows))
    print(f"  {header[0]:<{width}}  {'  '.join(f'{h:>9}' for h in header[1:])}", file=out)
    for task, *numbers in rows:
        cells = "  ".join(f"{n:>9}" for n in numbers)
        print(f"  {task:<{width}}  {cells}", file=out)
    totals = [sum(r[1] for r in rows), sum(r[2] for r in rows), sum(r[3] for r in rows),
              sum(r[4] for r in rows)]  # fmt: skip
    print(f"  {'total':<{width}}  {'  '.join(f'{n:>9}' for n in totals)}", file=out)


def run_demo(dsn: str | None = None, *, verbose: bool = False, out: TextIO = sys.stdout) -> int:
    """The whole demo; returns an exit code (0: every job ended as expected)."""
    pgqueue_logger = logging.getLogger("pgqueue")
    previous_level = pgqueue_logger.level
    pgqueue_logger.setLevel(logging.INFO if verbose else logging.CRITICAL)
    if verbose:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        return _run(dsn, out)
    finally:
        pgqueue_logger.setLevel(previous_level)


def _run(dsn: str | None, out: TextIO) -> int:
    _failures.clear()
    app = build_app(dsn)
    migrate_dsn(app.database.resolve())
    ids = enqueue_jobs(app)
    print(f"pgqueue demo: enqueued {len(ids)} jobs on queue {DEMO_QUEUE!r}; running a worker",
          file=out, flush=True)  # fmt: skip
    stop = threading.Event()
    progress = threading.Thread(target=_progress, args=(app, ids, stop, out), daemon=True)
    started = time.monotonic()
    progress.start()
    try:
        code = app.run_worker(DEMO_QUEUE, concurrency=8, until_empty=True, poll_interval=0.25)
    finally:
        stop.set()
        progress.join()
    rows = summary(app, ids)
    print(f"done in {time.monotonic() - started:.1f}s (worker exit code {code})", file=out)
    print_summary(rows, out)
    app.close()
    dead = sum(r[3] for r in rows)
    succeeded = sum(r[2] for r in rows)
    return 0 if code == 0 and dead == 1 and succeeded == len(ids) - 1 else 1
