"""Command: worker."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from pgqueue._errors import ConfigurationError
from pgqueue.cli._base import DsnOption, cli, fail, load_app
from pgqueue.worker import WorkerConfig, parse_queues, run_worker
from pgqueue.worker._config import (
    DEFAULT_CONCURRENCY,
    DEFAULT_METRICS_HOST,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_SHUTDOWN_GRACE,
    RESCUE_INTERVAL,
)
from pgqueue.worker._log import JsonFormatter

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")


def configure_logging(level: str, log_format: str = "text") -> None:
    """``time level logger event=... k=v`` lines on stderr; with ``json``, the same
    fields as one JSON object per line."""
    if level.lower() not in LOG_LEVELS:
        raise fail(f"--log-level must be one of: {', '.join(LOG_LEVELS)}")
    if log_format.lower() not in LOG_FORMATS:
        raise fail(f"--log-format must be one of: {', '.join(LOG_FORMATS)}")
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    if log_format.lower() == "json":
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())
    logging.getLogger("pgqueue").setLevel(getattr(logging, level.upper()))


@cli.command()
def worker(
    app: Annotated[str, typer.Argument(help="The App to run, as 'package.module:app'.")],
    queues: Annotated[
        str | None,
        typer.Option(
            help="Queues in priority order, e.g. 'critical,default' (strict); "
            "'critical:3,default:1' shares by weight. Default: every queue the app's tasks use."
        ),
    ] = None,
    concurrency: Annotated[
        int, typer.Option(help="Jobs run at once per process.")
    ] = DEFAULT_CONCURRENCY,
    processes: Annotated[int, typer.Option(help="Worker processes under one supervisor.")] = 1,
    prefetch: Annotated[
        int | None,
        typer.Option(
            help="Jobs claimed ahead beyond the free slots, started as slots free up "
            "(0: none). Default: two per slot (twice the concurrency)."
        ),
    ] = None,
    max_tasks_per_child: Annotated[
        int | None, typer.Option(help="Replace a worker process after this many jobs.")
    ] = None,
    fair: Annotated[
        bool, typer.Option("--fair", help="Share between queues by weight, not strict order.")
    ] = False,
    burst: Annotated[
        bool, typer.Option("--burst", help="Exit once the queues have no unfinished job.")
    ] = False,
    shutdown_grace: Annotated[
        float, typer.Option(help="Seconds running jobs get to finish on SIGTERM.")
    ] = DEFAULT_SHUTDOWN_GRACE,
    poll_interval: Annotated[
        float, typer.Option(help="Seconds between polls when no notification comes.")
    ] = DEFAULT_POLL_INTERVAL,
    listen: Annotated[
        bool,
        typer.Option(
            "--listen/--poll-only",
            help="LISTEN for new jobs, or only poll (PgBouncer transaction pooling).",
        ),
    ] = True,
    rescue_interval: Annotated[
        float, typer.Option(help="Seconds between rescuer passes (expired leases).")
    ] = RESCUE_INTERVAL,
    no_rescue: Annotated[
        bool, typer.Option("--no-rescue", help="Do not run the rescuer in these processes.")
    ] = False,
    no_scheduler: Annotated[
        bool, typer.Option("--no-scheduler", help="Do not run the cron scheduler here.")
    ] = False,
    no_pruner: Annotated[
        bool, typer.Option("--no-pruner", help="Do not prune finished jobs here.")
    ] = False,
    retention: Annotated[
        float, typer.Option(help="Seconds to keep succeeded and cancelled jobs (pruner).")
    ] = 86_400.0,
    dead_retention: Annotated[
        float, typer.Option(help="Seconds to keep dead jobs (pruner).")
    ] = 30 * 86_400.0,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve Prometheus metrics on this port (one for all processes)."),
    ] = None,
    metrics_host: Annotated[
        str,
        typer.Option(help="Address the metrics endpoint listens on; 0.0.0.0 for every one."),
    ] = DEFAULT_METRICS_HOST,
    start_method: Annotated[
        str | None, typer.Option(help="How to start processes: fork (default) or spawn.")
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    log_format: Annotated[
        str, typer.Option(help="text (time level logger k=v) or json (one object per line).")
    ] = "text",
    dsn: DsnOption = None,
) -> None:
    """Run jobs: claim, run, record; SIGTERM drains gracefully, a second SIGTERM aborts.

    Also runs the rescuer, and (one per supervisor, not with --burst) the cron
    scheduler and the pruner. Exit code 0 after a clean drain, 1 when running
    jobs had to be released.
    """
    configure_logging(log_level, log_format)
    the_app = load_app(app, dsn)
    names, weights = parse_queues(queues)
    if fair and weights is None and names is not None:
        weights = (1.0,) * len(names)
    try:
        config = WorkerConfig(
            queues=names,
            weights=weights,
            concurrency=concurrency,
            prefetch=prefetch,
            processes=processes,
            max_tasks_per_child=max_tasks_per_child,
            until_empty=burst,
            shutdown_grace=shutdown_grace,
            poll_interval=poll_interval,
            listen=listen,
            rescue=not no_rescue,
            rescue_interval=rescue_interval,
            scheduler=not no_scheduler,
            pruner=not no_pruner,
            retention=retention,
            dead_retention=dead_retention,
            metrics_port=metrics_port,
            metrics_host=metrics_host,
            start_method=start_method,
            app_spec=app,
        )
    except ConfigurationError as exc:
        raise fail(str(exc)) from None
    code = run_worker(the_app.database, the_app.registry, config)
    raise typer.Exit(code)
