"""Commands: ``cron`` (list, add, pause, resume, run-now, remove) and ``scheduler``."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, TypeVar
from zoneinfo import ZoneInfo

import typer

from pgqueue._schedules import Schedule
from pgqueue.cli._base import (
    DsnOption,
    JsonOption,
    cli,
    echo,
    emit_json,
    fail,
    load_app,
    parse_json,
    plain_app,
    require_schema,
)

cron_cli = typer.Typer(
    help="Cron schedules: list, add, pause, resume, run now, remove.", no_args_is_help=True
)
cli.add_typer(cron_cli, name="cron")

NameArg = Annotated[str, typer.Argument(help="Schedule name.")]
COLUMNS = ("name", "expression", "zone", "task", "next run", "last run", "enabled")
T = TypeVar("T")


@contextmanager
def _user_errors() -> Iterator[None]:
    """A bad name, expression or zone is the user's mistake: one line, exit 2."""
    from pgqueue._errors import ScheduleError

    try:
        yield
    except ScheduleError as exc:
        raise fail(str(exc)) from None


def _call(fn: Callable[[], T]) -> T:
    with _user_errors():
        return fn()


def _when(value: datetime | None, zone: str) -> str:
    if value is None:
        return "-"
    return value.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S %Z")


@cron_cli.command("list")
def cron_list(dsn: DsnOption = None, as_json: JsonOption = False) -> None:
    """Every schedule: expression, zone, next and last run (in its zone), enabled."""
    schedules = plain_app(dsn).list_schedules()
    if as_json:
        emit_json([s.as_dict() for s in schedules])
        return
    if not schedules:
        typer.echo("no schedules")
        return
    rows = [
        [s.name, s.cron, s.timezone, s.task, _when(s.next_run_at, s.timezone),
         _when(s.last_run_at, s.timezone), "yes" if s.enabled else "no"]
        for s in schedules
    ]  # fmt: skip
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(COLUMNS)]
    for line in [list(COLUMNS), *rows]:
        echo("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())


@cron_cli.command("add")
def cron_add(
    name: NameArg,
    cron: Annotated[str, typer.Option("--cron", help="5 fields, or 6 with seconds first.")],
    task: Annotated[str, typer.Option("--task", help="Task name to enqueue.")],
    timezone: Annotated[str, typer.Option(help="IANA zone, e.g. Europe/Paris.")] = "UTC",
    queue: Annotated[str, typer.Option(help="Queue of the jobs.")] = "default",
    priority: Annotated[int, typer.Option(help="Higher runs first.")] = 0,
    max_attempts: Annotated[int, typer.Option(help="Attempts before dead.")] = 3,
    args: Annotated[str, typer.Option("--args", help="Positional arguments, JSON array.")] = "[]",
    kwargs: Annotated[str, typer.Option("--kwargs", help="Keyword arguments, JSON object.")] = "{}",
    missed: Annotated[str, typer.Option(help="Missed fires: skip, latest or all.")] = "latest",
    max_catchup: Annotated[int, typer.Option(help="With --missed all: at most this many.")] = 10,
    grace_seconds: Annotated[float, typer.Option(help="A fire this late is on time.")] = 60.0,
    replace: Annotated[bool, typer.Option("--replace", help="Overwrite one that exists.")] = False,
    dsn: DsnOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add a schedule at runtime (no deploy); the scheduler enqueues TASK by name."""
    app = plain_app(dsn)
    schedule = _call(lambda: app.add_schedule(
        name, cron=cron, task=task, timezone=timezone, queue=queue, priority=priority,
        max_attempts=max_attempts, args=tuple(parse_json(args, "--args", list)),
        kwargs=parse_json(kwargs, "--kwargs", dict), missed=missed,
        max_catchup=max_catchup, grace_seconds=grace_seconds, replace=replace,
    ))  # fmt: skip
    if as_json:
        emit_json(schedule.as_dict())
    else:
        when = _when(schedule.next_run_at, schedule.timezone)
        echo(f"schedule {schedule.name} added; next run {when}")


@cron_cli.command("pause")
def cron_pause(name: NameArg, dsn: DsnOption = None) -> None:
    """Stop a schedule firing (resume brings it back)."""
    app = plain_app(dsn)
    _call(lambda: app.pause_schedule(name))
    echo(f"schedule {name} paused")


@cron_cli.command("resume")
def cron_resume(name: NameArg, dsn: DsnOption = None) -> None:
    """Fire again, from the next fire after now (the pause is not caught up)."""
    app = plain_app(dsn)
    schedule: Schedule = _call(lambda: app.resume_schedule(name))
    when = _when(schedule.next_run_at, schedule.timezone)
    echo(f"schedule {name} enabled; next run {when}")


@cron_cli.command("remove")
def cron_remove(name: NameArg, dsn: DsnOption = None) -> None:
    """Delete a schedule (one still declared in code returns at the next worker start)."""
    app = plain_app(dsn)
    _call(lambda: app.remove_schedule(name))
    echo(f"schedule {name} removed")


@cron_cli.command("run-now")
def cron_run_now(name: NameArg, dsn: DsnOption = None, as_json: JsonOption = False) -> None:
    """Enqueue the schedule's job once, now; its timetable does not change."""
    app = plain_app(dsn)
    job = _call(lambda: app.run_schedule_now(name))
    if as_json:
        emit_json({"id": job.id, "task": job.task, "queue": job.queue, "meta": job.meta})
    else:
        echo(f"enqueued job {job.id} ({job.task}) on queue {job.queue}")


@cli.command("scheduler")
def scheduler(
    app_spec: Annotated[
        str | None,
        typer.Argument(metavar="[APP]", help="module:app whose declared schedules are synced."),
    ] = None,
    dsn: DsnOption = None,
    poll_interval: Annotated[float, typer.Option(help="Seconds between passes, at most.")] = 1.0,
) -> None:
    """Run the cron scheduler alone (workers run one by default); no task code needed."""
    from pgqueue.maintenance.scheduler import Scheduler

    app = load_app(app_spec, dsn) if app_spec else plain_app(dsn)
    require_schema(app)  # the loop itself outlives a missing schema, retrying
    runner = Scheduler(app.database, app.registry, sync=app_spec is not None,
                       poll_interval=poll_interval)  # fmt: skip
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: runner.stop())
    typer.echo(f"pgqueue scheduler running ({runner.shards} shards); SIGTERM or Ctrl-C stops it")
    with _user_errors():
        runner.run()
    app.close()
