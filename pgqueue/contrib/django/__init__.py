"""pgqueue for Django: a backend for Django's tasks framework, and management commands.

``pip install 'pgqueue[django]'``, then in ``settings.py``::

    INSTALLED_APPS = [..., "pgqueue.contrib.django"]      # manage.py pgqueue_worker / _migrate
    TASKS = {"default": {"BACKEND": "pgqueue.contrib.django.PgQueueBackend"}}

``@django.tasks.task`` functions then enqueue into ``pgqueue.jobs`` (on Django's
own connection, so inside ``transaction.atomic()`` the job commits or rolls
back with the block), ``get_result()`` reads the job back, and ``manage.py
pgqueue_worker`` runs them. See the README's Django section.
"""

from pgqueue.contrib.django._backend import PgQueueBackend, close_all, django_dsn

__all__ = ["PgQueueBackend", "close_all", "django_dsn"]
