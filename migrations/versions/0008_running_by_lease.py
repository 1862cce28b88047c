"""Running jobs are found through the rescuer's index; ``jobs_running_idx`` goes.

``jobs_running_idx (id) WHERE status = 'running'`` made the planner join the
worker's batches (``complete``, ``heartbeat``, ``release``) with a scan of that
whole index: the statistics show a handful of running jobs, so the scan looks
nearly free, while under a pinned MVCC horizon the index holds an entry for
every job claimed since the pin. A completion of 128 jobs read 10,989 buffers
after 51,200 jobs claimed under a pin, against 1,899 by primary key
(``benchmarks/results/ANALYSIS.md``, "Running jobs by lease"). Without the index
the only plan left probes the primary key once per job of the batch, and a
claim writes one index entry less.

What counted running jobs through it (the queue counts, the metrics, the
dashboard, ``max_running``) now reads ``jobs_lease_idx``: its predicate is
``status = 'running' AND leased_until IS NOT NULL``, and a running job always
holds a lease. ``jobs_running_holds_lease`` makes that a rule of the schema, as
the rescuer already relied on it (a running job without a lease would never
be rescued); the upgrade gives any such job a lapsed lease first.

``ADD CONSTRAINT`` reads the whole table to validate it, inside the
migration's transaction, which also holds ``DROP INDEX``'s exclusive lock:
writes to ``pgqueue.jobs`` wait meanwhile (seconds for millions of retained
jobs). Run it when the queue is quiet.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Only hand-written SQL leaves a running job without a lease; a lapsed one
    # now lets the rescuer's next full pass give it back.
    op.execute("UPDATE pgqueue.jobs SET leased_until = now()"
               " WHERE status = 'running' AND leased_until IS NULL")  # fmt: skip
    op.execute("ALTER TABLE pgqueue.jobs ADD CONSTRAINT jobs_running_holds_lease"
               " CHECK (status <> 'running' OR leased_until IS NOT NULL)")  # fmt: skip
    op.execute("DROP INDEX IF EXISTS pgqueue.jobs_running_idx")


def downgrade() -> None:
    op.execute("CREATE INDEX IF NOT EXISTS jobs_running_idx ON pgqueue.jobs (id)"
               " WHERE status = 'running'")  # fmt: skip
    op.execute("ALTER TABLE pgqueue.jobs DROP CONSTRAINT IF EXISTS jobs_running_holds_lease")
