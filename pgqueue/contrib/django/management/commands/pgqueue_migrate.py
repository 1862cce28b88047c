"""``manage.py pgqueue_migrate``: create or upgrade pgqueue's schema (idempotent)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from pgqueue.contrib.django.management.commands._common import add_backend_argument, get_backend
from pgqueue.migrate import current_revision, migrate_dsn


class Command(BaseCommand):  # type: ignore[misc]
    help = "Create or upgrade the pgqueue schema in the backend's database (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        add_backend_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        dsn = get_backend(options).connection_dsn()
        try:
            migrate_dsn(dsn)
            revision = current_revision(dsn)
        except Exception as exc:  # driver errors: one line, no traceback
            cause = getattr(exc, "orig", None) or exc  # the driver error under SQLAlchemy's
            text = str(cause).strip()
            first = text.splitlines()[0] if text else type(cause).__name__
            raise CommandError(f"pgqueue migrate failed: {first}") from None
        if options["verbosity"] > 0:
            self.stdout.write(f"pgqueue schema at revision {revision}")
