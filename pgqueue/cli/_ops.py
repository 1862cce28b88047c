"""Commands: queue controls (pause, resume, limits), purge, stats --watch."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Annotated

import typer

from pgqueue.cli._admin import STATS_COLUMNS, table
from pgqueue.cli._base import DsnOption, JsonOption, cli, echo, emit_json, fail, plain_app

queue_cli = typer.Typer(help="Queue controls: pause, resume, limits.", no_args_is_help=True)
cli.add_typer(queue_cli, name="queue")

QUEUE_COLUMNS = ("name", "paused", "max_running", "rate_limit", "rate_period", "max_depth",
                 "retention", "dead_retention")  # fmt: skip


@queue_cli.command("list")
def queue_list(dsn: DsnOption = None, as_json: JsonOption = False) -> None:
    """Queues with jobs or settings, and their controls."""
    rows = [asdict(q) for q in plain_app(dsn).list_queues()]
    if as_json:
        emit_json(rows)
    else:
        table(rows, QUEUE_COLUMNS)


@queue_cli.command("pause")
def queue_pause(name: str, dsn: DsnOption = None) -> None:
    """Stop all workers, on every host, from claiming this queue's jobs."""
    plain_app(dsn).pause_queue(name)
    echo(f"queue {name} paused")


@queue_cli.command("resume")
def queue_resume(name: str, dsn: DsnOption = None) -> None:
    """Let workers claim this queue's jobs again."""
    plain_app(dsn).resume_queue(name)
    echo(f"queue {name} resumed")


@queue_cli.command("set")
def queue_set(
    name: str,
    max_running: Annotated[
        int | None, typer.Option(help="At most N running at once, across all workers.")
    ] = None,
    rate_limit: Annotated[
        int | None, typer.Option(help="At most N starts per --rate-period, across all workers.")
    ] = None,
    rate_period: Annotated[float | None, typer.Option(help="Seconds (default 1).")] = None,
    max_depth: Annotated[
        int | None, typer.Option(help="Enqueue fails with QueueFull beyond N waiting jobs.")
    ] = None,
    retention: Annotated[
        float | None, typer.Option(help="Seconds to keep succeeded/cancelled jobs.")
    ] = None,
    dead_retention: Annotated[float | None, typer.Option(help="Seconds to keep dead jobs.")] = None,
    clear: Annotated[
        list[str] | None, typer.Option(help="Unset a setting (repeatable), e.g. max_depth.")
    ] = None,
    dsn: DsnOption = None,
) -> None:
    """Set a queue's limits and retention."""
    q = plain_app(dsn).set_queue(
        name, max_running=max_running, rate_limit=rate_limit, rate_period=rate_period,
        max_depth=max_depth, retention=retention, dead_retention=dead_retention,
        clear=tuple(clear or ()),
    )  # fmt: skip
    table([asdict(q)], QUEUE_COLUMNS)


@cli.command()
def purge(
    status: Annotated[list[str] | None, typer.Option(help="Only this status (repeatable).")] = None,
    queue: Annotated[str | None, typer.Option(help="Only this queue.")] = None,
    task: Annotated[str | None, typer.Option(help="Only this task.")] = None,
    older_than: Annotated[
        float | None, typer.Option(help="Only jobs created at least this many seconds ago.")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    dsn: DsnOption = None,
) -> None:
    """Delete jobs matching an explicit filter (never running ones)."""
    if not (status or queue or task or older_than is not None):
        raise fail("purge needs a filter: --status, --queue, --task or --older-than")
    if not yes and not typer.confirm("Delete the matching jobs?", default=False):
        raise typer.Exit(1)
    n = plain_app(dsn).purge(statuses=status, queue=queue, task=task, older_than=older_than)
    typer.echo(f"purged {n} job(s)")


@cli.command()
def stats(
    dsn: DsnOption = None,
    as_json: JsonOption = False,
    watch: Annotated[float | None, typer.Option(help="Refresh every N seconds.")] = None,
    iterations: Annotated[int | None, typer.Option(hidden=True)] = None,
) -> None:
    """Per queue: waiting, scheduled, blocked, running, retrying, dead, last-minute throughput."""
    app = plain_app(dsn)
    if watch is not None and watch <= 0:
        raise fail("--watch takes a positive number of seconds")
    shown = 0
    while True:
        rows = app.queue_stats()
        if as_json:
            emit_json(rows)
        else:
            if watch is not None:
                typer.echo(f"\x1b[2J\x1b[H{time.strftime('%H:%M:%S')}  pgqueue stats")
            if rows:
                table(rows, STATS_COLUMNS)
            else:
                typer.echo("no jobs")
        shown += 1
        if watch is None or (iterations is not None and shown >= iterations):
            return
        time.sleep(watch)
