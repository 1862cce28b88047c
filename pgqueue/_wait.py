"""``job.wait()``: block until a job finishes, woken by LISTEN, not a tight poll."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from pgqueue._core import FINISHED
from pgqueue._errors import JobFailed, WaitTimeout
from pgqueue._keys import DONE_CHANNEL

if TYPE_CHECKING:
    from pgqueue._db import Database
    from pgqueue._job import Job
    from pgqueue._protocols import JobOwner

RECHECK = 1.0  # seconds: re-read the job at least this often, in case a notification was missed


def outcome(job: Job) -> Any:
    if job.status == "succeeded":
        return job.result
    raise JobFailed(job)


def _mentions(payload: str, job_id: int) -> bool:
    return str(job_id) in payload.split(",")


def wait_for(database: Database, owner: JobOwner, job_id: int, timeout: float | None) -> Any:
    deadline = None if timeout is None else time.monotonic() + timeout
    with database.connect() as conn:
        conn.execute(f"LISTEN {DONE_CHANNEL}")
        while True:
            job = owner.get_job(job_id)
            if job.status in FINISHED:
                return outcome(job)
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise WaitTimeout(f"job {job_id} still {job.status} after {timeout}s")
            slice_ = RECHECK if left is None else min(RECHECK, left)
            for note in conn.notifies(timeout=slice_, stop_after=1):
                if _mentions(note.payload, job_id):
                    break


async def wait_for_async(
    database: Database, owner: JobOwner, job_id: int, timeout: float | None
) -> Any:
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    async with await database.connect_async() as aconn:
        await aconn.execute(f"LISTEN {DONE_CHANNEL}")
        while True:
            job = await owner.get_job_async(job_id)
            if job.status in FINISHED:
                return outcome(job)
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                raise WaitTimeout(f"job {job_id} still {job.status} after {timeout}s")
            slice_ = RECHECK if left is None else min(RECHECK, left)
            async for note in aconn.notifies(timeout=slice_, stop_after=1):
                if _mentions(note.payload, job_id):
                    break
