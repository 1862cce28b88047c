"""``drain``: every ready job run to completion by a real worker, in this process."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

from pgqueue import App
from pgqueue._db import Statement
from pgqueue._sql import query
from pgqueue.worker import Worker, WorkerConfig

DRAIN_TICK = 0.02  # seconds between drain()'s checks of the database


def drain(
    app: App,
    queues: str | Iterable[str] | None = None,
    *,
    include_scheduled: bool = False,
    concurrency: int = 10,
    timeout: float | None = None,
) -> int:
    """Run every ready job of ``queues`` to completion with a real worker, in
    this process; return how many attempts ran.

    ``queues``: names (a list or ``"a,b"``); default: every queue the app's
    tasks use or a waiting job names. Jobs enqueued by the jobs run too.
    Without ``include_scheduled``, jobs due later and retries wait (a retry
    that comes due while other jobs still run may run); with it, they are
    made due at once, so every job ends finished (retries exhaust their
    attempts without waiting). ``timeout``: seconds before the worker is
    aborted (its running jobs released) and ``TimeoutError`` raised. Call
    ``drain_async`` under a running loop.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(drain_async(app, queues, include_scheduled=include_scheduled,
                                       concurrency=concurrency, timeout=timeout))  # fmt: skip
    raise RuntimeError("drain() was called inside a running event loop: await drain_async()")


async def drain_async(
    app: App,
    queues: str | Iterable[str] | None = None,
    *,
    include_scheduled: bool = False,
    concurrency: int = 10,
    timeout: float | None = None,
) -> int:
    """``drain`` on the running event loop (sync tasks on the worker's threads)."""
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    conn = await app.database.connect_async()
    try:
        names = await _drain_queues(app, conn, queues)
        config = WorkerConfig(
            queues=names, concurrency=concurrency, until_empty=True, rescue=False,
            scheduler=False, pruner=False, install_signal_handlers=False,
            worker_id=f"pgqueue.testing.drain:{id(conn):x}",
        )  # fmt: skip
        worker = Worker(app.database, app.registry, config)
        run = asyncio.ensure_future(worker.run_async())
        try:
            while not run.done():
                await asyncio.wait({run}, timeout=DRAIN_TICK)
                if run.done():
                    break
                if deadline is not None and loop.time() > deadline:
                    raise TimeoutError(f"drain: jobs still running after {timeout}s")
                if include_scheduled:
                    await _fetch(app, conn, "testing_make_due", names)
                elif (
                    not worker.running
                    and not (await _fetch(app, conn, "testing_busy", names))[0][0]
                ):
                    worker.stop()
            await run
        finally:
            if not run.done():
                worker.abort()
                await asyncio.wait({run})
        return worker.processed
    finally:
        await conn.close()


async def _fetch(app: App, conn: Any, name: str, queues: Sequence[str]) -> list[Any]:
    def op() -> Any:
        rows = yield Statement(query(name), {"queues": list(queues)})
        return rows

    return await app.database.run_async(op(), connection=conn)


async def _drain_queues(app: App, conn: Any, queues: str | Iterable[str] | None) -> tuple[str, ...]:
    if isinstance(queues, str):
        return tuple(q.strip() for q in queues.split(",") if q.strip())
    if queues is not None:
        return tuple(queues)
    waiting = [r[0] for r in await _fetch(app, conn, "testing_waiting_queues", ())]
    return tuple(sorted({"default", *app.registry.queues(), *waiting}))
