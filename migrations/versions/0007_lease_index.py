"""The rescuer's index: running jobs by lease expiry.

``jobs_lease_idx (leased_until) WHERE status = 'running' AND leased_until IS NOT
NULL``. The rescuer scans
it from the cutoff of its previous pass (``rescue`` in ``pgqueue/sql/worker.sql``),
so a pass reads the leases that lapsed since then, not every entry a claimed
job ever left in ``jobs_running_idx``: while the MVCC horizon is pinned those
dead entries cannot be removed, and the old scan walked all of them (about 200
buffers per 1,000 jobs claimed since the pin, per pass).

The second half of the predicate keeps the index out of every plan but the
rescuer's (whose ``leased_until < now()`` implies it): the completion and the
heartbeat say only ``status = 'running'``, and with ``WHERE status = 'running'``
alone the planner read all of this index (nearly empty in the statistics, every
dead entry under a pin) for them, id probe or not.

The price: the heartbeat's ``leased_until`` is now indexed, so its renewals are
no longer HOT updates (each adds an entry to every index of the row). A
heartbeat renews each held job once per lease/3, so this is a few renewals per
long-running job, against a claim and a completion per job (both already
non-HOT); ``benchmarks/results/ANALYSIS.md`` has the measurement.

Built with a plain ``CREATE INDEX`` inside the migration's transaction: it
reads the whole table and blocks writes to it meanwhile (seconds for millions
of retained jobs). Run it when the queue is quiet, or create the index by hand
``CONCURRENTLY`` first (the ``IF NOT EXISTS`` keeps the migration a no-op then).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX IF NOT EXISTS jobs_lease_idx ON pgqueue.jobs (leased_until)"
               " WHERE status = 'running' AND leased_until IS NOT NULL")  # fmt: skip


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS pgqueue.jobs_lease_idx")
