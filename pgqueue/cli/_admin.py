"""Commands: migrate, enqueue, jobs, retry, cancel, dead, stats."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

import typer

from pgqueue._core import JobSpec
from pgqueue._migrate import (
    ROLE_PREFIX,
    current_revision,
    grant_dsn,
    grant_sql,
    migrate_dsn,
    role_names,
)
from pgqueue.cli._base import (
    DsnOption,
    JsonOption,
    cli,
    echo,
    emit_json,
    fail,
    parse_json,
    plain_app,
    safe,
)

jobs_cli = typer.Typer(help="List and inspect jobs.", no_args_is_help=True)
dead_cli = typer.Typer(help="The dead-letter set: list and replay.", no_args_is_help=True)
cli.add_typer(jobs_cli, name="jobs")
cli.add_typer(dead_cli, name="dead")

JOB_SUMMARY = ("id", "queue", "task", "status", "attempts", "run_at", "last_error")


def table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    """A rich table on a terminal; plain aligned columns for pipes and scripts."""
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        rich_table = Table(*columns, header_style="bold")
        for row in cells:
            rich_table.add_row(*(Text(cell) for cell in row))  # Text: no [markup] in data
        Console().print(rich_table)
        return
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    typer.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in cells:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:.1f}"
    text = safe(str(value).splitlines()[0]) if str(value) else ""
    return text if len(text) <= 60 else text[:57] + "..."


def _job_dict(job: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(job).items() if not k.startswith("_")}


@cli.command()
def migrate(
    dsn: DsnOption = None,
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
    downgrade: Annotated[bool, typer.Option("--downgrade", help="Go down to REVISION.")] = False,
    grant: Annotated[
        bool,
        typer.Option(
            "--grant",
            help="Then create the group roles PREFIX_producer, _worker, _reader and _admin"
            " and grant their privileges (idempotent; re-run after every upgrade).",
        ),
    ] = False,
    role_prefix: Annotated[
        str, typer.Option(help="Name prefix of the roles --grant creates.")
    ] = ROLE_PREFIX,
    print_sql: Annotated[
        bool,
        typer.Option("--print-sql", help="With --grant: print its SQL, run nothing (for a DBA)."),
    ] = False,
) -> None:
    """Create or upgrade pgqueue's schema (idempotent)."""
    if grant and downgrade:
        raise fail("--grant goes with an upgrade, not with --downgrade")
    if print_sql and not grant:
        raise fail("--print-sql prints the SQL of --grant: pass both")
    roles = role_names(role_prefix) if grant else {}  # a bad prefix fails before any I/O
    if print_sql:
        typer.echo(grant_sql(role_prefix) + ";")
        return
    app = plain_app(dsn)
    migrate_dsn(app.dsn, revision, down=downgrade)
    typer.echo(f"pgqueue schema at revision {current_revision(app.dsn) or 'base'}")
    if grant:
        grant_dsn(app.dsn, role_prefix)
        names = ", ".join(roles.values())
        typer.echo(f"granted roles {names} (NOLOGIN groups: GRANT one to a login)")


@cli.command()
def enqueue(
    task: Annotated[str, typer.Argument(help="Task name, e.g. myapp.tasks.send_email.")],
    args: Annotated[str, typer.Option("--args", help="Positional arguments, JSON array.")] = "[]",
    kwargs: Annotated[str, typer.Option("--kwargs", help="Keyword arguments, JSON object.")] = "{}",
    queue: Annotated[str, typer.Option(help="Queue name.")] = "default",
    priority: Annotated[int, typer.Option(help="Higher runs first.")] = 0,
    delay: Annotated[float, typer.Option(help="Seconds before it may run.")] = 0.0,
    max_attempts: Annotated[int, typer.Option(help="Attempts before dead.")] = 3,
    unique_key: Annotated[str | None, typer.Option(help="At most one unfinished job.")] = None,
    unique_scope: Annotated[
        str, typer.Option(help="Where the key is unique: task, queue or global.")
    ] = "task",
    dsn: DsnOption = None,
    as_json: JsonOption = False,
) -> None:
    """Enqueue a job by task name (no task code needed)."""
    spec = JobSpec(
        task=task,
        args=tuple(parse_json(args, "--args", list)),
        kwargs=parse_json(kwargs, "--kwargs", dict),
        queue=queue,
        priority=priority,
        delay=delay,
        max_attempts=max_attempts,
        unique_key=unique_key,
        unique_scope=unique_scope,
    )
    job = plain_app(dsn).enqueue_many([spec])[0]
    if as_json:
        emit_json(_job_dict(job))
    else:
        echo(f"enqueued job {job.id} ({job.task}) on queue {job.queue}: {job.status}")


