"""Durable workflows, the runtime side: a workflow attempt replays its step log.

Decisions (the README's "Durable workflows" states them for users):

* **A workflow is a job.** ``@app.workflow`` registers a task; the worker runs
  it through ``runner()``, so leases, heartbeats, fencing, retries, the rescuer,
  cancellation, retention and the dashboard apply unchanged.
* **Replay, not resume.** Every attempt runs the function from the top. Each
  checkpointed call (a step, ``sleep``, ``wait_for_event``, ``now``,
  ``random``, ``run_task``) takes the next sequence number; a call whose number
  has a finished row in ``pgqueue.workflow_steps`` returns the recorded result
  (or raises the recorded failure as ``StepFailed``) without running. The log
  is read once, when the attempt starts (``workflow_begin``).
* **Determinism is checked by name.** A recorded row whose name differs from
  the call at that number raises ``NonDeterministicWorkflow`` naming both; like
  ``StepFailed`` it sends the job straight to ``dead`` (a ``WorkflowError``).
  Arguments are not compared (their digest is kept for people reading the log).
* **Each step commits its own checkpoint** as soon as it ends, not at the end
  of the attempt, fenced by the workflow job's lease token (``FOR SHARE`` on
  the job row, re-checked after a concurrent rescue): a worker that lost the
  job records nothing and its attempt stops (``Suspended("fenced")``). A
  transactional step gets a connection in a transaction and its checkpoint is
  written on that connection before the commit: its writes happen exactly
  once. Other steps are at least once: a crash after the step's effect and
  before its checkpoint commits runs it again on the next attempt.
* **Step retries** run in the attempt (``max_attempts``, backoff from the
  step's or the app's ``RetryPolicy``); the last failure is recorded.
* **Suspension** (``sleep``, ``wait_for_event``, waiting for a child) does not
  go through the batched completer: it needs the job row's lock, then a fresh
  look at the events (``_workflows.wait``). It puts the job back to ``queued``
  with ``run_at`` = the wake time or the event's deadline and gives the
  attempt back (``attempts - 1``), then raises ``Suspended``; the executor
  frees the slot and records nothing more. ``attempts`` thus counts the
  attempts that did not end in a suspension (failures, lost leases, the
  running one), and ``max_attempts`` bounds those.
* ``send_event`` locks the workflow's job row first, then records the event
  and makes a workflow waiting for that name due now (one NOTIFY): the race
  with a concurrent suspension is settled by the row lock, in either order.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from pgqueue import _client
from pgqueue import _workflows as ops
from pgqueue._context import JobContext, current_job
from pgqueue._core import DEFAULT_MAX_PAYLOAD, dumps, enqueue_one_params, error_text
from pgqueue._errors import JobCancelled, NonDeterministicWorkflow, StepFailed, Suspended
from pgqueue._sql import query
from pgqueue._workflow import Step, args_digest, current_run
from pgqueue._workflows import LogRow, Waited, decode

if TYPE_CHECKING:
    from pgqueue._core import JobSpec
    from pgqueue._db import Database
    from pgqueue._task import Task


class StepTimeout(Exception):
    """A step ran longer than its ``timeout``."""


def runner(
    database: Database, task: Task[Any, Any], max_payload: int = DEFAULT_MAX_PAYLOAD
) -> Callable[..., Any]:
    """The function the executor runs for a workflow task: the user's, under a run."""
    fn, name = task.fn, task.name
    assert fn is not None
    if task.is_async:

        async def run_workflow_async(*args: Any, **kwargs: Any) -> Any:
            ctx = current_job()
            log = await database.run_async(ops.begin(ctx.id))
            # The attempt runs in an asyncio task of its own: its context is a copy.
            current_run.set(WorkflowRun(database, ctx, log, is_async=True, max_payload=max_payload,
                                        name=name))
            return await fn(*args, **kwargs)

        return run_workflow_async

    def run_workflow(*args: Any, **kwargs: Any) -> Any:
        ctx = current_job()
        log = database.run(ops.begin(ctx.id))
        token = current_run.set(WorkflowRun(database, ctx, log, is_async=False,
                                              max_payload=max_payload, name=name))
        try:
            return fn(*args, **kwargs)
        finally:
            current_run.reset(token)

    return run_workflow


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _replayed(row: LogRow) -> Any:
    if row.error is not None:
        raise StepFailed(row.name, row.error)
    return decode(row.result)


def _waited(name: str, kind: str, waited: Waited) -> Any:
    if waited.state == "fenced":
        raise Suspended("fenced")
    if waited.state == "suspended":
        raise Suspended(kind, waited.until)
    if waited.error is not None:
        raise StepFailed(name, waited.error)
    return decode(waited.result)


