"""The executor: runs one claimed job and maps what happened to an ``Outcome``.

* Sync tasks run on the worker's task threads, async tasks on the event loop.
* Success: the result must be JSON (a non-JSON result fails the attempt).
* ``Retry(delay)``: ``failed`` with that delay (or the backoff) while attempts
  remain, else ``dead``; ``Discard(reason)``: ``dead`` at once; any other
  exception: ``failed`` with exponential backoff and full jitter
  (``TaskConfig.retry``, else ``App(retry=...)``) while attempts remain, else
  ``dead``. Every attempt's error and traceback go to the job's ``errors``.
* Unknown task name: ``dead``, with a message naming it; the worker goes on.
* Cancellation requested (``pgqueue cancel`` on a running job, pushed by
  ``NOTIFY pgqueue_cancel``, else seen by the heartbeat): an async task is
  cancelled and its job ends ``cancelled``; a sync task cannot be interrupted:
  its ``cancel_requested`` flips and it runs to its end.
* Timeout (``TaskConfig.timeout``): async tasks are cancelled; a sync task
  cannot be interrupted, so the job is failed at once and its thread is
  abandoned (replaced; it exits when the function returns, result discarded).
* Transactional tasks get ``connection=`` (psycopg ``Connection`` for sync
  tasks, ``AsyncConnection`` for async ones) inside a transaction; the job's
  ``complete`` runs on that connection before the commit, so the task's writes
  and the job's success commit together, or not at all (lease lost: rollback).
* Workflows (``@app.workflow``) run through ``_replay.runner``, which replays
  their step log. A workflow that sleeps or waits has already put its job back
  (``queued``, attempt not counted) when it raises ``Suspended``: the slot is
  freed and no outcome is queued. ``WorkflowError`` (a non-deterministic replay,
  a step that failed for good) sends the job straight to ``dead``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from pgqueue import _context, _replay
from pgqueue._core import RetryPolicy, dumps, error_text, format_error
from pgqueue._errors import Discard, JobCancelled, Retry, Suspended, WorkflowError
from pgqueue._workflow import Workflow
from pgqueue.worker._claimed import Claimed, Outcome
from pgqueue.worker._completer import run_complete, run_complete_async
from pgqueue.worker._log import kv, logger
from pgqueue.worker._threads import ThreadRunner

if TYPE_CHECKING:
    from pgqueue._db import Database
    from pgqueue._registry import Registry
    from pgqueue.metrics import WorkerMetrics

Finish = Callable[[Claimed, "Outcome | None"], bool]

WAKE_HORIZON = 3600.0  # seconds: a later wake-up is left to polling (no timer held for days)

DEBUG, INFO, WARNING, ERROR = logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR


class JobTimeout(Exception):
    """The attempt ran longer than the task's ``timeout``."""


class _Rollback(Exception):
    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome


class _Fenced(Exception):
    pass


class TaskPlan:
    """What the executor needs of a task, resolved once per task name."""

    __slots__ = ("fn", "is_async", "lease", "retry", "timeout", "transactional")

    def __init__(
        self,
        fn: Callable[..., Any],
        is_async: bool,
        timeout: float | None,
        lease: float | None,
        retry: RetryPolicy,
        transactional: bool,
    ) -> None:
        self.fn = fn
        self.is_async = is_async
        self.timeout = timeout
        self.lease = lease
        self.retry = retry
        self.transactional = transactional


