"""The public surface: a sorted, importable __all__; named SQL loads."""

from __future__ import annotations

import pgqueue
from pgqueue import _sql


def test_all_is_sorted_and_importable() -> None:
    assert pgqueue.__all__ == sorted(pgqueue.__all__)
    for name in pgqueue.__all__:
        assert getattr(pgqueue, name).__module__ == "pgqueue", name


def test_error_tree() -> None:
    for name in ("ConfigurationError", "DatabaseUnavailable", "JobNotFound", "JobFailed",
                 "WaitTimeout", "ScheduleError", "QueueFull", "MigrationError"):  # fmt: skip
        assert issubclass(getattr(pgqueue, name), pgqueue.PgQueueError)
    assert issubclass(pgqueue.JobNotFound, LookupError)
    assert issubclass(pgqueue.WaitTimeout, TimeoutError)
    assert issubclass(pgqueue.ScheduleError, ValueError)
    assert not issubclass(pgqueue.Retry, pgqueue.PgQueueError)


def test_sql_queries_load_by_name() -> None:
    names = _sql.names()
    for required in ("enqueue", "claim", "complete", "heartbeat", "release", "rescue"):
        assert required in names
    # Fragments are spliced in: no placeholder braces survive.
    assert "{job_columns}" not in _sql.query("get_job")
    assert "cancel_requested" in _sql.query("get_job")
