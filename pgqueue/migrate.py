"""Run pgqueue's migrations from a host application's own Alembic ``env.py``.

pgqueue's revisions keep their own version table (``pgqueue_alembic_version``),
so they never touch the host's ``alembic_version``::

    # in your env.py, inside run_migrations_online(), after your migrations:
    from pgqueue.migrate import upgrade
    upgrade(connection)          # a SQLAlchemy Connection (psycopg driver)
"""

from pgqueue._migrate import (
    VERSION_TABLE,
    current_revision,
    downgrade,
    migrate_dsn,
    migrations_path,
    upgrade,
)

__all__ = [
    "VERSION_TABLE",
    "current_revision",
    "downgrade",
    "migrate_dsn",
    "migrations_path",
    "upgrade",
]
