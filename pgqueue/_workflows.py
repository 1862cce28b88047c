"""Workflow operations: the statements behind the step log, suspensions and events.

Written once as generators of ``Statement`` (see ``_db``), driven sync or async.
SQL in ``pgqueue/sql/workflows.sql``; the design in ``pgqueue/_replay.py``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, NamedTuple

from pgqueue._core import check_status, dumps
from pgqueue._db import Operation, Statement
from pgqueue._errors import JobNotFound
from pgqueue._job import Job
from pgqueue._protocols import JobOwner
from pgqueue._sql import query
from pgqueue._workflow import FOREVER, StepRecord


class LogRow(NamedTuple):
    """A recorded step, as a replay reads it."""

    seq: int
    name: str
    kind: str
    result: str | None  # JSON text
    error: str | None
    finished: bool
    child_id: int | None


class Waited(NamedTuple):
    """How a sleep, an event wait or a child wait went: ``done`` (with the JSON
    result or the error), ``suspended`` (until when) or ``fenced`` (lease lost)."""

    state: str
    result: str | None = None
    error: str | None = None
    until: datetime | None = None


FENCED = Waited("fenced")


class Mark(NamedTuple):
    """The workflow's seq 0 row, written with its first checkpoint (``mark`` None: written)."""

    mark: str | None
    run_started: datetime | None


def begin(workflow_id: int) -> Operation[dict[int, LogRow]]:
    rows = yield Statement(query("workflow_begin"), {"id": workflow_id})
    return {r[0]: LogRow(*r) for r in rows}


def record(
    workflow_id: int,
    token: str,
    seq: int,
    name: str,
    kind: str,
    *,
    digest: str | None = None,
    result: str | None = None,
    error: str | None = None,
    attempts: int = 1,
    started_at: datetime | None = None,
    mark: Mark = Mark(None, None),
) -> Operation[bool]:
    """Record a finished step; False when the lease is no longer this attempt's."""
    params = {"id": workflow_id, "token": token, "seq": seq, "name": name, "kind": kind,
              "digest": digest, "result": result, "error": error, "attempts": attempts,
              "started_at": started_at, **mark._asdict()}  # fmt: skip
    rows = yield Statement(query("workflow_record"), params)
    return bool(rows)


def wait(
    workflow_id: int,
    token: str,
    seq: int,
    name: str,
    kind: str,
    *,
    seconds: float,
    event: str | None = None,
    mark: Mark = Mark(None, None),
) -> Operation[Waited]:
    """A sleep or an event wait, in one transaction under the job row's lock.

    The lock comes first: ``send_event`` locks the same row before it looks for
    a waiting workflow, so whichever commits first, the other sees it (each
    statement after the lock reads a snapshot taken after it was granted, at
    ``READ COMMITTED``). The event is looked for after the lock, never before.
    """
    ids = {"id": workflow_id, "token": token}
    if not (yield Statement(query("workflow_lock"), ids)):
        return FENCED
    if mark.mark is not None:
        yield Statement(query("workflow_mark"), {**ids, **mark._asdict()})
    params = {**ids, "seq": seq, "name": name, "kind": kind, "event": event,
              "child": None, "seconds": seconds}  # fmt: skip
    wake_at, due, finished, result, error, _ = (
        yield Statement(query("workflow_wait_begin"), params)
    )[0]
    if finished:
        return Waited("done", result, error)
    if kind == "event":
        rows = yield Statement(query("workflow_consume_event"), params)
        if rows:
            return Waited("done", rows[0][0])
    if due:
        yield Statement(query("workflow_finish_wait"), {**params, "result": None, "error": None})
        return Waited("done")
    if not (yield Statement(query("workflow_suspend"), {**ids, "until": wake_at})):
        return FENCED
    return Waited("suspended", until=wake_at)


