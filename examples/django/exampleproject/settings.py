"""Settings of the example shop: Django's tasks framework on pgqueue.

The database comes from ``DATABASE_URL`` (default: the local PostgreSQL's
``pgqueue_django_example`` database); pgqueue lives in the same database, so
an order and the job that confirms it commit together.
"""

from __future__ import annotations

import os

from psycopg.conninfo import conninfo_to_dict

_db = conninfo_to_dict(
    os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/pgqueue_django_example")
)

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "exampleproject.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "pgqueue.contrib.django",  # manage.py pgqueue_worker, pgqueue_migrate
    "shop",
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _db.get("dbname", "pgqueue_django_example"),
        "USER": _db.get("user", ""),
        "PASSWORD": _db.get("password", ""),
        "HOST": _db.get("host", ""),
        "PORT": _db.get("port", ""),
    }
}

TASKS = {
    "default": {
        "BACKEND": "pgqueue.contrib.django.PgQueueBackend",
        "QUEUES": ["default", "emails"],
        "OPTIONS": {"MAX_ATTEMPTS": 1},
    },
    # Tasks that call flaky services: three attempts, with pgqueue's backoff. Its
    # queues are its own: a worker runs the tasks of the backend it serves.
    "retrying": {
        "BACKEND": "pgqueue.contrib.django.PgQueueBackend",
        "QUEUES": ["flaky"],
        "OPTIONS": {"MAX_ATTEMPTS": 3},
    },
}
