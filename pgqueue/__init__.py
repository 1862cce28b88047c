"""pgqueue: a PostgreSQL-native job queue for Python."""

from pgqueue._app import App
from pgqueue._core import JobSpec, RetryPolicy
from pgqueue._errors import (
    ConfigurationError,
    DatabaseUnavailable,
    Discard,
    JobFailed,
    JobNotFound,
    PgQueueError,
    QueueFull,
    Retry,
    ScheduleError,
    WaitTimeout,
)
from pgqueue._job import Job
from pgqueue._task import Task, TaskOptions

__version__ = "0.1.0"

__all__ = [
    "App",
    "ConfigurationError",
    "DatabaseUnavailable",
    "Discard",
    "Job",
    "JobFailed",
    "JobNotFound",
    "JobSpec",
    "PgQueueError",
    "QueueFull",
    "Retry",
    "RetryPolicy",
    "ScheduleError",
    "Task",
    "TaskOptions",
    "WaitTimeout",
]
