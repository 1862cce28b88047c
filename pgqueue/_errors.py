"""pgqueue's exceptions.

Exception hierarchy::

    PgQueueError
    ├── ConfigurationError        bad setting, unknown option value
    ├── DatabaseUnavailable       cannot reach PostgreSQL (names host/port)
    ├── MigrationError            the schema cannot be migrated (unknown revision, ...)
    ├── JobNotFound               no job with that id (also a LookupError)
    │   └── FlowNotFound          no flow with that id
    ├── JobFailed                 job.wait(): the job ended dead or cancelled
    ├── WaitTimeout               job.wait(): still unfinished (also a TimeoutError)
    ├── ScheduleError             invalid cron expression or time zone (also a ValueError)
    │   └── ScheduleNotFound      no schedule with that name (also a LookupError)
    ├── QueueFull                 enqueue beyond a queue's maximum depth
    └── DependencyError           a bad depends_on: a job that does not exist, a spec
                                  not earlier in the batch (also a ValueError)

Raised by task code to steer its own job (not errors of pgqueue)::

    Retry(delay=...)              retry later; counts an attempt
    Discard(reason)               give up: straight to dead
    JobCancelled                  cancellation was requested: the job ends cancelled
"""

from __future__ import annotations

from typing import Any


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class PgQueueError(Exception):
    __module__ = "pgqueue"


class ConfigurationError(PgQueueError):
    __module__ = "pgqueue"


class DatabaseUnavailable(PgQueueError):
    __module__ = "pgqueue"


class MigrationError(PgQueueError):
    __module__ = "pgqueue"


class JobNotFound(PgQueueError, LookupError):
    __module__ = "pgqueue"


class FlowNotFound(JobNotFound):
    """No job has that ``flow_id``."""

    __module__ = "pgqueue"


class JobFailed(PgQueueError):
    """The awaited job ended without a result."""

    __module__ = "pgqueue"

    def __init__(self, job: Any) -> None:
        self.job = job
        super().__init__(f"job {job.id} ({job.task}) ended {job.status}: {job.last_error}")


class WaitTimeout(PgQueueError, TimeoutError):
    __module__ = "pgqueue"


class ScheduleError(PgQueueError, ValueError):
    __module__ = "pgqueue"


class ScheduleNotFound(ScheduleError, LookupError):
    """No schedule with that name."""

    __module__ = "pgqueue"


class QueueFull(PgQueueError):
    __module__ = "pgqueue"


class DependencyError(PgQueueError, ValueError):
    """A job cannot depend on what it was given (a missing job, a later spec)."""

    __module__ = "pgqueue"


class Retry(Exception):
    """Raise inside a task to run it again after ``delay`` seconds."""

    __module__ = "pgqueue"

    def __init__(self, delay: float | None = None, reason: str = "retry requested") -> None:
        self.delay = delay
        self.reason = reason
        super().__init__(reason)


class JobCancelled(Exception):
    """The job's cancellation was requested: raised into (or by) its task; it ends cancelled."""

    __module__ = "pgqueue"


class Discard(Exception):
    """Raise inside a task to send its job straight to ``dead``."""

    __module__ = "pgqueue"

    def __init__(self, reason: str = "discarded") -> None:
        self.reason = reason
        super().__init__(reason)
