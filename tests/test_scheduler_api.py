"""Declaring schedules in code, syncing them to pgqueue.schedules, changing them at runtime."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

import pgqueue
from pgqueue import ScheduleNotFound
from pgqueue._schedule import shard_of


@pytest.fixture
def app(clean_db: str) -> Iterator[pgqueue.App]:
    with pgqueue.App(clean_db) as app:
        yield app


def rows(dsn: str) -> dict[str, dict[str, Any]]:
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT * FROM pgqueue.schedules")
        names = [d.name for d in cur.description or ()]
        return {r[0]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}


def db_now(dsn: str) -> datetime:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


# -- declaring in code (no database) ---------------------------------------------


def test_cron_above_task_uses_the_task_and_its_options() -> None:
    app = pgqueue.App("postgresql://unused")

    @app.cron("0 9 * * *", timezone="Europe/Paris", missed="all", args=[1], kwargs={"a": 2})
    @app.task(name="reports.daily", queue="reports", priority=5)
    def daily(n: int, a: int) -> None: ...

    assert isinstance(daily, pgqueue.Task)
    (schedule,) = app.schedules.values()
    assert schedule.name == "reports.daily" and schedule.task == "reports.daily"
    assert (schedule.cron, schedule.timezone, schedule.missed) == ("0 9 * * *", "Europe/Paris",
                                                                   "all")  # fmt: skip
    assert schedule.args == (1,) and schedule.kwargs == {"a": 2}


def test_cron_below_task_follows_the_task_registration() -> None:
    app = pgqueue.App("postgresql://unused")

    @app.task(name="mail.digest", queue="email", max_attempts=7)
    @app.cron("*/5 * * * *", name="digest")
    def digest() -> None: ...

    assert list(app.tasks) == ["mail.digest"]  # the provisional registration is gone
    resolved = app.registry.resolve(app.schedules["digest"])
    assert (resolved.task, resolved.queue, resolved.max_attempts) == ("mail.digest", "email", 7)


def test_cron_on_a_plain_function_registers_it_as_a_task() -> None:
    app = pgqueue.App("postgresql://unused")

    @app.cron("0 * * * *")
    def hourly() -> str:
        return "ran"

    assert isinstance(hourly, pgqueue.Task) and hourly() == "ran"
    assert hourly.name in app.tasks and app.schedules[hourly.name].task == hourly.name


def test_several_schedules_on_one_task_need_names() -> None:
    app = pgqueue.App("postgresql://unused")

    @app.cron("0 9 * * *", name="morning")
    @app.cron("0 18 * * *", name="evening")
    @app.task(name="greet")
    def greet() -> None: ...

    assert sorted(app.schedules) == ["evening", "morning"]
    with pytest.raises(pgqueue.ScheduleError, match="declared twice"):
        app.cron("0 12 * * *", name="morning")(greet)


def test_schedule_a_task_by_name_without_its_code() -> None:
    app = pgqueue.App("postgresql://unused")
    schedule = app.schedule("billing.invoice", cron="0 0 1 * *", name="invoices")
    assert schedule.task == "billing.invoice" and app.schedules["invoices"] is schedule


@pytest.mark.parametrize(
    "options, message",
    [
        ({"cron": "0 25 * * *"}, "'nightly': invalid cron expression"),
        ({"cron": "0 3 * * *", "timezone": "Europe/Atlantis"}, "'nightly': unknown time zone"),
        ({"cron": "0 3 * * *", "missed": "never"}, "'nightly': missed must be"),
        ({"cron": "0 3 * * *", "args": [object()]}, "'nightly': args is not JSON"),
        ({"cron": "0 3 * * *", "priority": 10**6}, "'nightly': priority"),
    ],
)
def test_invalid_declaration_is_a_schedule_error_naming_it(
    options: dict[str, Any], message: str
) -> None:
    app = pgqueue.App("postgresql://unused")
    cron = options.pop("cron")
    with pytest.raises(pgqueue.ScheduleError, match=message):
        app.schedule("t", cron=cron, name="nightly", **options)
    with pytest.raises(pgqueue.ScheduleError, match=message):
        app.cron(cron, name="nightly", **options)(lambda: None)


# -- sync: the table is the source of truth -----------------------------------------------


def test_sync_inserts_declared_schedules_with_their_next_run(app: pgqueue.App) -> None:
    @app.cron("0 9 * * *", timezone="Europe/Paris", name="morning")
    @app.task(name="greet", queue="mail", priority=3)
    def greet() -> None: ...

    before = db_now(app.dsn)
    result = app.sync_schedules()
    assert result.inserted == ("morning",)
    row = rows(app.dsn)["morning"]
    assert row["declared"] and row["enabled"] and row["shard"] == shard_of("morning")
    assert (row["task"], row["queue"], row["priority"]) == ("greet", "mail", 3)
    assert before < row["next_run_at"] <= before + timedelta(days=1)
    paris = row["next_run_at"].astimezone(ZoneInfo("Europe/Paris"))
    assert (paris.hour, paris.minute) == (9, 0)


def test_sync_is_idempotent_and_keeps_next_run_at(app: pgqueue.App) -> None:
    app.schedule("t", cron="*/5 * * * *", name="five")
    app.sync_schedules()
    with psycopg.connect(app.dsn, autocommit=True) as conn:  # as if the scheduler had run
        conn.execute("UPDATE pgqueue.schedules SET next_run_at = next_run_at + interval '5 min'")
    moved = rows(app.dsn)["five"]["next_run_at"]
    assert app.sync_schedules() == pgqueue._schedules.SyncResult()
    assert rows(app.dsn)["five"]["next_run_at"] == moved


def test_changed_expression_recomputes_next_run_at(app: pgqueue.App) -> None:
    app.schedule("t", cron="0 0 1 1 *", name="s", args=[1])
    app.sync_schedules()
    yearly = rows(app.dsn)["s"]["next_run_at"]
    app.schedules.clear()
    app.schedule("t", cron="* * * * *", name="s", args=[1])
    assert app.sync_schedules().updated == ("s",)
    assert rows(app.dsn)["s"]["next_run_at"] < yearly
    # Other changes keep it.
    every_minute = rows(app.dsn)["s"]["next_run_at"]
    app.schedules.clear()
    app.schedule("t", cron="* * * * *", name="s", args=[2], queue="other")
    app.sync_schedules()
    row = rows(app.dsn)["s"]
    assert row["args"] == [2] and row["queue"] == "other" and row["next_run_at"] == every_minute


def test_schedules_removed_from_code_are_disabled_not_deleted(app: pgqueue.App) -> None:
    app.schedule("t", cron="@daily", name="kept")
    app.schedule("t", cron="@daily", name="dropped")
    app.sync_schedules()
    app.add_schedule("runtime", cron="@hourly", task="t")
    app.schedules.pop("dropped")
    assert app.sync_schedules().disabled == ("dropped",)
    table = rows(app.dsn)
    assert not table["dropped"]["enabled"] and not table["dropped"]["declared"]
    assert table["kept"]["enabled"] and table["runtime"]["enabled"]
    assert not table["runtime"]["declared"]
    # Declared again: enabled again.
    app.schedule("t", cron="@daily", name="dropped")
    app.sync_schedules()
    assert rows(app.dsn)["dropped"]["enabled"]


def test_an_app_without_schedules_disables_nothing(app: pgqueue.App) -> None:
    app.schedule("t", cron="@daily", name="theirs")
    app.sync_schedules()
    with pgqueue.App(app.dsn) as other:  # another service's worker on the same database
        assert other.sync_schedules().disabled == ()
        assert other.sync_schedules(disable_undeclared=True).disabled == ("theirs",)


def test_an_operator_pause_survives_a_restart(app: pgqueue.App) -> None:
    app.schedule("t", cron="@daily", name="nightly")
    app.sync_schedules()
    app.pause_schedule("nightly")
    app.sync_schedules()
    assert not rows(app.dsn)["nightly"]["enabled"]


# -- runtime changes ----------------------------------------------------------------


def test_add_list_pause_resume_remove(app: pgqueue.App) -> None:
    added = app.add_schedule("cleanup", cron="30 3 * * *", task="ops.cleanup",
                             timezone="America/New_York", kwargs={"days": 30})  # fmt: skip
    assert added.enabled and not added.declared and added.next_run_at is not None
    with pytest.raises(pgqueue.ScheduleError, match="already exists"):
        app.add_schedule("cleanup", cron="30 4 * * *", task="ops.cleanup")
    replaced = app.add_schedule("cleanup", cron="30 4 * * *", task="ops.cleanup", replace=True)
    assert replaced.cron == "30 4 * * *"
    assert [s.name for s in app.list_schedules()] == ["cleanup"]

    app.pause_schedule("cleanup")
    assert not app.get_schedule("cleanup").enabled
    with psycopg.connect(app.dsn, autocommit=True) as conn:  # paused for a long time
        conn.execute("UPDATE pgqueue.schedules SET next_run_at = now() - interval '3 days'")
    resumed = app.resume_schedule("cleanup")
    assert resumed.enabled and resumed.next_run_at is not None
    assert resumed.next_run_at > db_now(app.dsn)  # the pause is not caught up

    app.remove_schedule("cleanup")
    assert app.list_schedules() == []


@pytest.mark.parametrize("op", ["pause_schedule", "resume_schedule", "remove_schedule",
                                "run_schedule_now", "get_schedule"])  # fmt: skip
def test_unknown_schedule_name(app: pgqueue.App, op: str) -> None:
    with pytest.raises(ScheduleNotFound, match="no schedule named 'nope'"):
        getattr(app, op)("nope")


def test_run_now_enqueues_once_outside_the_timetable(app: pgqueue.App) -> None:
    app.add_schedule("digest", cron="0 0 1 1 *", task="mail.digest", args=[7], queue="mail")
    before = app.get_schedule("digest")
    job = app.run_schedule_now("digest")
    assert (job.task, job.args, job.queue) == ("mail.digest", [7], "mail")
    assert job.meta["schedule"] == "digest" and job.meta["manual"] is True
    assert datetime.fromisoformat(job.meta["scheduled_for"]).tzinfo is not None
    assert app.get_schedule("digest").next_run_at == before.next_run_at
