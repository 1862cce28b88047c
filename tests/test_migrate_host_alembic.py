"""pgqueue's revisions run from a host application's own Alembic project.

A real host project in a temporary directory: its ``alembic.ini``, an
``env.py`` as Alembic's template writes it plus the README's two lines, and a
revision of its own. ``alembic upgrade head`` and ``alembic downgrade base``
run as the host would run them, in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from pgqueue._migrate import migrations_path

ENV_PY = '''
import os

from alembic import context
from sqlalchemy import create_engine, pool

from pgqueue.migrate import upgrade


def run_migrations_online() -> None:
    engine = create_engine(os.environ["HOST_DB_URL"], poolclass=pool.NullPool)
    with engine.connect() as connection:
        if os.environ["PGQUEUE_WHEN"] == "before":
            upgrade(connection)     # pgqueue's revisions, pgqueue's version table
        context.configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        if os.environ["PGQUEUE_WHEN"] == "after":
            upgrade(connection)


run_migrations_online()
'''

HOST_REVISION = '''
from alembic import op

revision = "host0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE TABLE host_items (id int PRIMARY KEY)")


def downgrade() -> None:
    op.execute("DROP TABLE host_items")
'''


def host_project(root: Path) -> Path:
    (root / "migrations" / "versions").mkdir(parents=True)
    (root / "alembic.ini").write_text("[alembic]\nscript_location = %(here)s/migrations\n")
    (root / "migrations" / "env.py").write_text(ENV_PY)
    (root / "migrations" / "versions" / "host0001_items.py").write_text(HOST_REVISION)
    return root


def alembic(root: Path, dsn: str, when: str, *argv: str) -> subprocess.CompletedProcess[str]:
    url = dsn.replace("postgresql://", "postgresql+psycopg://", 1)
    env = {**os.environ, "HOST_DB_URL": url, "PGQUEUE_WHEN": when}
    return subprocess.run(
        [sys.executable, "-m", "alembic", *argv],
        cwd=root, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def one(dsn: str, statement: str) -> object:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(statement).fetchone()
    return None if row is None else row[0]


@pytest.mark.parametrize("when", ["before", "after"])
def test_host_alembic_upgrade_and_downgrade(fresh_db_dsn: str, tmp_path: Path, when: str) -> None:
    root = host_project(tmp_path)

    up = alembic(root, fresh_db_dsn, when, "upgrade", "head")

    assert up.returncode == 0, up.stderr
    assert one(fresh_db_dsn, "SELECT to_regclass('public.host_items') IS NOT NULL") is True
    assert one(fresh_db_dsn, "SELECT to_regclass('pgqueue.jobs') IS NOT NULL") is True
    assert one(fresh_db_dsn, "SELECT version_num FROM alembic_version") == "host0001"
    pgqueue_head = one(fresh_db_dsn, "SELECT version_num FROM pgqueue_alembic_version")
    assert pgqueue_head == pgqueue_revisions_head()

    down = alembic(root, fresh_db_dsn, when, "downgrade", "base")

    assert down.returncode == 0, down.stderr
    assert one(fresh_db_dsn, "SELECT to_regclass('public.host_items') IS NULL") is True
    assert one(fresh_db_dsn, "SELECT count(*) FROM alembic_version") == 0
    # The host's history is its own: pgqueue's schema and version stay at head.
    assert one(fresh_db_dsn, "SELECT version_num FROM pgqueue_alembic_version") == pgqueue_head
    assert one(fresh_db_dsn, "SELECT to_regclass('pgqueue.jobs') IS NOT NULL") is True


def pgqueue_revisions_head() -> str | None:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_path()))
    return ScriptDirectory.from_config(cfg).get_current_head()
