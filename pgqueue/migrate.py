"""Run pgqueue's migrations from a host application's own Alembic ``env.py``.

pgqueue's revisions keep their own version table (``pgqueue_alembic_version``),
so they never touch the host's ``alembic_version``::

    # in your env.py, inside run_migrations_online(), before or after your migrations:
    from pgqueue.migrate import upgrade
    upgrade(connection)          # a SQLAlchemy Connection (psycopg driver)

It leaves the host's Alembic environment as it was and commits the
transaction it began itself. ``migrate_dsn`` raises ``DatabaseUnavailable``
or ``MigrationError``, each with a one-line message.

``grant_dsn(dsn, prefix="pgqueue")`` is ``pgqueue migrate --grant``'s second
half: the group roles and their privileges (``grant_sql(prefix)`` is its SQL,
``role_names(prefix)`` the roles' names).
"""

from pgqueue._migrate import (
    ROLE_PREFIX,
    VERSION_TABLE,
    current_revision,
    downgrade,
    grant_dsn,
    grant_sql,
    migrate_dsn,
    migrations_path,
    role_names,
    upgrade,
)

__all__ = [
    "ROLE_PREFIX",
    "VERSION_TABLE",
    "current_revision",
    "downgrade",
    "grant_dsn",
    "grant_sql",
    "migrate_dsn",
    "migrations_path",
    "role_names",
    "upgrade",
]
