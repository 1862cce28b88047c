"""Middleware around enqueue and execution; the README's Sentry example with a fake client."""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import pgqueue
from pgqueue import testing

README = Path(__file__).resolve().parent.parent / "README.md"


class Recorder(pgqueue.Middleware):
    """Adds meta at enqueue, records what it sees around each attempt."""

    def __init__(self, name: str, log: list[Any]) -> None:
        self.name = name
        self.log = log

    def on_enqueue(self, spec: pgqueue.JobSpec) -> pgqueue.JobSpec:
        return dataclasses.replace(spec, meta={**spec.meta, self.name: True})

    def around_enqueue(
        self, specs: list[pgqueue.JobSpec], call_next: Callable[[list[pgqueue.JobSpec]], Any]
    ) -> list[pgqueue.Job]:
        jobs: list[pgqueue.Job] = call_next(specs)
        self.log.append((self.name, "enqueued", [j.id for j in jobs]))
        return jobs

    async def around_enqueue_async(
        self, specs: list[pgqueue.JobSpec], call_next: Callable[..., Awaitable[Any]]
    ) -> list[pgqueue.Job]:
        jobs: list[pgqueue.Job] = await call_next(specs)
        self.log.append((self.name, "enqueued_async", [j.id for j in jobs]))
        return jobs

    def around_execute(self, attempt: pgqueue.Attempt, call_next: Callable[[], Any]) -> Any:
        self.log.append((self.name, "start", attempt.task, attempt.args, dict(attempt.meta)))
        try:
            result = call_next()
        except Exception as exc:
            self.log.append((self.name, attempt.outcome(exc), attempt.attempt))
            raise
        self.log.append((self.name, attempt.outcome(None), result))
        return result

    async def around_execute_async(
        self, attempt: pgqueue.Attempt, call_next: Callable[[], Awaitable[Any]]
    ) -> Any:
        self.log.append((self.name, "start_async", attempt.task, attempt.kwargs))
        result = await call_next()
        self.log.append((self.name, "succeeded_async", result))
        return result


def make_app(dsn: str) -> pgqueue.App:
    app = pgqueue.App(dsn, retry=pgqueue.RetryPolicy(base=0, cap=0), max_connections=4)

    @app.task(name="double")
    def double(n: int) -> int:
        return n * 2

    @app.task(name="fail", max_attempts=2)
    def fail(n: int) -> None:
        raise ValueError(f"failed {n}")

    @app.task(name="adouble")
    async def adouble(*, n: int) -> int:
        return n * 2

    return app


def test_middleware_adds_meta_and_sees_each_outcome(clean_db: str) -> None:
    log: list[Any] = []
    with make_app(clean_db) as app:
        outer, inner = Recorder("outer", log), Recorder("inner", log)
        app.add_middleware(outer)
        app.add_middleware(inner)
        job = app.tasks["double"].enqueue(21)
        failing = app.tasks["fail"].enqueue(1)
        assert job.meta == {"outer": True, "inner": True}
        assert app.get_job(job.id).meta == {"outer": True, "inner": True}  # stored
        assert log[:2] == [("inner", "enqueued", [job.id]), ("outer", "enqueued", [job.id])]
        log.clear()
        assert testing.drain(app, include_scheduled=True) == 3
        assert app.get_job(job.id).result == 42
    starts = [e for e in log if e[1] == "start" and e[2] == "double"]
    assert [e[0] for e in starts] == ["outer", "inner"]  # first added: outermost
    assert starts[0][3:] == ((21,), {"outer": True, "inner": True})
    assert ("outer", "succeeded", 42) in log
    assert ("inner", "failed", 1) in log and ("outer", "failed", 1) in log
    assert ("outer", "dead", 2) in log
    assert app.get_job(failing.id).status == "dead"


async def test_async_twins_for_async_producers_and_tasks(clean_db: str) -> None:
    log: list[Any] = []
    app = make_app(clean_db)
    try:
        app.add_middleware(Recorder("m", log))
        jobs = await app.enqueue_many_async(
            [app.tasks["adouble"].job(n=1), app.tasks["adouble"].job(n=2)]
        )
        assert log == [("m", "enqueued_async", [j.id for j in jobs])]
        assert all(j.meta == {"m": True} for j in jobs)
        await testing.drain_async(app)
        assert ("m", "start_async", "adouble", {"n": 2}) in log
        assert ("m", "succeeded_async", 4) in log
        assert not [e for e in log if e[1] == "start"]  # the sync hook never saw an async task
    finally:
        await app.close_async()


def test_enqueue_hooks_run_before_encoding_and_io() -> None:
    app = make_app("postgresql://nobody@127.0.0.1:1/none")  # any I/O would fail
    seen: list[pgqueue.JobSpec] = []

    class Spy(pgqueue.Middleware):
        def on_enqueue(self, spec: pgqueue.JobSpec) -> pgqueue.JobSpec:
            seen.append(spec)
            return spec

    app.add_middleware(Spy())
    with pytest.raises(TypeError, match="argument of double is not JSON"):
        app.tasks["double"].enqueue(object())
    assert len(seen) == 1

    class Broken:
        def on_enqueue(self, spec: pgqueue.JobSpec) -> Any:
            return {"not": "a spec"}

    app.add_middleware(Broken())
    with pytest.raises(TypeError, match="on_enqueue must return a JobSpec"):
        app.tasks["double"].enqueue(1)
    with pytest.raises(TypeError, match="defines none of"):
        app.add_middleware(object())


# -- the README's Sentry example, with a fake client ------------------------------------


class FakeScope:
    def __init__(self) -> None:
        self.tags: dict[str, Any] = {}
        self.contexts: dict[str, Any] = {}

    def set_tag(self, key: str, value: Any) -> None:
        self.tags[key] = value

    def set_context(self, key: str, value: dict[str, Any]) -> None:
        self.contexts[key] = value


class FakeSentry:
    """The part of ``sentry_sdk`` the example uses: ``new_scope()``, ``capture_exception``."""

    def __init__(self) -> None:
        self.events: list[tuple[BaseException, FakeScope]] = []
        self._scopes: list[FakeScope] = []

    @contextlib.contextmanager
    def new_scope(self) -> Iterator[FakeScope]:
        self._scopes.append(FakeScope())
        try:
            yield self._scopes[-1]
        finally:
            self._scopes.pop()

    def capture_exception(self, exc: BaseException) -> None:
        self.events.append((exc, self._scopes[-1]))


def readme_example(heading: str) -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index(heading) :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, heading
    return match.group(1)


def test_readme_sentry_example_reports_failures(clean_db: str) -> None:
    sentry = FakeSentry()
    namespace: dict[str, Any] = {"sentry_sdk": sentry}
    code = readme_example("### Error reporting: Sentry").replace("import sentry_sdk\n", "")
    with make_app(clean_db) as app:
        namespace["app"] = app
        exec(code, namespace)  # the example as written, with the fake for sentry_sdk
        failing = app.tasks["fail"].enqueue(7)
        app.tasks["double"].enqueue(1)
        testing.drain(app, include_scheduled=True)
    assert [str(exc) for exc, _ in sentry.events] == ["failed 7", "failed 7"]
    _, scope = sentry.events[-1]
    assert scope.tags == {"pgqueue.task": "fail", "pgqueue.queue": "default"}
    assert scope.contexts["pgqueue"] == {
        "job_id": failing.id, "attempt": 2, "max_attempts": 2, "args": [7], "kwargs": {},
        "outcome": "dead",
    }  # fmt: skip