class WorkflowRun:
    """One attempt of one workflow: the log it replays and the next sequence number."""

    def __init__(self, database: Database, ctx: JobContext, log: dict[int, LogRow], *,
                 is_async: bool, max_payload: int = DEFAULT_MAX_PAYLOAD,
                 name: str = "") -> None:  # fmt: skip
        self.database = database
        # The seq 0 row (the workflow itself) goes with its checkpoints (ON CONFLICT DO
        # NOTHING) while the log was empty at the start: the first read stays a read.
        self._mark = ops.Mark(None, None) if log else ops.Mark(name or ctx.task, _now())
        self.max_payload = max_payload
        self.ctx = ctx
        self.id = ctx.id
        self.token = ctx._token
        self.log = log
        self.is_async = is_async
        self.seq = 0

    def _next(self, name: str) -> tuple[int, LogRow | None]:
        self.ctx.raise_if_cancelled()  # a cancelled workflow runs no further step
        self.seq += 1
        row = self.log.get(self.seq)
        if row is not None and row.name != name:
            raise NonDeterministicWorkflow(self.id, self.seq, row.name, name)
        return self.seq, row

    def _record_op(self, seq: int, name: str, kind: str, **fields: Any) -> Any:
        return ops.record(self.id, self.token, seq, name, kind, mark=self._mark, **fields)

    def _wait_op(self, kind: str, name: str, seq: int, **fields: Any) -> Any:
        return ops.wait(self.id, self.token, seq, name, kind, mark=self._mark, **fields)

    # -- steps (sync) -------------------------------------------------------------

    def step(self, step: Step[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        seq, row = self._next(step.name)
        if row is not None and row.finished:
            return _replayed(row)
        return self._execute(step, seq, args, kwargs)

    def _execute(
        self, step: Step[Any, Any], seq: int, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        digest, started = args_digest(args, kwargs), _now()
        attempt = 0
        while True:
            attempt += 1
            try:
                if step.config.transactional:
                    return self._transactional(step, seq, args, kwargs, digest, started, attempt)
                data = _encode(step, _call(step, args, kwargs))
            except (JobCancelled, StepFailed):
                raise
            except Exception as exc:
                if attempt < step.config.max_attempts:
                    time.sleep(step.retry.delay(attempt))
                    self.ctx.raise_if_cancelled()
                    continue
                self._record(seq, step, digest, None, error_text(exc), attempt, started)
                raise StepFailed(step.name, error_text(exc)) from exc
            self._record(seq, step, digest, data, None, attempt, started)
            return decode(data)

    def _record(self, seq: int, step: Step[Any, Any], digest: str, data: str | None,
                error: str | None, attempts: int, started: datetime) -> None:  # fmt: skip
        op = self._record_op(seq, step.name, "step", digest=digest, result=data, error=error,
                             attempts=attempts, started_at=started)  # fmt: skip
        if not self.database.run(op):
            raise Suspended("fenced")

    def _transactional(self, step: Step[Any, Any], seq: int, args: tuple[Any, ...],
                       kwargs: dict[str, Any], digest: str, started: datetime,
                       attempt: int) -> Any:  # fmt: skip
        with self.database.pool().connection() as conn, conn.transaction():
            if step.config.timeout is not None:  # a sync step cannot be interrupted
                ms = str(max(1, int(step.config.timeout * 1000)))
                conn.execute(query("workflow_step_timeout"), {"ms": ms})
            data = _encode(step, step.fn(*args, connection=conn, **kwargs))
            op = self._record_op(seq, step.name, "step", digest=digest, result=data,
                                 attempts=attempt, started_at=started)  # fmt: skip
            if not self.database.run(op, connection=conn):
                raise Suspended("fenced")  # rolls the step's writes back
        return decode(data)

    # -- steps (async) ------------------------------------------------------------

    async def step_async(
        self, step: Step[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        seq, row = self._next(step.name)
        if row is not None and row.finished:
            return _replayed(row)
        if not step.is_async:  # a sync step of an async workflow: in a thread
            ctx = contextvars.copy_context()
            return await asyncio.to_thread(ctx.run, self._execute, step, seq, args, kwargs)
        digest, started = args_digest(args, kwargs), _now()
        attempt = 0
        while True:
            attempt += 1
            try:
                if step.config.transactional:
                    return await self._transactional_async(step, seq, args, kwargs, digest,
                                                           started, attempt)  # fmt: skip
                value = await _call_async(step, step.fn(*args, **kwargs))
                data = _encode(step, value)
            except (JobCancelled, StepFailed):
                raise
            except Exception as exc:
                if attempt < step.config.max_attempts:
                    await asyncio.sleep(step.retry.delay(attempt))
                    continue
                await self._record_async(seq, step, digest, None, error_text(exc), attempt,
                                         started)  # fmt: skip
                raise StepFailed(step.name, error_text(exc)) from exc
            await self._record_async(seq, step, digest, data, None, attempt, started)
            return decode(data)

    async def _record_async(self, seq: int, step: Step[Any, Any], digest: str,
                            data: str | None, error: str | None, attempts: int,
                            started: datetime) -> None:  # fmt: skip
        op = self._record_op(seq, step.name, "step", digest=digest, result=data, error=error,
                             attempts=attempts, started_at=started)  # fmt: skip
        if not await self.database.run_async(op):
            raise Suspended("fenced")

    async def _transactional_async(self, step: Step[Any, Any], seq: int,
                                   args: tuple[Any, ...], kwargs: dict[str, Any], digest: str,
                                   started: datetime, attempt: int) -> Any:  # fmt: skip
        apool = await self.database.pool_async()
        async with apool.connection() as conn, conn.transaction():
            value = await _call_async(step, step.fn(*args, connection=conn, **kwargs))
            data = _encode(step, value)
            op = self._record_op(seq, step.name, "step", digest=digest, result=data,
                                 attempts=attempt, started_at=started)  # fmt: skip
            if not await self.database.run_async(op, connection=conn):
                raise Suspended("fenced")
        return decode(data)

    # -- sleep, events, now(), random() -------------------------------------------

    def wait(self, kind: str, name: str, event: str | None, seconds: float) -> Any:
        seq, row = self._next(name)
        if row is not None and row.finished:
            return _replayed(row)
        op = self._wait_op(kind, name, seq, seconds=seconds, event=event)
        return _waited(name, kind, self.database.run(op, transaction=True))

    async def wait_async(self, kind: str, name: str, event: str | None, seconds: float) -> Any:
        seq, row = self._next(name)
        if row is not None and row.finished:
            return _replayed(row)
        op = self._wait_op(kind, name, seq, seconds=seconds, event=event)
        return _waited(name, kind, await self.database.run_async(op, transaction=True))

    def checkpoint(self, name: str, kind: str, make: Callable[[], Any]) -> Any:
        seq, row = self._next(name)
        if row is not None and row.finished:
            return _replayed(row)
        value = make()
        op = self._record_op(seq, name, kind, result=dumps(value, name), started_at=_now())
        if not self.database.run(op):
            raise Suspended("fenced")
        return value

    async def checkpoint_async(self, name: str, kind: str, make: Callable[[], Any]) -> Any:
        seq, row = self._next(name)
        if row is not None and row.finished:
            return _replayed(row)
        value = make()
        op = self._record_op(seq, name, kind, result=dumps(value, name), started_at=_now())
        if not await self.database.run_async(op):
            raise Suspended("fenced")
        return value

    # -- child work -----------------------------------------------------------------

    def child(self, spec: JobSpec) -> Any:
        name = f"pgqueue.run_task:{spec.task}"
        seq, row = self._next(name)
        if row is not None and row.finished:
            return _replayed(row)
        params = enqueue_one_params(spec, self.max_payload)  # bad values raise before I/O
        with self.database.pool().connection() as conn, conn.transaction():
            # Lock first: the child is enqueued once, by the attempt holding the lease.
            if not self.database.run(ops.lock(self.id, self.token, self._mark), connection=conn):
                raise Suspended("fenced")
            child_id = row.child_id if row is not None else None
            if child_id is None:
                limited = self.database.limited_queues
                child_id = _client.enqueue_one_sync(conn, spec, params, limited)[0]
            op = ops.child(self.id, self.token, seq, name, child_id)
            waited = self.database.run(op, connection=conn)
        return _waited(name, "child", waited)  # after the commit: a suspension is recorded

    async def child_async(self, spec: JobSpec) -> Any:
        name = f"pgqueue.run_task:{spec.task}"
        seq, row = self._next(name)
        if row is not None and row.finished:
            return _replayed(row)
        params = enqueue_one_params(spec, self.max_payload)
        apool = await self.database.pool_async()
        async with apool.connection() as conn, conn.transaction():
            lock = ops.lock(self.id, self.token, self._mark)
            if not await self.database.run_async(lock, connection=conn):
                raise Suspended("fenced")
            child_id = row.child_id if row is not None else None
            if child_id is None:
                limited = self.database.limited_queues
                child_id = (await _client.enqueue_one_async(conn, spec, params, limited))[0]
            op = ops.child(self.id, self.token, seq, name, child_id)
            waited = await self.database.run_async(op, connection=conn)
        return _waited(name, "child", waited)


def _encode(step: Step[Any, Any], value: Any) -> str | None:
    # Through JSON on the first run too: the workflow sees what a replay will see.
    return None if value is None else dumps(value, f"the result of step {step.name}")


def _call(step: Step[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    timeout = step.config.timeout
    if timeout is None:
        return step.fn(*args, **kwargs)
    # A sync function cannot be interrupted: it runs in a thread of its own, abandoned
    # (its late result discarded) when the timeout passes.
    future: Future[Any] = Future()
    ctx = contextvars.copy_context()

    def target() -> None:
        try:
            future.set_result(ctx.run(step.fn, *args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=target, name=f"pgqueue-step-{step.name}", daemon=True).start()
    try:
        return future.result(timeout)
    except TimeoutError:
        raise StepTimeout(f"step {step.name} exceeded its timeout of {timeout}s") from None


async def _call_async(step: Step[Any, Any], coro: Any) -> Any:
    timeout = step.config.timeout
    if timeout is None:
        return await coro
    try:
        return await asyncio.wait_for(coro, timeout)
    except asyncio.TimeoutError:
        raise StepTimeout(f"step {step.name} exceeded its timeout of {timeout}s") from None
