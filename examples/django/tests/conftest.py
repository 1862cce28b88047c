"""pytest-django against real PostgreSQL: Django's test database, with pgqueue's schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection

from pgqueue.contrib.django import close_all


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: Any, django_db_blocker: Any) -> Iterator[None]:
    """pytest-django's test database, plus ``manage.py pgqueue_migrate``."""
    with django_db_blocker.unblock():
        call_command("pgqueue_migrate", verbosity=0)
    yield
    close_all()  # pgqueue's pools, before pytest-django drops the database


@pytest.fixture
def jobs(transactional_db: Any) -> Iterator[Any]:
    """Committed rows for real (a worker sees them); pgqueue's jobs emptied after."""
    yield lambda: count_jobs()
    with connection.cursor() as cur:
        cur.execute("TRUNCATE pgqueue.jobs")


def count_jobs() -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM pgqueue.jobs")
        return int(cur.fetchone()[0])
