"""Alembic environment for pgqueue's own revisions.

pgqueue keeps its own version table (``pgqueue_alembic_version``), so its
revisions never mix with a host application's ``alembic_version``. A host
application can run these revisions from its own ``env.py`` with
``pgqueue.migrate.upgrade(connection)``; see the README.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from pgqueue._migrate import VERSION_TABLE

config = context.config


def run_with(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        version_table=VERSION_TABLE,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run_with(connection)
else:
    url = config.get_main_option("sqlalchemy.url")
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        run_with(conn)
        conn.commit()