def lock(workflow_id: int, token: str, mark: Mark = Mark(None, None)) -> Operation[bool]:
    """Lock the workflow's job row while this attempt holds its lease (see ``wait``)."""
    ids = {"id": workflow_id, "token": token}
    if not (yield Statement(query("workflow_lock"), ids)):
        return False
    if mark.mark is not None:
        yield Statement(query("workflow_mark"), {**ids, **mark._asdict()})
    return True


def child(workflow_id: int, token: str, seq: int, name: str, child_id: int) -> Operation[Waited]:
    """Wait for a child job, after ``lock`` and the child's enqueue, in that transaction:
    its outcome if it has finished, else the workflow blocked on it."""
    ids = {"id": workflow_id, "token": token}
    params = {**ids, "seq": seq, "name": name, "kind": "child", "event": None,
              "child": child_id, "seconds": FOREVER}  # fmt: skip
    finished, result, error = (yield Statement(query("workflow_wait_begin"), params))[0][2:5]
    if finished:
        return Waited("done", result, error)
    yield Statement(query("workflow_run_on_failure"), params)
    yield Statement(query("workflow_block_on"), params)
    status, result, task, last_error = (
        yield Statement(query("workflow_child_state"), params)
    )[0]
    if status in ("succeeded", "dead", "cancelled"):
        error = None if status == "succeeded" else (
            f"child job {child_id} ({task}) ended {status}: {last_error}")  # fmt: skip
        result = result if status == "succeeded" else None
        yield Statement(query("workflow_finish_wait"), {**params, "result": result,
                                                         "error": error})  # fmt: skip
        return Waited("done", result, error)
    if not (yield Statement(query("workflow_block"), ids)):
        return FENCED
    return Waited("suspended")


def event_payload(name: str, payload: Any) -> str:
    """The event's payload as JSON text; bad values raise here, before any I/O."""
    if not isinstance(name, str) or not name:
        raise ValueError("send_event: the event name must be a non-empty string")
    return dumps(payload, f"the payload of event {name!r}")


def send_event(workflow_id: int, name: str, data: str) -> Operation[bool]:
    """Record an event (``data``: ``event_payload``) for the workflow; True if it was
    waiting for it (now due)."""
    rows = yield Statement(query("workflow_event_lock"), {"id": workflow_id})
    if not rows:
        raise JobNotFound(f"no workflow with id {workflow_id}")
    params = {"id": workflow_id, "name": name, "payload": data}
    rows = yield Statement(query("workflow_send_event"), params)
    return bool(rows[0][1])


def steps(workflow_id: int) -> Operation[list[StepRecord]]:
    rows = yield Statement(query("workflow_steps"), {"id": workflow_id}, rows="dict")
    return [StepRecord(**r) for r in rows]


def list_workflows(
    owner: JobOwner, names: list[str], *, status: str | None = None, limit: int = 100
) -> Operation[list[Job]]:
    if status is not None:
        check_status(status)
    if limit < 0:
        raise ValueError("limit must be >= 0")
    params = {"names": names, "status": status, "limit": limit}
    rows = yield Statement(query("list_workflows"), params)
    return [Job.from_row(r, owner) for r in rows]


def cancel(workflow_id: int) -> Operation[dict[str, list[int]]]:
    """Cancel the workflow and the children it waits for (see ``_admin.cancel_jobs``)."""
    children = yield Statement(query("workflow_children"), {"id": workflow_id})
    ids = [workflow_id, *(r[0] for r in children)]
    rows = yield Statement(query("cancel_jobs"), {"ids": ids})
    if not rows and not children:
        found = yield Statement(query("get_job"), {"id": workflow_id})
        if not found:
            raise JobNotFound(f"no workflow with id {workflow_id}")
    return {
        "cancelled": sorted(r[0] for r in rows if r[1] == "cancelled"),
        "requested": sorted(r[0] for r in rows if r[1] == "running"),
    }


def decode(text: str | None) -> Any:
    return None if text is None else json.loads(text)
