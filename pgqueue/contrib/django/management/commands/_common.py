"""What the pgqueue management commands share: finding the backend."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from pgqueue.contrib.django._backend import PgQueueBackend
from pgqueue.contrib.django._compat import task_backends


def add_backend_argument(parser: CommandParser) -> None:
    parser.add_argument(
        "--backend", default="default", help="The TASKS alias of a PgQueueBackend (default)."
    )


def get_backend(options: dict[str, Any]) -> PgQueueBackend:
    alias = options["backend"]
    try:
        backend = task_backends[alias]
    except Exception as exc:  # Django's InvalidTaskBackend, or the backend's own error
        raise CommandError(f"TASKS[{alias!r}]: {exc}") from None
    if not isinstance(backend, PgQueueBackend):
        raise CommandError(
            f"TASKS[{alias!r}] is {type(backend).__name__}, not "
            "pgqueue.contrib.django.PgQueueBackend"
        )
    return backend