@jobs_cli.command("list")
def jobs_list(
    queue: Annotated[str | None, typer.Option(help="Only this queue.")] = None,
    task: Annotated[str | None, typer.Option(help="Only this task.")] = None,
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
    older_than: Annotated[
        float | None, typer.Option(help="Only jobs created at least this many seconds ago.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 50,
    dsn: DsnOption = None,
    as_json: JsonOption = False,
) -> None:
    """List jobs, newest first."""
    jobs = plain_app(dsn).list_jobs(
        queue=queue, task=task, status=status, older_than=older_than, limit=limit
    )
    if as_json:
        emit_json([_job_dict(j) for j in jobs])
    else:
        table([_job_dict(j) for j in jobs], JOB_SUMMARY)


@jobs_cli.command("show")
def jobs_show(
    job_id: Annotated[int, typer.Argument(help="Job id.")],
    graph_limit: Annotated[
        int, typer.Option(help="Parents and children listed (all are counted).")
    ] = 10,
    dsn: DsnOption = None,
    as_json: JsonOption = False,
) -> None:
    """Everything about one job, every error with its traceback, and its graph
    (parents and children, with their statuses) when it is part of a flow."""
    from pgqueue.cli._graph_text import job_graph_lines

    if graph_limit < 1:
        raise fail("--graph-limit must be at least 1")
    app = plain_app(dsn)
    job = _job_dict(app.get_job(job_id))
    graph = app.job_graph(job_id, limit=graph_limit)
    lines = job_graph_lines(graph)
    if as_json:
        if lines:
            job["graph"] = {"flow_id": graph.job.flow_id, "parent_counts": graph.parent_counts,
                            "parents": [asdict(p) for p in graph.parents],
                            "child_counts": graph.child_counts,
                            "children": [asdict(c) for c in graph.children]}  # fmt: skip
        emit_json(job)
        return
    for key, value in job.items():
        if key == "errors":
            continue
        shown = json.dumps(value) if isinstance(value, (list, dict)) else value
        echo(f"{key:>16}: {'-' if shown is None else shown}")
    for entry in job["errors"]:
        echo(f"\n--- attempt {entry.get('attempt')} at {entry.get('at')}: {entry.get('error')}")
        if entry.get("traceback"):
            echo(entry["traceback"].rstrip())
    if lines:
        echo("")
        for line in lines:
            echo(line)


@cli.command()
def retry(
    job_ids: Annotated[list[int], typer.Argument(help="Job ids.")],
    dsn: DsnOption = None,
) -> None:
    """Requeue failed, dead or cancelled jobs now."""
    done = plain_app(dsn).retry_jobs(job_ids)
    held = done.skipped
    skipped = sorted(set(job_ids) - set(done) - set(held))
    typer.echo(
        f"requeued {len(done)} job(s)"
        + (f"; {_held(held)}" if held else "")
        + (f"; not retryable: {skipped}" if skipped else "")
    )
    if (skipped or held) and not done:
        raise typer.Exit(1)


def _held(ids: list[int]) -> str:
    return f"skipped {len(ids)}, unique key held by an unfinished job: {ids}"


@cli.command()
def cancel(
    job_ids: Annotated[list[int], typer.Argument(help="Job ids.")],
    dsn: DsnOption = None,
) -> None:
    """Cancel waiting jobs; ask workers to stop running ones."""
    out = plain_app(dsn).cancel_jobs(job_ids)
    untouched = sorted(set(job_ids) - set(out["cancelled"]) - set(out["requested"]))
    typer.echo(
        f"cancelled {len(out['cancelled'])}, cancellation requested for {len(out['requested'])}"
        + (f"; already finished or unknown: {untouched}" if untouched else "")
    )
    if untouched and not (out["cancelled"] or out["requested"]):
        raise typer.Exit(1)


@dead_cli.command("list")
def dead_list(
    queue: Annotated[str | None, typer.Option(help="Only this queue.")] = None,
    task: Annotated[str | None, typer.Option(help="Only this task.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 50,
    dsn: DsnOption = None,
    as_json: JsonOption = False,
) -> None:
    """Dead jobs, newest first, with their last error."""
    jobs = plain_app(dsn).list_jobs(queue=queue, task=task, status="dead", limit=limit)
    if as_json:
        emit_json([_job_dict(j) for j in jobs])
    else:
        table([_job_dict(j) for j in jobs], ("id", "queue", "task", "attempts", "last_error"))


@dead_cli.command("replay")
def dead_replay(
    queue: Annotated[str | None, typer.Option(help="Only this queue.")] = None,
    task: Annotated[str | None, typer.Option(help="Only this task.")] = None,
    since: Annotated[
        datetime | None, typer.Option(help="Only jobs that died at or after this time.")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Jobs per transaction.")] = 1000,
    dsn: DsnOption = None,
) -> None:
    """Requeue dead jobs matching the filters, in batches."""
    if since is not None and since.tzinfo is None:
        since = since.astimezone()
    n = plain_app(dsn).replay_dead(queue=queue, task=task, since=since, batch_size=batch_size)
    typer.echo(f"replayed {n} dead job(s)" + (f"; {_held(n.skipped)}" if n.skipped else ""))


STATS_COLUMNS = (
    "queue", "queued", "scheduled", "blocked", "running", "retrying", "dead",
    "done_last_minute", "oldest_waiting_seconds",
)  # fmt: skip
