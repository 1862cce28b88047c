"""The bad-input catalogue: each case's clear error, and nothing lost.

What the other suites already hold is not repeated here: wrong options and
arguments, NUL characters, non-JSON values, oversized names, keys and payloads
(``test_enqueue_validation.py``), DSNs with passwords (``test_dsn.py``), the
migration's failures (``test_migrate_errors.py``), control characters in CLI
output (``test_cli_output.py``), an exception whose ``str()`` raises and a
malformed ``Retry`` (``test_worker_faults.py``), an unknown task
(``test_worker.py``). Here: names built to break SQL, DSNs that are wrong in
other ways, rows written by plain SQL, exceptions that fail to describe
themselves or are enormous, and tasks that end their process. Every case that
stores jobs ends by counting them by status.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from starlette.testclient import TestClient
from test_worker_app import executions, prepare_tables, worker_process

import pgqueue
from pgqueue._bulk import COPY_MIN
from pgqueue._core import MAX_ERROR_CHARS, MAX_TRACEBACK_CHARS
from pgqueue.cli._base import run
from pgqueue.web import asgi_app

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

FAST = {"poll_interval": 0.1, "rescue_interval": 0.2}

# Names that would break a statement built by string formatting, or its output.
NASTY = [
    "x'; DROP TABLE pgqueue.jobs; --",
    'q"uote) OR 1=1 --',
    "back\\slash\\'",
    "%(queue)s %s {job_columns} $1",
    "ünïcødé 🚀 日本語 \u202etxet",
    "tab\tnew\nline",
]


@pytest.fixture
def app(clean_db: str) -> Iterator[pgqueue.App]:
    with pgqueue.App(clean_db, retry=pgqueue.RetryPolicy(base=0.01, cap=0.02)) as app:
        yield app


def by_status(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT status, count(*) FROM pgqueue.jobs GROUP BY 1").fetchall()
    return {status: n for status, n in rows}


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = run(argv)
    err = capsys.readouterr().err
    assert code != 0 and err.startswith("error: "), err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


# -- names built to break SQL ---------------------------------------------------------


def test_nasty_names_are_stored_verbatim_and_run(app: pgqueue.App, clean_db: str) -> None:
    tasks = []
    for i, name in enumerate(NASTY):

        @app.task(name=name, queue=name)
        def echo(n: int, tag: str = name) -> list[Any]:
            return [n, tag]

        tasks.append(echo)
        echo.enqueue(i)
        app.enqueue_many([echo.job(i) for _ in range(3)])
        app.enqueue_many([echo.job(i) for _ in range(COPY_MIN)])  # COPY
        keyed = echo.options(unique_key=name)
        assert keyed.enqueue(i).id == keyed.enqueue(i).id
        app.add_schedule(name, cron="0 3 * * *", task=name, queue=name, args=[i])
        app.pause_queue(name)
        app.resume_queue(name)
        assert len(app.list_jobs(queue=name, task=name, limit=500)) == 1 + 3 + COPY_MIN + 1
    assert app.run_worker(NASTY, until_empty=True, **FAST) == 0
    per_name = 1 + 3 + COPY_MIN + 1
    assert by_status(clean_db) == {"succeeded": len(NASTY) * per_name}
    for i, name in enumerate(NASTY):
        (job,) = app.list_jobs(queue=name, limit=1)
        assert (job.queue, job.task, job.result) == (name, name, [i, name])
    assert sorted(s.name for s in app.list_schedules()) == sorted(NASTY)
    for name in NASTY:
        app.remove_schedule(name)
    assert app.list_schedules() == []


def test_nasty_names_on_the_command_line_and_the_dashboard(
    app: pgqueue.App, clean_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name = NASTY[0]
    argv = ["enqueue", name, "--queue", name, "--unique-key", name, "--dsn", clean_db,
            "--args", json.dumps([name])]  # fmt: skip
    assert run(argv) == 0 and run(argv) == 0  # the second returns the holder
    assert run(["jobs", "list", "--queue", name, "--dsn", clean_db]) == 0
    out = capsys.readouterr().out
    assert name in out
    cron = ["cron", "add", name, "--cron", "0 3 * * *", "--task", name, "--dsn", clean_db]
    assert run(cron) == 0
    assert run(["cron", "pause", name, "--dsn", clean_db]) == 0
    assert run(["cron", "remove", name, "--dsn", clean_db]) == 0
    with TestClient(asgi_app(app, read_only=True)) as client:
        for query in ({"q": name}, {"queue": name}, {"task": name}, {"unique_key": name}):
            page = client.get("/jobs", params=query)
            assert page.status_code == 200, query
            assert "No job matches" not in page.text, query
        assert client.get("/jobs", params={"q": "'; SELECT pg_sleep(10); --"}).status_code == 200
    assert by_status(clean_db) == {"queued": 1}


# -- DSNs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dsn", "says"),
    [
        ("mysql://u@h/db", "invalid DSN"),
        ("postgresql://[::1/db", "invalid DSN"),
        ("   ", "it is blank"),
        # Regression: a port that is no number was retried by the pool until its timeout.
        ("postgresql://u@127.0.0.1:notaport/db", "port 'notaport' is not a number"),
        ("host=127.0.0.1 port=abc", "port 'abc' is not a number"),
        ("host=a,b port=5432,99999", "port '99999' is not a number"),
    ],
)
def test_wrong_dsns_fail_in_one_line_before_any_io(
    dsn: str, says: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGQUEUE_DSN", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    for argv in (["stats", "--dsn", dsn], ["migrate", "--dsn", dsn]):
        assert says in one_line_error(capsys, argv)
    monkeypatch.setenv("PGQUEUE_DSN", dsn)
    assert says in one_line_error(capsys, ["jobs", "list"])
    with pgqueue.App(dsn) as app, pytest.raises(pgqueue.ConfigurationError, match="DSN"):
        app.task_ref("t.any").enqueue()


@pytest.mark.parametrize(
    ("dsn", "says"),
    [
        ("postgresql://u@127.0.0.1:1/db", "cannot connect to PostgreSQL at 127.0.0.1:1/db"),
        ("postgresql://u@256.0.0.1/db", "cannot connect to PostgreSQL at 256.0.0.1"),
    ],
)
def test_unreachable_servers_are_one_line(
    dsn: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert says in one_line_error(capsys, ["migrate", "--dsn", dsn])


# -- rows written by plain SQL --------------------------------------------------------


@pytest.mark.parametrize(
    ("columns", "values", "error"),
    [
        ("task, args", "'t', '{\"a\": 1}'", psycopg.errors.CheckViolation),  # not an array
        ("task, args", "'t', '1'", psycopg.errors.CheckViolation),
        ("task, kwargs", "'t', NULL", psycopg.errors.NotNullViolation),
        ("task, kwargs", "'t', '[1]'", psycopg.errors.CheckViolation),  # not an object
        ("task, args", "'t', '[\"\\u0000\"]'", psycopg.errors.UntranslatableCharacter),
        ("task, args", "'t', '[1,'", psycopg.errors.InvalidTextRepresentation),
        ("task", "NULL", psycopg.errors.NotNullViolation),
        ("task, status", "'t', 'bogus'", psycopg.errors.CheckViolation),
        ("task, max_attempts", "'t', 0", psycopg.errors.CheckViolation),
        ("task, priority", "'t', 40000", psycopg.errors.NumericValueOutOfRange),
        ("task, unique_scope", "'t', 'everywhere'", psycopg.errors.CheckViolation),
        # Regression: a row Python cannot decode used to kill every worker that claimed it.
        ("task, run_at", "'t', '-infinity'", psycopg.errors.CheckViolation),
        ("task, run_at", "'t', 'infinity'", psycopg.errors.CheckViolation),
        ("task, run_at", "'t', '10000-01-01'", psycopg.errors.CheckViolation),
    ],
)
def test_the_schema_refuses_rows_a_worker_could_not_read(
    clean_db: str, columns: str, values: str, error: type[Exception]
) -> None:
    with psycopg.connect(clean_db) as conn, pytest.raises(error):
        conn.execute(f"INSERT INTO pgqueue.jobs ({columns}) VALUES ({values})")
    assert by_status(clean_db) == {}


def test_rows_the_task_cannot_take_are_dead_lettered_and_the_worker_goes_on(
    app: pgqueue.App, clean_db: str
) -> None:
    @app.task(name="t.add", max_attempts=2)
    def add(n: int) -> int:
        return n + 1

    rows = {
        "unknown task": "('t.nobody', '[1]', '{}', '{}')",
        "empty task name": "('', '[1]', '{}', '{}')",
        "too many arguments": "('t.add', '[1, 2, 3]', '{}', '{}')",
        "unexpected keyword": "('t.add', '[1]', '{\"x\": 1}', '{}')",
        "wrong type": "('t.add', '[\"one\"]', '{}', '{}')",
        "missing argument": "('t.add', '[]', '{}', '{}')",
        "meta not an object": "('t.add', '[1]', '{}', '\"just a string\"')",
        "meta null": "('t.add', '[2]', '{}', 'null')",
    }
    with psycopg.connect(clean_db) as conn:
        ids = {
            case: conn.execute(
                f"INSERT INTO pgqueue.jobs (task, args, kwargs, meta) VALUES {row} RETURNING id"
            ).fetchone()[0]  # type: ignore[index]
            for case, row in rows.items()
        }
    good = add.enqueue(41)
    assert app.run_worker("default", until_empty=True, **FAST) == 0
    assert by_status(clean_db) == {"dead": 6, "succeeded": 3}
    assert app.get_job(good.id).result == 42
    assert app.get_job(ids["meta not an object"]).result == 2
    expected = {
        "unknown task": "no task named 't.nobody'",
        "empty task name": "no task named ''",
        "too many arguments": "TypeError",
        "unexpected keyword": "TypeError",
        "wrong type": "TypeError",
        "missing argument": "TypeError",
    }
    for case, says in expected.items():
        job = app.get_job(ids[case])
        assert job.status == "dead" and says in (job.last_error or ""), (case, job.last_error)


def test_a_job_past_its_thousandth_attempt_still_retries_then_dies(
    app: pgqueue.App, clean_db: str
) -> None:
    """Regression: the backoff of attempt 1025 and later overflowed a float, the failed
    attempt was never recorded, and the job stayed running until rescued, for ever."""

    @app.task(name="t.again", max_attempts=1102)
    def again() -> None:
        raise ValueError("again")

    job = again.enqueue()
    with psycopg.connect(clean_db) as conn:
        conn.execute("UPDATE pgqueue.jobs SET attempts = 1100 WHERE id = %s", (job.id,))
    assert app.run_worker("default", until_empty=True, **FAST) == 0
    done = app.get_job(job.id)
    assert (done.status, done.attempts) == ("dead", 1102)
    assert [e["status"] for e in done.errors] == ["failed", "dead"]
    assert by_status(clean_db) == {"dead": 1}


# -- exceptions that fail to describe themselves, or are enormous ---------------------


class NoStrNoRepr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class StrNotAString(Exception):
    def __str__(self) -> str:
        return 42  # type: ignore[return-value]


def test_exceptions_that_cannot_be_described_or_are_huge(
    app: pgqueue.App, clean_db: str
) -> None:
    raised: dict[str, BaseException] = {
        "t.nostr": NoStrNoRepr(),
        "t.notastr": StrNotAString(),
        "t.exit": SystemExit(3),
        "t.interrupt": KeyboardInterrupt(),
        "t.huge": ValueError("x" * 3_000_000),
    }
    for name, exc in raised.items():

        @app.task(name=name, max_attempts=1)
        def fail(exc: BaseException = exc) -> None:
            raise exc

        fail.enqueue()

    @app.task(name="t.async_exit", max_attempts=1)
    async def async_exit() -> None:
        raise SystemExit(4)

    async_exit.enqueue()
    assert app.run_worker("default", until_empty=True, **FAST) == 0
    assert by_status(clean_db) == {"dead": len(raised) + 1}
    errors = {j.task: j for j in app.list_jobs()}
    nostr, notastr = errors["t.nostr"].last_error, errors["t.notastr"].last_error
    assert nostr == "NoStrNoRepr: <str() raised RuntimeError; repr() failed too>"
    assert notastr == "StrNotAString: <str() raised TypeError; StrNotAString()>"
    assert errors["t.exit"].last_error == "SystemExit: 3"
    assert errors["t.async_exit"].last_error == "SystemExit: 4"
    assert (errors["t.interrupt"].last_error or "").startswith("KeyboardInterrupt")
    huge = errors["t.huge"]
    assert huge.last_error is not None and len(huge.last_error) < MAX_ERROR_CHARS + 100
    assert "characters cut" in huge.last_error and huge.last_error.startswith("ValueError: xxx")
    (entry,) = huge.errors
    assert len(entry["traceback"]) < MAX_TRACEBACK_CHARS + 100
    assert "Traceback" in entry["traceback"]


# -- tasks that end their process ------------------------------------------------------


def test_exit_and_segfault_in_a_worker_process_lose_nothing(clean_db: str) -> None:
    """A child ended by ``os._exit`` or SIGSEGV: the supervisor starts another, the
    rescuer takes the job back after its lease, and it ends succeeded or dead."""
    prepare_tables(clean_db)
    app = pgqueue.App(clean_db)
    try:
        exits = app.task_ref("t.exit_once").enqueue(1)
        crash = app.task_ref("t.segfault").options(max_attempts=2).enqueue(2)
        fine = app.enqueue_many([app.task_ref("t.record").job(100 + i) for i in range(20)])
        # One slot per process and no claim-ahead: a crash takes no other job down
        # with it (a buffered job's attempt would count without a run).
        args = ("--processes", "2", "--concurrency", "1", "--prefetch", "0",
                "--rescue-interval", "0.3", "--poll-interval", "0.1")  # fmt: skip
        with worker_process(clean_db, *args, lease=1.0) as worker:
            for job in (exits, *fine):
                app.get_job(job.id).wait(timeout=60)
            with pytest.raises(pgqueue.JobFailed):
                app.get_job(crash.id).wait(timeout=60)
            worker.signal(signal.SIGTERM)
            assert worker.wait(30) == 0, worker.output()
            log = worker.output()
        assert "event=child_crashed" in log and f"exit_code=-{signal.SIGSEGV.value}" in log
        assert "exit_code=3" in log
        assert by_status(clean_db) == {"succeeded": 21, "dead": 1}
        # Every run counted as an attempt, and nothing ran more than it had to.
        for job in (exits, crash, *fine):
            runs = executions(clean_db, job.args[0])
            assert runs == app.get_job(job.id).attempts, job.args
        assert executions(clean_db, 1) == 2  # it exited, then ran to the end
        dead = app.get_job(crash.id)
        assert dead.attempts == 2 and "lease expired" in (dead.last_error or "")
    finally:
        app.close()
