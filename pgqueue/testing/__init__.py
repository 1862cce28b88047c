"""Helpers for testing code that uses pgqueue (public API).

Three ways to test, from the fastest to the most faithful::

    from pgqueue import testing

    # 1. Call a task as the worker would: JSON arguments, a job context, no database.
    assert testing.run_job(send_email, 42, template="welcome") == {"sent": True}

    # 2. Eager mode: enqueue runs the task inline and returns the finished Job.
    with testing.eager(app):
        job = signup(user_id=42)          # code under test that enqueues send_email
    assert job.status == "succeeded"

    # 3. Against the real database: assert what was enqueued, then run it.
    signup(user_id=42)
    testing.assert_enqueued(app, send_email, args=[42])
    assert testing.drain(app) == 1

Every database helper has an ``_async`` twin. Modules: ``_inline`` (eager
mode, ``run_job``), ``_enqueued`` (what is in the jobs table), ``_drain``
(a real worker in burst mode).

The pytest plugin (``pgqueue.pytest_plugin``, registered as an entry point)
gives a throwaway database per session and a clean one per test
(``pgqueue_dsn``, ``pgqueue_db``, ``pgqueue_app``).

.. versionadded:: 0.1
"""

from __future__ import annotations

from pgqueue.testing._drain import drain, drain_async
from pgqueue.testing._enqueued import (
    assert_enqueued,
    assert_enqueued_async,
    enqueued,
    enqueued_async,
    refute_enqueued,
    refute_enqueued_async,
)
from pgqueue.testing._inline import eager, run_job, run_job_async

__all__ = [
    "assert_enqueued",
    "assert_enqueued_async",
    "drain",
    "drain_async",
    "eager",
    "enqueued",
    "enqueued_async",
    "refute_enqueued",
    "refute_enqueued_async",
    "run_job",
    "run_job_async",
]
