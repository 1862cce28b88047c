"""Dead letters by queue: an index for browsing and replaying them per queue.

``jobs_dead_queue_idx (queue, finished_at) WHERE status = 'dead'`` serves the
dashboard's dead-letter page and ``replay_dead(queue=...)``: with millions of
finished rows, a filter on a queue with few or no dead jobs no longer reads
every dead job (measured in benchmarks/results/*-web.md).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX jobs_dead_queue_idx ON pgqueue.jobs (queue, finished_at)"
        " WHERE status = 'dead'"
    )


def downgrade() -> None:
    op.execute("DROP INDEX pgqueue.jobs_dead_queue_idx")
