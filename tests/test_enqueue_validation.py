"""Bad values and oversized jobs fail at enqueue, before anything touches the database.

Each error is checked against an App whose server does not exist: a check made
after the first round trip would say "cannot connect" instead. Values at the
limits go to the real database, on the single, JSON-batch and COPY paths.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import psycopg
import pytest

import pgqueue
from pgqueue._bulk import COPY_MIN
from pgqueue._core import MAX_QUEUE_BYTES, MAX_TASK_BYTES, MAX_UNIQUE_KEY_BYTES
from pgqueue.cli._base import run

NOWHERE = "postgresql://x@127.0.0.1:1/none"


@pytest.fixture
def offline() -> Iterator[pgqueue.App]:
    with pgqueue.App(NOWHERE, connect_timeout=1) as app:
        yield app


@pytest.fixture
def app(clean_db: str) -> Iterator[pgqueue.App]:
    with pgqueue.App(clean_db) as app:
        yield app


def count(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM pgqueue.jobs").fetchone()
    assert row is not None
    return int(row[0])


def each_path(app: pgqueue.App, make: Any) -> Iterator[Any]:
    """Callables enqueueing ``make(i)`` alone, in a small batch and by COPY."""
    yield lambda: app.enqueue_many([make(0)])
    yield lambda: app.enqueue_many([make(i) for i in range(3)])
    yield lambda: app.enqueue_many([make(i) for i in range(COPY_MIN)])


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"priority": 1.5}, TypeError, "priority must be an integer"),
        ({"priority": True}, TypeError, "priority must be an integer"),
        ({"delay": 1e300}, ValueError, "delay"),
        ({"delay": float("inf")}, ValueError, "delay"),
        ({"delay": "60"}, TypeError, "delay"),
        ({"max_attempts": 2**40}, ValueError, "max_attempts"),
        ({"max_attempts": 2.0}, TypeError, "max_attempts"),
        ({"run_at": "2030-01-01"}, TypeError, "run_at must be a timezone-aware datetime"),
        ({"queue": "a\x00b"}, ValueError, "NUL"),
        ({"unique_key": "k\x00"}, ValueError, "NUL"),
        ({"queue": "q" * (MAX_QUEUE_BYTES + 1)}, ValueError, "queue name is longer"),
        ({"queue": "é" * (MAX_QUEUE_BYTES // 2 + 1)}, ValueError, "bytes"),
        ({"unique_key": "k" * (MAX_UNIQUE_KEY_BYTES + 1)}, ValueError, "unique_key"),
    ],
)
def test_bad_options(
    offline: pgqueue.App, options: dict[str, Any], error: type[Exception], match: str
) -> None:
    task = offline.task_ref("t.any")
    with pytest.raises(error, match=match):
        task.options(**options)
    fields = {"task": "t.any", **options}
    if "run_at" not in options and "delay" not in options:
        fields.setdefault("run_at", None)
    with pytest.raises(error, match=match):
        pgqueue.JobSpec(**fields)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("a\x00b",), {}, "NUL"),
        ((), {"k": ["\x00"]}, "NUL"),
        (({1: "a", "1": "b"},), {}, "two keys that are both '1'"),
        ((), {"k": {"x": [{True: 1, "true": 2}]}}, "'true'"),
        (([[[[[]]]]],), {"deep": "x"}, None),  # not an error: the control case
    ],
)
def test_bad_arguments_on_every_path(
    offline: pgqueue.App, args: tuple[Any, ...], kwargs: dict[str, Any], match: str | None
) -> None:
    task = offline.task_ref("t.any")
    for enqueue in each_path(offline, lambda i: task.job(*args, **kwargs)):
        if match is None:
            with pytest.raises(pgqueue.DatabaseUnavailable):
                enqueue()
        else:
            with pytest.raises(TypeError, match=match):
                enqueue()
    if match is not None:
        with pytest.raises(TypeError, match=match):
            task.enqueue(*args, **kwargs)


def test_float_priority_never_reaches_the_copy_path(offline: pgqueue.App) -> None:
    task = offline.task_ref("t.any")
    with pytest.raises(TypeError, match="priority"):
        offline.enqueue_many([pgqueue.JobSpec("t.any", priority=1.5) for _ in range(COPY_MIN)])
    with pytest.raises(TypeError, match="priority"):
        offline.enqueue_many([task.options(priority=2.0).job(i) for i in range(COPY_MIN)])


def test_deep_nesting_is_a_type_error(offline: pgqueue.App) -> None:
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(TypeError, match="nested too deeply"):
        offline.task_ref("t.any").enqueue(deep)


def test_bad_task_names(offline: pgqueue.App) -> None:
    with pytest.raises(ValueError, match="NUL"):
        offline.task_ref("t\x00")
    with pytest.raises(ValueError, match="task name is longer"):
        offline.task_ref("t" * (MAX_TASK_BYTES + 1))
    with pytest.raises(ValueError, match="NUL"):
        offline.task(name="t\x00")(lambda: None)
    with pytest.raises(TypeError, match="priority"):
        offline.task(name="t.p", priority=2.0)(lambda: None)  # type: ignore[arg-type]


def test_queue_controls_check_the_name(offline: pgqueue.App) -> None:
    with pytest.raises(ValueError, match="queue name is longer"):
        offline.pause_queue("q" * (MAX_QUEUE_BYTES + 1))
    with pytest.raises(ValueError, match="NUL"):
        offline.set_queue("q\x00", max_depth=1)


def test_payload_limit(clean_db: str) -> None:
    with pgqueue.App(clean_db, max_payload=1000) as app:
        task = app.task_ref("t.big")
        for enqueue in each_path(app, lambda i: task.job("x" * 1000)):
            with pytest.raises(ValueError, match="over the limit of 1000"):
                enqueue()
        with pytest.raises(ValueError, match="over the limit"):
            task.options(meta={"m": "x" * 1000}).enqueue()
        assert count(clean_db) == 0
        for enqueue in each_path(app, lambda i: task.job("x" * 900)):
            enqueue()
        assert count(clean_db) == 1 + 3 + COPY_MIN


def test_default_payload_limit_is_one_mebibyte(offline: pgqueue.App) -> None:
    assert offline.registry.max_payload == 1024 * 1024
    with pytest.raises(ValueError, match="over the limit of 1048576"):
        offline.task_ref("t.big").enqueue("x" * (1024 * 1024))


def test_values_at_the_limits_are_stored(app: pgqueue.App, clean_db: str) -> None:
    queue = "é" * (MAX_QUEUE_BYTES // 2)
    task = app.task_ref("t" * MAX_TASK_BYTES, queue=queue)
    key = "k" * MAX_UNIQUE_KEY_BYTES
    run_at = datetime(2030, 1, 1, tzinfo=timezone.utc)
    job = task.options(unique_key=key, max_attempts=2**31 - 1, run_at=run_at).enqueue(
        {1: "a", "b": 2}, "back\\u0000slash", {"nested": {2: [None]}}
    )
    stored = app.get_job(job.id)
    assert (stored.queue, stored.unique_key, stored.max_attempts) == (queue, key, 2**31 - 1)
    assert stored.args == [{"1": "a", "b": 2}, "back\\u0000slash", {"nested": {"2": [None]}}]
    app.enqueue_many([task.job({1: "a", "b": i}) for i in range(COPY_MIN)])
    assert count(clean_db) == 1 + COPY_MIN


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--args", "[" * 100_000 + "]" * 100_000], "--args is nested too deeply"),
        (["--kwargs", '{"a":' * 50_000 + "1" + "}" * 50_000], "--kwargs is nested too deeply"),
        (["--priority", "1.5"], "Invalid value for '--priority'"),
        (["--delay", "1e300"], "delay"),
        (["--max-attempts", str(2**40)], "max_attempts"),
        (["--args", '["a\\u0000b"]'], "NUL"),
        (["--queue", "q" * 300], "queue name is longer"),
        (["--unique-key", "k" * 1100], "unique_key is longer"),
    ],
)
def test_cli_mistakes_are_one_line(
    clean_db: str, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code = run(["enqueue", "t.any", *argv, "--dsn", clean_db])
    _, err = capsys.readouterr()
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert count(clean_db) == 0
