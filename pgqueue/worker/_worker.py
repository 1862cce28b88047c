"""The worker: an asyncio loop that claims jobs into free slots and starts them.

Each turn claims up to the number of free slots, plus the free places of the
claim-ahead buffer (``prefetch``), in ONE statement (``claim``, or
``claim_after`` from the bounds of ``_bounds.py``: ``FOR UPDATE SKIP LOCKED``
through ``jobs_claim_idx``; no transaction stays open while jobs run), starts
what the free slots take and buffers the rest, in the claim's order. A slot
that frees up starts the next buffered job at once, from whichever thread
freed it (``finish``), so no slot waits for a claim round trip; the loop
claims again once half the buffer is free. A full batch means
there may be more: the loop claims again as soon as there is room. A short
batch means the queues are drained: the loop sleeps until a notification for
one of its queues (``pgqueue_jobs``), a local retry comes due, or the poll
interval (with jitter) passes.

Around it: the notifier (LISTEN), the completer (batched outcomes), the
heartbeat (leases, worker row), the services (rescuer, scheduler, pruner,
metrics) and a watchdog (timeouts, a vanished supervisor); they are started
in ``_startup.py`` and stopped in ``_shutdown.py``, which return what they built
(the notifier, the heartbeat, the exit code); the worker keeps it.

Threads: the event loop (claims, dispatch, async tasks), the task threads
(sync tasks), the completer, the heartbeat and each maintenance loop. A job
enters ``running`` on the loop and leaves it through ``finish`` from any
thread, under ``lock``; the loop is woken across threads only when it waits
for a free slot (or, in burst mode, for the last job), not per job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pgqueue._sql import query
from pgqueue.worker._bounds import ClaimBounds
from pgqueue.worker._claimed import Claimed, Outcome
from pgqueue.worker._completer import Completer
from pgqueue.worker._config import EXIT_ABORTED, EXIT_OK, RECYCLE_EXIT_CODE, WorkerConfig
from pgqueue.worker._connect import LoopConnection
from pgqueue.worker._executor import Executor
from pgqueue.worker._heartbeat import Heartbeat
from pgqueue.worker._limits import LimitedQueues
from pgqueue.worker._log import kv, log, logger, worker_failed
from pgqueue.worker._notifier import Notifier
from pgqueue.worker._services import Services
from pgqueue.worker._shutdown import shutdown
from pgqueue.worker._signals import SignalHandlers
from pgqueue.worker._startup import startup

if TYPE_CHECKING:
    from pgqueue._db import Database
    from pgqueue._registry import Registry

BURST_RECHECK = 0.25  # seconds: longest idle wait of a burst worker


class Worker:
    """One worker process's runtime: ``run()`` (blocking) or ``await run_async()``.

    ``stop()`` asks for a graceful shutdown and ``abort()`` for an immediate
    one; both may be called from any thread. Returns the exit code: 0 after a
    clean drain, 1 when running jobs had to be released, 75 when the worker
    reached ``max_tasks`` (a supervisor replaces it).
    """

    def __init__(
        self, database: Database, registry: Registry, config: WorkerConfig | None = None
    ) -> None:
        self.database = database
        self.registry = registry
        self.config = (config or WorkerConfig()).resolve(registry)
        assert self.config.queues is not None
        self.queues = list(self.config.queues)
        self.worker_id = self.config.make_worker_id()
        self.lease = registry.lease
        self.running: dict[int, Claimed] = {}
        # Claimed but not started yet, in claim (priority) order: the claim-ahead
        # buffer, at most ``prefetch`` jobs beyond the free slots. Under ``lock``.
        self.buffer: deque[Claimed] = deque()
        self.prefetch = self.config.prefetch_jobs
        # Claim again once this much room is free: half the buffer, so that the
        # next batch arrives while the other half still feeds the slots.
        self._refill_at = max(1, (self.prefetch + 1) // 2)
        self._room_wanted = 1  # the room whose opening wakes a loop waiting for a slot
        self.lock = threading.Lock()
        self.executor = Executor(database, registry, self.finish, threads=self.config.concurrency)
        self.executor.on_wake = self._retry_due  # a workflow's sleep: claim when it is due
        self.completer = Completer(
            database,
            batch=self.config.completer_batch,
            linger=self.config.completer_linger,
            on_retry=self._retry_due,
        )
        self.processed = 0  # jobs finished (any outcome) by this worker
        self.claimed = 0
        self._undispatched: list[Claimed] = []  # claimed after a stop request: released unstarted
        self.stopping = False
        self.aborting: asyncio.Event | None = None
        self._finished_gen = 0
        self._wake_on_finish = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._wake: asyncio.Event | None = None  # new work may be ready: claim
        self._progress: asyncio.Event | None = None  # a job finished: a slot is free
        self._stop_requested: asyncio.Event | None = None
        self.db = LoopConnection(database, self._sleep, lambda: not self.stopping, self.worker_id)
        self.notifier: Notifier | None = None
        self.heartbeat: Heartbeat | None = None
        self.services = Services(database, registry, self.config)
        self.limits = LimitedQueues(self.queues)
        self.bounds = ClaimBounds()  # where plain-queue claims start (pinned horizons)
        self._signals = 0
        self._signal_handlers = SignalHandlers()
        self._owns_loop = False  # run() made the event loop: signals are ours

    # -- public -----------------------------------------------------------------

    def run(self) -> int:
        self._owns_loop = True
        return asyncio.run(self.run_async())

    async def run_async(self) -> int:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._stop_requested = asyncio.Event()
        self.aborting = asyncio.Event()
        started = await startup(self)
        self.notifier, self.heartbeat = started.notifier, started.heartbeat
        self.executor.metrics = self.services.metrics
        code = EXIT_ABORTED  # unless the loop returns, or the host cancels it
        try:
            code = await self._claim_loop()
        except asyncio.CancelledError:
            code = EXIT_OK  # the host ends the worker's task: a graceful stop, then re-raise
            raise
        except Exception as exc:  # a bug, or a database error that is no outage: stop cleanly
            worker_failed(self.worker_id, exc)
        finally:
            self.stopping = True
            stopped_at = time.monotonic()
            try:
                if await shutdown(self, started) != EXIT_OK:
                    code = EXIT_ABORTED
            finally:
                self._signal_handlers.remove()
                log(
                    logging.INFO,
                    "worker_stop",
                    worker=self.worker_id,
                    processed=self.processed,
                    exit_code=code,
                    seconds=time.monotonic() - stopped_at,
                )
        return code

    def stop(self) -> None:
        """Stop claiming; let running jobs finish (within the grace period)."""
        if self._loop is None:
            self.stopping = True  # not started yet: it will not claim at all
        self.call(self._request_stop)

    def abort(self) -> None:
        """Stop now: release running jobs (their attempt counts) and exit."""
        if self._loop is None:
            self.stopping = True
        self.call(self._request_abort)

    # -- the claim loop ------------------------------------------------------------

    async def _claim_loop(self) -> int:
        """Claim and dispatch until stopped or drained; returns the exit code."""
        cfg = self.config
        wake = self._wake
        assert wake is not None
        while not self.stopping:
            if self.completer.backlog() > cfg.completer_batch:
                # Jobs finish faster than their outcomes are recorded: let the
                # completer catch up rather than pile up finished-but-running rows.
                await asyncio.sleep(cfg.completer_linger or 0.001)
                continue
            gen = self._finished_gen
            room, wanted = self._room()
            if cfg.max_tasks is not None:
                room = min(room, cfg.max_tasks - self.claimed)
                if room <= 0 and not self.running and not self.buffer:
                    return RECYCLE_EXIT_CODE
            if room < wanted:
                await self._wait_for_slot(since=gen, wanted=wanted)
                if cfg.fetch_cooldown and len(self.running) * 2 > cfg.concurrency:
                    # Few slots free yet: let more jobs finish, claim them in one go.
                    await asyncio.sleep(cfg.fetch_cooldown)
                continue
            wake.clear()
            jobs = await self._claim(room)
            if jobs:
                self._dispatch(jobs)
                if len(jobs) == room:
                    continue  # a full batch: there may be more
            if self.stopping:
                return EXIT_OK
            if cfg.until_empty and not jobs and await self._drained():
                return EXIT_OK
            # Burst mode, or limited queues (a finished job frees a max_running place):
            # a job finishing here is also a reason to claim again.
            on_finish = cfg.until_empty or bool(self.limits.names)
            # Re-read the limited queues now, while idle, rather than in front of
            # the claim a notification triggers.
            await self.limits.refresh(self.db)
            await self._wait(self._poll_timeout(), since=gen if on_finish else None)
        return EXIT_OK

    def _room(self) -> tuple[int, int]:
        """How many jobs a claim may take now, and the least worth a claim.

        Room is the free slots plus the free places of the buffer. With the
        buffer empty any room is worth a claim (a slot is idle); with jobs in
        it, the slots are fed from the buffer and the claim waits until half
        the buffer is free, so that it takes a batch, not a job.
        """
        with self.lock:
            room = self.config.concurrency - len(self.running) + self.prefetch - len(self.buffer)
            wanted = self._refill_at if self.buffer else 1
        return room, wanted

    async def _claim(self, limit: int) -> list[Claimed]:
        queues = self._queue_order()
        token = str(uuid.uuid4())
        params: dict[str, Any] = {
            "queues": queues,
            "limit": limit,
            "lease": self.lease,
            "worker_id": self.worker_id,
            "token": token,
        }
        await self.limits.refresh(self.db)
        jobs = await self.limits.claim(self.db, queues, params) if self.limits.names else []
        if len(jobs) < limit:
            params["limit"] = limit - len(jobs)
            lease = self.lease
            rows = await self._claim_rows(queues, params)
            jobs += [Claimed(row, lease, token) for row in rows]
        if self.prefetch and len(jobs) > 1:
            # RETURNING keeps no order: the buffer starts jobs in the claim's order.
            pos = {q: i for i, q in enumerate(queues)}
            jobs.sort(key=lambda j: (pos[j.queue], -j.priority, j.run_at, j.id))
        if jobs and logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                kv(
                    "claim",
                    worker=self.worker_id,
                    count=len(jobs),
                    limit=limit,
                    jobs=",".join(str(j.id) for j in jobs),
                )
            )
        return jobs

    async def _claim_rows(self, queues: list[str], params: dict[str, Any]) -> Sequence[Any]:
        """One claim: from the bounds (claim_after), or from the front when due."""
        bounds = self.bounds
        if bounds.plain_due():
            started = bounds.clock()
            rows = await self.db.fetch(query("claim"), params) or ()
            bounds.plain_done(started)
        else:
            segments = bounds.segments(queues)
            rows = await self.db.fetch(query("claim_after"), {**params, **segments}) or ()
        bounds.advance(rows)
        return rows

    def _dispatch(self, jobs: list[Claimed]) -> None:
        """Start what the free slots take (buffered jobs first), buffer the rest."""
        self.claimed += len(jobs)
        if self.stopping:  # a signal arrived while the claim was in flight
            self._undispatched.extend(jobs)
            return
        with self.lock:
            self.buffer.extend(jobs)
            start = self._take_buffered()
        self._start(start)

    def _take_buffered(self) -> list[Claimed]:
        """Move buffered jobs into the free slots (under ``lock``); returns them."""
        free = self.config.concurrency - len(self.running)
        buffer, running = self.buffer, self.running
        start = []
        while free > 0 and buffer:
            job = buffer.popleft()
            running[job.id] = job
            start.append(job)
            free -= 1
        return start

    def _start(self, jobs: list[Claimed]) -> None:
        if not jobs:
            return
        if threading.get_ident() != self._loop_thread:
            # A task thread freed the slot: its sync successors start from here
            # (the thread queue is thread-safe), async ones on the loop.
            sync = [j for j in jobs if self.executor.is_sync(j.task)]
            if len(sync) < len(jobs):
                self.call(self._start, [j for j in jobs if not self.executor.is_sync(j.task)])
            jobs = sync
        dispatch = self.executor.dispatch
        loop = self._loop
        assert loop is not None
        for job in jobs:
            dispatch(job, loop)

    def _queue_order(self) -> list[str]:
        weights = self.config.weights
        if weights is None:
            return self.queues
        # Weighted random permutation (Efraimidis-Spirakis): the first queue with
        # ready jobs wins the claim, so each queue leads in proportion to its weight.
        keyed = sorted(
            zip((random.random() ** (1.0 / w) for w in weights), self.queues, strict=True),
            reverse=True,
        )
        return [q for _, q in keyed]

    def _poll_timeout(self) -> float:
        cfg = self.config
        # Burst mode re-checks often: other workers' last jobs end without telling us.
        interval = min(cfg.poll_interval, BURST_RECHECK) if cfg.until_empty else cfg.poll_interval
        return interval * random.uniform(1 - cfg.poll_jitter, 1 + cfg.poll_jitter)

    async def _wait_for_slot(self, since: int, wanted: int = 1) -> None:
        """Sleep until jobs finish (or return at once if one did since ``since``):
        until ``wanted`` room is free, if the buffer feeds the slots meanwhile."""
        progress = self._progress
        assert progress is not None
        with self.lock:
            if self._finished_gen != since:
                return
            progress.clear()
            self._room_wanted = wanted
            self._wake_on_finish = True
        try:
            await progress.wait()
        finally:
            self._wake_on_finish = False

    async def _wait(self, timeout: float | None, since: int | None) -> None:
        """Sleep until woken (notification, stop, retry due) or ``timeout``.

        With ``since``, a job finishing also wakes us (or we return at once if
        one finished after that generation was read).
        """
        wake = self._wake
        assert wake is not None
        if since is not None:
            with self.lock:
                if self._finished_gen != since:
                    return
                self._room_wanted = 1
                self._wake_on_finish = True
        # The timeout sets the event too (the loop clears it before each claim):
        # awaiting the event directly, not through wait_for's extra task, saves
        # a loop iteration or two between a NOTIFY and the claim it triggers.
        timer = (
            None if timeout is None else asyncio.get_running_loop().call_later(timeout, wake.set)
        )
        try:
            await wake.wait()
        finally:
            if timer is not None:
                timer.cancel()
            self._wake_on_finish = False

    async def _sleep(self, delay: float) -> None:
        """Sleep (reconnect backoff); only a stop request cuts it short."""
        stop = self._stop_requested
        assert stop is not None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)

    async def _drained(self) -> bool:
        """Burst mode: nothing running here, nothing unfinished in our queues."""
        if self.running or self.buffer:
            return False
        while not self.completer.idle():  # our last outcomes must be recorded first
            if self.stopping:
                return False
            await asyncio.sleep(0.001)
        rows = await self.db.fetch(query("queues_unfinished"), {"queues": self.queues})
        return rows is not None and not rows[0][0]

    # -- finishing jobs (any thread) -------------------------------------------------

    def finish(self, job: Claimed, outcome: Outcome | None) -> bool:
        """Free ``job``'s slot and queue its outcome; False if it was already settled."""
        with self.lock:
            if self.running.get(job.id) is not job:
                return False
            del self.running[job.id]
            if outcome is not None:
                self.completer.add(outcome, alone=not self.running and not self.buffer)
            self.processed += 1
            self._finished_gen += 1
            start = self._take_buffered() if self.buffer and not self.stopping else []
            wake = self._wake_on_finish and self._has_room()
            if wake:
                self._wake_on_finish = False
        self._start(start)
        if wake:
            self.call(self._on_progress)
        return True

    def _has_room(self) -> bool:
        """Under ``lock``: the room a loop waiting for a slot wants is free."""
        if not self.buffer:
            return True  # a slot is free, or about to be fed by the next claim
        room = self.config.concurrency - len(self.running) + self.prefetch - len(self.buffer)
        return room >= self._room_wanted

    def take(self, jobs: list[Claimed]) -> list[Claimed]:
        """Take these jobs back from the running set (shutdown); late outcomes are ignored."""
        with self.lock:
            taken = [j for j in jobs if self.running.get(j.id) is j]
            for job in taken:
                del self.running[job.id]
            self._finished_gen += 1
        return taken

    def take_undispatched(self) -> list[Claimed]:
        """The jobs claimed after a stop request, and the buffered ones (shutdown
        releases them unstarted)."""
        with self.lock:
            jobs, self._undispatched = [*self._undispatched, *self.buffer], []
            self.buffer.clear()
        return jobs

    def take_buffered(self, ids: list[int]) -> list[Claimed]:
        """Take these jobs out of the buffer (cancelled, or their lease lost)."""
        wanted = set(ids)
        with self.lock:
            taken = [j for j in self.buffer if j.id in wanted]
            if taken:
                self.buffer = deque(j for j in self.buffer if j.id not in wanted)
        return taken

    def _retry_due(self, delays: list[float]) -> None:
        # From the completer thread, after retries were recorded: claim again when due.
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake_after, delays)

    def _wake_after(self, delays: list[float]) -> None:
        assert self._loop is not None
        for delay in delays:
            self._loop.call_later(delay, self._set_wake)

    # -- signals and cross-thread calls ------------------------------------------------

    def call(self, fn: Any, *args: Any) -> None:
        """Run ``fn(*args)`` on the event loop, from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if threading.get_ident() == self._loop_thread:
            fn(*args)
        else:
            loop.call_soon_threadsafe(fn, *args)

    @property
    def wake(self) -> asyncio.Event:
        assert self._wake is not None
        return self._wake

    def install_signal_handlers(self) -> None:
        wanted = self.config.install_signal_handlers
        if wanted is None:
            wanted = self._owns_loop
        if wanted and self._loop is not None:
            self._signal_handlers.install(self._loop, self._on_signal)

    def _set_wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _on_progress(self) -> None:
        # A job finished: a slot is free (and, in burst mode, the queues may be drained).
        if self._progress is not None:
            self._progress.set()
        self._set_wake()

    def _request_stop(self) -> None:
        if self._stop_requested is not None:
            self._stop_requested.set()
        if not self.stopping:
            self.stopping = True
            log(
                logging.INFO,
                "worker_stopping",
                worker=self.worker_id,
                running=len(self.running),
                grace=self.config.shutdown_grace,
            )
        self._on_progress()

    def _request_abort(self) -> None:
        self._request_stop()
        if self.aborting is not None:
            self.aborting.set()

    def _on_signal(self, name: str) -> None:
        self._signals += 1
        log(
            logging.WARNING if self._signals > 1 else logging.INFO,
            "signal",
            signal=name,
            action="abort" if self._signals > 1 else "graceful_stop",
        )
        if self._signals == 1:
            self._request_stop()
        else:
            self._request_abort()