class Executor:
    def __init__(
        self, database: Database, registry: Registry, finish: Finish, *, threads: int
    ) -> None:
        self._database = database
        self._registry = registry
        self._finish = finish
        self._plans: dict[str, TaskPlan | None] = {}
        self.threads = ThreadRunner(threads, self._run_sync_item)
        self.atasks: dict[int, asyncio.Task[None]] = {}
        self._reasons: dict[int, str] = {}  # job id -> why its async task was cancelled
        self.contexts: dict[int, _context.JobContext] = {}  # running jobs, for current_job()
        self.metrics: WorkerMetrics | None = None  # Prometheus hooks, when enabled
        self.used_apool = False  # the app's async pool lives on this loop: close it at the end
        # Called with the seconds until a suspended workflow is due (the worker claims
        # then, not at its next poll); set by the worker.
        self.on_wake: Callable[[list[float]], None] | None = None

    def plan(self, name: str) -> TaskPlan | None:
        try:
            return self._plans[name]
        except KeyError:
            pass
        task = self._registry.get(name)
        plan = None
        if task is not None and task.fn is not None:
            cfg = task.config
            plan = TaskPlan(
                task.fn,
                task.is_async,
                cfg.timeout,
                cfg.lease,
                cfg.retry or self._registry.retry,
                cfg.transactional,
            )
            fn = None
            if isinstance(task, Workflow):
                fn = _replay.runner(self._database, task, self._registry.max_payload)
                self.used_apool = self.used_apool or task.is_async
            plan.fn = self._registry.hooks.wrap_execute(task, _context.current_job, fn)
        self._plans[name] = plan
        return plan

    # -- dispatch (event loop thread) -----------------------------------------

    def dispatch(self, job: Claimed, loop: asyncio.AbstractEventLoop) -> None:
        plan = self._plans.get(job.task) or self.plan(job.task)
        if plan is None:
            self._finish(job, self._unknown(job))
            return
        if plan.lease is not None:
            job.lease = plan.lease  # the next heartbeat applies it
        if plan.timeout is not None:
            job.deadline = time.monotonic() + plan.timeout  # the worker's watchdog enforces it
        if plan.is_async:
            self.atasks[job.id] = loop.create_task(self._run_async(job, plan))
        else:
            self.threads.submit((job, plan))

    def is_sync(self, task: str) -> bool:
        """Whether ``task``'s jobs run on task threads (an unknown task: no loop needed)."""
        plan = self._plans.get(task) or self.plan(task)
        return plan is None or not plan.is_async

    def cancelled_unstarted(self, job: Claimed) -> Outcome:
        """The outcome of a claimed job cancelled before it started (claim-ahead buffer)."""
        exc = JobCancelled("cancellation requested before the job started")
        entry = format_error(exc, job.attempts, "", datetime.now(timezone.utc))
        entry["status"] = "cancelled"
        self._log_failure(job, "cancelled", entry["error"], None)
        return Outcome(job.id, job.token, "cancelled", None, None, entry["error"],
                       dumps(entry, "error entry"))  # fmt: skip

    def expire(self, job: Claimed) -> None:
        """``job`` overran its timeout (called by the worker's watchdog, on the loop)."""
        plan = self._plans.get(job.task)
        if plan is None:
            return
        if plan.is_async:
            self.cancel(job.id, "timeout")
        else:
            self._sync_timeout(job, plan)

    def cancel(self, job_id: int, reason: str) -> bool:
        """Cancel a running async job (reason: timeout, cancel, abort).

        A requested cancellation also raises the flag a sync task can check.
        """
        ctx = self.contexts.get(job_id)
        if reason == "cancel" and ctx is not None:
            ctx.request_cancel()
        task = self.atasks.get(job_id)
        if task is None or task.done():
            return False
        self._reasons.setdefault(job_id, reason)
        task.cancel()
        return True

    # -- sync tasks (task threads) -----------------------------------------------

    def _context(self, job: Claimed) -> _context.JobContext:
        ctx = _context.JobContext(
            self._database, id=job.id, task=job.task, queue=job.queue, attempt=job.attempts,
            max_attempts=job.max_attempts, token=job.token, meta=job.meta,
            parent_results=job.parent_results,
        )  # fmt: skip
        self.contexts[job.id] = ctx
        return ctx

    def _run_sync_item(self, item: tuple[Claimed, TaskPlan]) -> bool:
        job, plan = item
        job.started = True
        job.t0 = time.monotonic()
        if logger.isEnabledFor(DEBUG):
            self._log_start(job)
        outcome: Outcome | None
        entered = _context.enter(self._context(job))
        try:
            if plan.transactional:
                outcome = self._run_sync_tx(job, plan)
            else:
                outcome = self._success(job, plan, plan.fn(*job.args, **job.kwargs))
        except Suspended as suspended:
            self._suspended(job, suspended)
            outcome = None
        except BaseException as exc:
            outcome = self._failure(job, plan, exc)
        finally:
            _context.leave(entered)
            self.contexts.pop(job.id, None)
        return self._finish(job, outcome)

    def _run_sync_tx(self, job: Claimed, plan: TaskPlan) -> Outcome | None:
        with self._database.pool().connection() as conn:
            try:
                with conn.transaction():
                    result = plan.fn(*job.args, connection=conn, **job.kwargs)
                    outcome = self._success(job, plan, result)
                    if outcome.status != "succeeded":
                        raise _Rollback(outcome)
                    if not run_complete(conn, [outcome]):
                        raise _Fenced
            except _Rollback as rollback:
                return rollback.outcome
            except _Fenced:
                self._log_fenced(job)
        return None

    def _sync_timeout(self, job: Claimed, plan: TaskPlan) -> None:
        outcome = self._failure(job, plan, self._timeout_error(job, plan), tb="")
        if self._finish(job, outcome):
            self.threads.replace()
            if logger.isEnabledFor(WARNING):
                logger.warning(
                    kv(
                        "abandon",
                        job=job.id,
                        task=job.task,
                        note="sync task overran its timeout; its thread is abandoned",
                    )
                )

    # -- async tasks (event loop) ---------------------------------------------

    async def _run_async(self, job: Claimed, plan: TaskPlan) -> None:
        job.started = True
        job.t0 = time.monotonic()
        if logger.isEnabledFor(DEBUG):
            self._log_start(job)
        outcome: Outcome | None
        # This task runs in its own copy of the context: no reset needed.
        _context.enter(self._context(job))
        try:
            if plan.transactional:
                outcome = await self._run_async_tx(job, plan)
            else:
                outcome = self._success(job, plan, await plan.fn(*job.args, **job.kwargs))
        except asyncio.CancelledError:
            reason = self._reasons.pop(job.id, "abort")
            if reason == "abort":
                return  # shutdown: the worker releases the job
            exc: BaseException = (
                self._timeout_error(job, plan)
                if reason == "timeout"
                else JobCancelled("cancellation requested")
            )
            outcome = self._failure(job, plan, exc, tb="")
        except Suspended as suspended:
            self._suspended(job, suspended)
            outcome = None
        except BaseException as exc:
            outcome = self._failure(job, plan, exc)
        finally:
            self.atasks.pop(job.id, None)
            self.contexts.pop(job.id, None)
        self._reasons.pop(job.id, None)
        self._finish(job, outcome)

    async def _run_async_tx(self, job: Claimed, plan: TaskPlan) -> Outcome | None:
        self.used_apool = True
        apool = await self._database.pool_async()
        async with apool.connection() as conn:
            try:
                async with conn.transaction():
                    result = await plan.fn(*job.args, connection=conn, **job.kwargs)
                    outcome = self._success(job, plan, result)
                    if outcome.status != "succeeded":
                        raise _Rollback(outcome)
                    if not await run_complete_async(conn, [outcome]):
                        raise _Fenced
            except _Rollback as rollback:
                return rollback.outcome
            except _Fenced:
                self._log_fenced(job)
        return None

    # -- outcomes ------------------------------------------------------------------

    def _success(self, job: Claimed, plan: TaskPlan, result: Any) -> Outcome:
        data = None
        if result is not None:
            try:
                data = dumps(result, f"the result of task {job.task}")
            except TypeError as exc:
                return self._failure(job, plan, exc, tb="")
        if logger.isEnabledFor(INFO):
            logger.info(
                kv(
                    "success",
                    job=job.id,
                    task=job.task,
                    queue=job.queue,
                    attempt=job.attempts,
                    duration=time.monotonic() - job.t0,
                )
            )
        if self.metrics is not None:
            self.metrics.on_finished(job.task, "succeeded", time.monotonic() - job.t0)
        return Outcome(job.id, job.token, "succeeded", data, None, None, None)

    def _failure(
        self, job: Claimed, plan: TaskPlan, exc: BaseException, tb: str | None = None
    ) -> Outcome:
        try:
            return self._describe_failure(job, plan, exc, tb)
        except Exception as broken:  # describing the error failed: never lose the slot over it
            error = f"{error_text(exc)} (describing it failed: {error_text(broken)})"
            status = "dead" if job.attempts >= job.max_attempts else "failed"
            delay = plan.retry.delay(job.attempts) if status == "failed" else None
            self._log_failure(job, status, error, delay)
            return Outcome(job.id, job.token, status, None, delay, error, None)

    def _describe_failure(
        self, job: Claimed, plan: TaskPlan, exc: BaseException, tb: str | None
    ) -> Outcome:
        if tb is None:
            tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        entry = format_error(exc, job.attempts, tb, datetime.now(timezone.utc))
        delay: float | None = None
        if isinstance(exc, JobCancelled):
            status = "cancelled"
        elif isinstance(exc, (Discard, WorkflowError)) or job.attempts >= job.max_attempts:
            status = "dead"
        else:
            status = "failed"
            given = exc.delay if isinstance(exc, Retry) else None
            delay = max(0.0, given) if given is not None else plan.retry.delay(job.attempts)
        entry["status"] = status
        self._log_failure(job, status, entry["error"], delay)
        error = entry["error"]
        return Outcome(job.id, job.token, status, None, delay, error, dumps(entry, "error entry"))

    def _suspended(self, job: Claimed, suspended: Suspended) -> None:
        """A workflow suspended itself (its job is already back in its queue), or
        lost its lease while recording a step: nothing to record either way."""
        if suspended.reason == "fenced":
            self._log_fenced(job)
            return
        until = suspended.until
        delay = (until - datetime.now(timezone.utc)).total_seconds() if until else None
        if delay is not None and delay < WAKE_HORIZON and self.on_wake is not None:
            self.on_wake([max(0.0, delay)])
        if logger.isEnabledFor(INFO):
            logger.info(kv("suspend", job=job.id, task=job.task, queue=job.queue,
                           reason=suspended.reason,
                           until=until.isoformat() if until is not None else None))  # fmt: skip

    def _unknown(self, job: Claimed) -> Outcome:
        known = ", ".join(sorted(self._registry.tasks)) or "none"
        error = (
            f"UnknownTask: no task named {job.task!r} is registered in this worker's "
            f"app (known: {known})"
        )
        entry = {
            "attempt": job.attempts,
            "at": datetime.now(timezone.utc).isoformat(),
            "error": error,
            "traceback": "",
            "status": "dead",
        }
        self._log_failure(job, "dead", error, None)
        return Outcome(job.id, job.token, "dead", None, None, error, dumps(entry, "error entry"))

    @staticmethod
    def _timeout_error(job: Claimed, plan: TaskPlan) -> JobTimeout:
        return JobTimeout(f"task {job.task} exceeded its timeout of {plan.timeout}s")

    # -- logging -------------------------------------------------------------------

    @staticmethod
    def _log_start(job: Claimed) -> None:
        logger.debug(kv("start", job=job.id, task=job.task, queue=job.queue, attempt=job.attempts))

    def _log_failure(self, job: Claimed, status: str, error: str, delay: float | None) -> None:
        duration = time.monotonic() - job.t0 if job.t0 else None
        if self.metrics is not None:
            self.metrics.on_finished(job.task, status, duration or 0.0)
        level = ERROR if status == "dead" else WARNING
        if logger.isEnabledFor(level):
            event = {"dead": "dead", "failed": "retry"}.get(status, status)
            logger.log(
                level,
                kv(
                    event,
                    job=job.id,
                    task=job.task,
                    queue=job.queue,
                    attempt=job.attempts,
                    max_attempts=job.max_attempts,
                    duration=duration,
                    retry_in=delay,
                    error=error,
                ),
            )

    @staticmethod
    def _log_fenced(job: Claimed) -> None:
        logger.warning(
            kv(
                "fenced",
                job=job.id,
                task=job.task,
                note="lease lost; the transaction was rolled back",
            )
        )
