"""Commands: ``pgqueue workflows list|show ID`` (the step log)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated, Any

import typer

from pgqueue import StepRecord
from pgqueue.cli._admin import JOB_SUMMARY, _job_dict, table
from pgqueue.cli._base import DsnOption, JsonOption, cli, echo, emit_json, plain_app

workflows_cli = typer.Typer(help="Durable workflows and their step logs.", no_args_is_help=True)
cli.add_typer(workflows_cli, name="workflows")

STEP_COLUMNS = ("seq", "kind", "name", "attempts", "started_at", "finished_at", "outcome")


@workflows_cli.command("list")
def workflows_list(
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 50,
    dsn: DsnOption = None,
    as_json: JsonOption = False,
) -> None:
    """Workflows that have run at least once, newest first."""
    jobs = [_job_dict(j) for j in plain_app(dsn).list_workflows(status=status, limit=limit)]
    if as_json:
        emit_json(jobs)
    else:
        table(jobs, JOB_SUMMARY)


@workflows_cli.command("show")
def workflows_show(
    workflow_id: Annotated[int, typer.Argument(help="The workflow's job id.")],
    dsn: DsnOption = None,
    as_json: JsonOption = False,
) -> None:
    """One workflow: its job, then its step log in order."""
    app = plain_app(dsn)
    job = _job_dict(app.get_job(workflow_id))
    steps = app.workflow_steps(workflow_id)
    if as_json:
        emit_json({**job, "steps": [asdict(s) for s in steps]})
        return
    for key in ("id", "task", "queue", "status", "attempts", "run_at", "result", "last_error"):
        value = job[key]
        echo(f"{key:>10}: {'-' if value is None else value}")
    echo("")
    table([_step_row(s) for s in steps], STEP_COLUMNS)


def _step_row(step: StepRecord) -> dict[str, Any]:
    if step.error is not None:
        outcome = f"error: {step.error}"
    elif step.finished:
        outcome = "-" if step.kind == "workflow" else f"result: {_short(step.result)}"
    elif step.kind == "event":
        outcome = f"waiting for event {step.event!r} until {step.wake_at:%Y-%m-%d %H:%M:%S}"
    elif step.kind == "sleep":
        outcome = f"sleeping until {step.wake_at:%Y-%m-%d %H:%M:%S}"
    elif step.kind == "child":
        outcome = f"waiting for job {step.child_id}"
    else:
        outcome = "running"
    return {**asdict(step), "outcome": outcome}


def _short(value: Any, width: int = 60) -> str:
    text = json.dumps(value)
    return text if len(text) <= width else text[: width - 1] + "…"
