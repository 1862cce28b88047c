"""The shop's background tasks: plain Django tasks, run by pgqueue's worker."""

from __future__ import annotations

import datetime
from typing import Any

try:
    from django.tasks import task  # Django 6
except ImportError:  # Django 4.2 to 5.2: the official backport
    from django_tasks import task

import pgqueue
from shop.models import Order


@task(queue_name="emails")
def send_confirmation(order_id: int) -> dict[str, Any]:
    """Mark the order confirmed (the ORM, in the worker) and say what was sent."""
    order = Order.objects.get(pk=order_id)
    order.status = "confirmed"
    order.save(update_fields=["status"])
    return {"order": order.pk, "to": order.email}


@task(takes_context=True)
def which_attempt(context: Any) -> dict[str, Any]:
    """A task that reads its own result and attempt through Django's TaskContext."""
    return {"id": context.task_result.id, "attempt": context.attempt}


@task()
def refuse(reason: str) -> None:
    raise ValueError(reason)


@task()
def reserve(sku: str, quantity: int) -> tuple[str, int]:
    """A tuple comes back as a list: return values are JSON."""
    return sku, quantity


@task()
def next_delivery() -> datetime.datetime:
    """A datetime is not JSON: the attempt fails (return ``.isoformat()`` instead)."""
    return datetime.datetime.now(datetime.timezone.utc)


@task()
async def add(a: int, b: int) -> int:
    return a + b


@task(backend="retrying", queue_name="flaky")
def call_flaky_provider() -> int:
    """Fails its first attempt (a provider's timeout); pgqueue retries it."""
    job = pgqueue.current_job()
    assert job is not None
    if job.attempt == 1:
        raise ConnectionError("provider timed out")
    return job.attempt
