"""Django's tasks framework on pgqueue: transactional enqueue, the worker, results."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.test import Client
from shop.models import Order
from shop.tasks import (
    add,
    call_flaky_provider,
    next_delivery,
    refuse,
    reserve,
    send_confirmation,
    which_attempt,
)

try:
    from django.tasks import TaskResultStatus, default_task_backend
    from django.tasks.exceptions import TaskResultDoesNotExist, TaskResultMismatch
    from django.tasks.signals import task_enqueued, task_finished, task_started
except ImportError:
    from django_tasks import TaskResultStatus, default_task_backend
    from django_tasks.exceptions import TaskResultDoesNotExist, TaskResultMismatch
    from django_tasks.signals import task_enqueued, task_finished, task_started


class Boom(Exception):
    pass


def run_worker() -> None:
    """``manage.py pgqueue_worker --burst``: run every ready job, then return."""
    call_command("pgqueue_worker", "--burst", "--concurrency", "2", "--log-level", "warning")


def test_rollback_of_the_atomic_block_leaves_no_job(jobs: Any) -> None:
    with pytest.raises(Boom), transaction.atomic():
        order = Order.objects.create(email="a@example.com")
        send_confirmation.enqueue(order.pk)
        assert jobs() == 1  # visible inside the transaction ...
        raise Boom
    assert jobs() == 0  # ... and gone with it
    assert Order.objects.count() == 0


def test_commit_then_the_worker_runs_it_and_get_result_follows(jobs: Any) -> None:
    with transaction.atomic():
        order = Order.objects.create(email="b@example.com")
        result = send_confirmation.enqueue(order.pk)
    assert jobs() == 1
    assert result.status == TaskResultStatus.READY
    assert result.task.queue_name == "emails" and result.args == [order.pk]
    assert send_confirmation.get_result(result.id).status == TaskResultStatus.READY

    run_worker()

    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == {"order": order.pk, "to": "b@example.com"}
    assert result.attempts == 1 and result.finished_at is not None
    order.refresh_from_db()
    assert order.status == "confirmed"  # the task's ORM write, from the worker


def test_a_task_that_raises_is_failed_with_its_error(jobs: Any) -> None:
    result = refuse.enqueue("out of stock")
    run_worker()
    stored = default_task_backend.get_result(result.id)
    assert stored.status == TaskResultStatus.FAILED
    (error,) = stored.errors
    assert error.exception_class is ValueError
    assert "out of stock" in error.traceback
    with pytest.raises(ValueError, match="failed"):
        stored.return_value  # noqa: B018


def test_context_async_tasks_priority_and_defer(jobs: Any) -> None:
    import datetime

    ctx = which_attempt.enqueue()
    total = add.using(priority=10).enqueue(2, 3)
    run_worker()
    assert which_attempt.get_result(ctx.id).return_value == {"id": ctx.id, "attempt": 1}
    finished = add.get_result(total.id)
    assert finished.return_value == 5 and finished.task.priority == 10
    # run_after: a scheduled job (a --burst worker would wait for it).
    when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    deferred = add.using(run_after=when).enqueue(1, 1)
    assert add.get_result(deferred.id).status == TaskResultStatus.READY
    with connection.cursor() as cur:
        cur.execute("SELECT run_at FROM pgqueue.jobs WHERE id = %s", [int(deferred.id)])
        assert cur.fetchone()[0] == when


def test_unknown_result_ids(jobs: Any) -> None:
    for bad in ("999999", "not-a-number"):
        with pytest.raises(TaskResultDoesNotExist):
            default_task_backend.get_result(bad)
    other = refuse.enqueue("no")  # exists, but is another task's
    with pytest.raises(TaskResultMismatch):
        add.get_result(other.id)


def test_the_view_places_an_order_and_its_job_together(jobs: Any) -> None:
    client = Client()
    response = client.post("/orders/", json.dumps({"email": "c@example.com"}),
                           content_type="application/json")  # fmt: skip
    assert response.status_code == 201
    placed = response.json()
    assert jobs() == 1
    assert client.get(f"/orders/{placed['order']}/").json()["job_status"] == "READY"
    run_worker()
    body = client.get(f"/orders/{placed['order']}/").json()
    assert body == {"order": placed["order"], "status": "confirmed", "job_status": "SUCCESSFUL",
                    "sent": {"order": placed["order"], "to": "c@example.com"}}  # fmt: skip


def test_pgqueue_migrate_is_idempotent(jobs: Any, capsys: Any) -> None:
    call_command("pgqueue_migrate")
    assert "pgqueue schema at revision" in capsys.readouterr().out


def test_aenqueue_from_async_code(jobs: Any) -> None:
    from asgiref.sync import async_to_sync

    order = Order.objects.create(email="d@example.com")
    result = async_to_sync(send_confirmation.aenqueue)(order.pk)
    assert jobs() == 1
    assert async_to_sync(send_confirmation.aget_result)(result.id).status == "READY"


def test_manage_py_pgqueue_worker_with_two_processes(jobs: Any) -> None:
    """The command as deployed: a subprocess, forked workers, Django set up in each."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from pgqueue.contrib.django import django_dsn

    orders = [Order.objects.create(email=f"p{i}@example.com") for i in range(4)]
    results = [send_confirmation.enqueue(o.pk) for o in orders]
    dsn = django_dsn(connection.settings_dict)  # pytest-django's test database
    project = Path(__file__).resolve().parent.parent
    proc = subprocess.run(
        [sys.executable, "manage.py", "pgqueue_worker", "--processes", "2", "--burst"],
        cwd=project, env={**os.environ, "DATABASE_URL": dsn},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "event=supervisor_start processes=2" in proc.stderr
    for result in results:
        result.refresh()
        assert result.status == TaskResultStatus.SUCCESSFUL
    assert set(Order.objects.values_list("status", flat=True)) == {"confirmed"}


def test_bad_options_are_one_clear_error() -> None:
    from django.core.exceptions import ImproperlyConfigured

    from pgqueue.contrib.django import PgQueueBackend

    with pytest.raises(ImproperlyConfigured, match=r"unknown option.*DNS"):
        PgQueueBackend("bad", {"OPTIONS": {"DNS": "postgresql://"}})
    with pytest.raises(ImproperlyConfigured, match="MAX_ATTEMPTS"):
        PgQueueBackend("bad", {"OPTIONS": {"MAX_ATTEMPTS": 0}})


def test_django_task_signals_are_sent(jobs: Any) -> None:
    seen: list[tuple[str, str, str]] = []

    def note(signal_name: str) -> Any:
        def receiver(sender: Any, task_result: Any, **kwargs: Any) -> None:
            seen.append((signal_name, task_result.task.name, str(task_result.status)))

        return receiver

    receivers = {s: note(n) for s, n in ((task_enqueued, "enqueued"), (task_started, "started"),
                                         (task_finished, "finished"))}  # fmt: skip
    for signal, receiver in receivers.items():
        signal.connect(receiver, weak=False)
    try:
        ok = add.enqueue(1, 2)
        refuse.enqueue("no")
        run_worker()
    finally:
        for signal, receiver in receivers.items():
            signal.disconnect(receiver)
    assert add.get_result(ok.id).return_value == 3
    assert sorted(seen) == [
        ("enqueued", "add", "READY"), ("enqueued", "refuse", "READY"),
        ("finished", "add", "SUCCESSFUL"), ("finished", "refuse", "FAILED"),
        ("started", "add", "RUNNING"), ("started", "refuse", "RUNNING"),
    ]  # fmt: skip


def test_retries_on_a_backend_with_more_attempts(jobs: Any) -> None:
    result = call_flaky_provider.enqueue()
    call_command("pgqueue_worker", "--backend", "retrying", "--burst", "--log-level", "error")
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 2
    assert result.attempts == 2
    (error,) = result.errors  # the first attempt's
    assert error.exception_class is ConnectionError


def test_return_values_are_json_and_one_that_is_not_fails(jobs: Any) -> None:
    finished: dict[str, Any] = {}

    def receiver(sender: Any, task_result: Any, **kwargs: Any) -> None:
        finished[task_result.task.name] = (str(task_result.status), task_result._return_value)

    task_finished.connect(receiver, weak=False)
    try:
        pair = reserve.enqueue("sku-1", 2)
        late = next_delivery.enqueue()
        run_worker()
    finally:
        task_finished.disconnect(receiver)
    assert reserve.get_result(pair.id).return_value == ["sku-1", 2]
    failed = next_delivery.get_result(late.id)
    assert failed.status == TaskResultStatus.FAILED
    (error,) = failed.errors
    assert error.exception_class is TypeError and "datetime" in error.traceback
    # The signal says what get_result() says: a list, and FAILED (not SUCCESSFUL).
    assert finished == {"reserve": ("SUCCESSFUL", ["sku-1", 2]), "next_delivery": ("FAILED", None)}
