"""pgqueue: a PostgreSQL-native job queue for Python."""

from pgqueue._admin import Replayed, Retried
from pgqueue._app import App
from pgqueue._canvas import Chain, Chord, Group, chain, chord, group
from pgqueue._context import JobContext, current_job
from pgqueue._core import JobSpec, RetryPolicy
from pgqueue._errors import (
    ConfigurationError,
    DatabaseUnavailable,
    DependencyError,
    Discard,
    FlowNotFound,
    JobCancelled,
    JobFailed,
    JobNotFound,
    MigrationError,
    NonDeterministicWorkflow,
    PgQueueError,
    QueueFull,
    Retry,
    ScheduleError,
    ScheduleNotFound,
    StepFailed,
    WaitTimeout,
    WorkflowError,
)
from pgqueue._flows import FlowHandle
from pgqueue._graph import FlowGraph, FlowNode, FlowSummary, JobGraph
from pgqueue._hooks import Attempt, Middleware
from pgqueue._job import Job
from pgqueue._queues import QueueSettings
from pgqueue._schedules import Schedule
from pgqueue._task import Task, TaskOptions
from pgqueue._workflow import (
    Step,
    StepRecord,
    Workflow,
    WorkflowHandle,
    now,
    now_async,
    random,
    random_async,
    run_task,
    run_task_async,
    sleep,
    sleep_async,
    wait_for_event,
    wait_for_event_async,
)

__version__ = "0.1.0"

__all__ = [
    "App",
    "Attempt",
    "Chain",
    "Chord",
    "ConfigurationError",
    "DatabaseUnavailable",
    "DependencyError",
    "Discard",
    "FlowGraph",
    "FlowHandle",
    "FlowNode",
    "FlowNotFound",
    "FlowSummary",
    "Group",
    "Job",
    "JobCancelled",
    "JobContext",
    "JobFailed",
    "JobGraph",
    "JobNotFound",
    "JobSpec",
    "Middleware",
    "MigrationError",
    "NonDeterministicWorkflow",
    "PgQueueError",
    "QueueFull",
    "QueueSettings",
    "Replayed",
    "Retried",
    "Retry",
    "RetryPolicy",
    "Schedule",
    "ScheduleError",
    "ScheduleNotFound",
    "Step",
    "StepFailed",
    "StepRecord",
    "Task",
    "TaskOptions",
    "WaitTimeout",
    "Workflow",
    "WorkflowError",
    "WorkflowHandle",
    "chain",
    "chord",
    "current_job",
    "group",
    "now",
    "now_async",
    "random",
    "random_async",
    "run_task",
    "run_task_async",
    "sleep",
    "sleep_async",
    "wait_for_event",
    "wait_for_event_async",
]
