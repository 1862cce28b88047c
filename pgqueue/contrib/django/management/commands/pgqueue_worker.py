"""``manage.py pgqueue_worker``: run the project's Django tasks with pgqueue's worker.

Imports each installed app's ``tasks`` module (and the backend's ``MODULES``),
then runs ``App.run_worker``: SIGTERM drains gracefully, a second one aborts;
``--processes N`` forks N workers under one supervisor.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from pgqueue import ConfigurationError, DatabaseUnavailable
from pgqueue.contrib.django.management.commands._common import add_backend_argument, get_backend


class Command(BaseCommand):  # type: ignore[misc]
    help = "Run a pgqueue worker for the tasks of a PgQueueBackend."

    def add_arguments(self, parser: CommandParser) -> None:
        add_backend_argument(parser)
        parser.add_argument("--queues", help="Queues in priority order (a,b or a:3,b:1); "
                            "default: the backend's QUEUES, equally weighted.")  # fmt: skip
        parser.add_argument("--concurrency", type=int, default=10, help="Slots per process.")
        parser.add_argument("--processes", type=int, default=1, help="Worker processes.")
        parser.add_argument("--prefetch", type=int, help="Jobs claimed ahead beyond the free "
                            "slots (0: none; default: the concurrency).")  # fmt: skip
        parser.add_argument("--max-tasks-per-child", type=int, help="Recycle a process after N.")
        parser.add_argument("--burst", action="store_true", help="Exit once the queues are empty.")
        parser.add_argument("--metrics-port", type=int, help="Serve Prometheus metrics here.")
        parser.add_argument("--shutdown-grace", type=float, default=30.0,
                            help="Seconds running jobs get to finish after SIGTERM.")  # fmt: skip
        parser.add_argument("--log-level", default="info", help="debug, info, warning or error.")

    def handle(self, *args: Any, **options: Any) -> None:
        backend = get_backend(options)
        _configure_logging(options["log_level"])
        backend.discover()
        queues: Any = options["queues"]
        extra: dict[str, Any] = {}
        if queues is None:
            names = sorted(backend.queues) or None
            if names is not None and len(names) > 1:
                extra["weights"] = (1.0,) * len(names)  # no order given: equal shares
            queues = names
        # Forked worker processes must not share the sockets of Django's connections.
        connections.close_all()
        try:
            code = backend.app.run_worker(
                queues,
                concurrency=options["concurrency"],
                processes=options["processes"],
                prefetch=options["prefetch"],
                until_empty=options["burst"],
                max_tasks_per_child=options["max_tasks_per_child"],
                metrics_port=options["metrics_port"],
                shutdown_grace=options["shutdown_grace"],
                **extra,
            )
        except (ConfigurationError, DatabaseUnavailable) as exc:
            raise CommandError(str(exc)) from None
        if code:
            sys.exit(code)


def _configure_logging(level: str) -> None:
    value = logging.getLevelName(level.upper())
    if not isinstance(value, int):
        raise CommandError(f"--log-level: {level!r} is not debug, info, warning or error")
    logger = logging.getLogger("pgqueue")
    logger.setLevel(value)
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        logger.addHandler(handler)
