"""The Django app that brings the ``pgqueue_worker`` and ``pgqueue_migrate`` commands."""

from __future__ import annotations

from django.apps import AppConfig


class PgQueueConfig(AppConfig):  # type: ignore[misc]
    name = "pgqueue.contrib.django"
    label = "pgqueue"
    verbose_name = "pgqueue"
