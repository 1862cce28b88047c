"""Django's tasks framework: ``django.tasks`` (Django 6) or its official backport.

Django 6 needs Python 3.12; on older Pythons (or Django 4.2 to 5.2) the
``django-tasks`` package provides the same API as ``django_tasks``, which
``pgqueue[django]`` installs there. The two differ only in one exception name
(``InvalidTask``, ``InvalidTaskError`` in the backport) and in where
``normalize_json`` lives.
"""

from __future__ import annotations

try:
    from django.tasks import Task, TaskContext, TaskResult, TaskResultStatus, task_backends
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import TaskError
    from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued, task_finished, task_started
    from django.utils.json import normalize_json
except ImportError:
    try:
        from django_tasks import (
            TaskContext,
            TaskResult,
            TaskResultStatus,
            task_backends,
        )
        from django_tasks.backends.base import BaseTaskBackend
        from django_tasks.base import Task, TaskError
        from django_tasks.exceptions import (
            InvalidTaskError as InvalidTask,
        )
        from django_tasks.exceptions import TaskResultDoesNotExist
        from django_tasks.signals import task_enqueued, task_finished, task_started
        from django_tasks.utils import normalize_json
    except ImportError:
        raise ImportError(
            "pgqueue.contrib.django needs Django 6 (django.tasks) or, on older Django, "
            "the django-tasks backport: pip install 'pgqueue[django]'"
        ) from None

__all__ = [
    "BaseTaskBackend",
    "InvalidTask",
    "Task",
    "TaskContext",
    "TaskError",
    "TaskResult",
    "TaskResultDoesNotExist",
    "TaskResultStatus",
    "normalize_json",
    "task_backends",
    "task_enqueued",
    "task_finished",
    "task_started",
]
