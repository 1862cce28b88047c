"""Durable workflows: the step log and the events sent to workflows.

``pgqueue.workflow_steps`` holds one row per checkpointed step of a workflow
(the workflow itself is a job: ``workflow_id`` is its ``pgqueue.jobs.id``),
keyed by ``(workflow_id, seq)``; seq 0 marks the workflow (written at its first
run), 1, 2, ... are its steps in call order. ``pgqueue.workflow_events`` holds
the events sent with ``send_event``, consumed in order by ``wait_for_event``.
No foreign key to ``pgqueue.jobs``: a cascade costs two queries per deleted job,
and every pruned job would pay them. The pruner and ``purge`` delete a workflow's
step log and events in the statement that deletes its job (``delete_workflow_logs``
in ``pgqueue/sql/maintenance.sql``), never before; a plain ``DELETE`` or
``TRUNCATE`` of ``pgqueue.jobs`` leaves them behind (ids are never reused, so they
are only garbage).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE pgqueue.workflow_steps (
            workflow_id bigint NOT NULL,
            seq integer NOT NULL,
            name text NOT NULL,
            kind text NOT NULL CHECK (kind IN ('workflow', 'step', 'sleep', 'event',
                                               'now', 'random', 'child')),
            args_digest text,
            result jsonb,
            error text,
            attempts integer NOT NULL DEFAULT 0,
            wake_at timestamptz,
            event text,
            child_id bigint,
            started_at timestamptz NOT NULL DEFAULT now(),
            finished_at timestamptz,
            PRIMARY KEY (workflow_id, seq)
        )
        """
    )
    # The workflows themselves (seq 0), for listing them by status.
    op.execute(
        "CREATE INDEX workflow_steps_workflows_idx ON pgqueue.workflow_steps (workflow_id)"
        " WHERE seq = 0"
    )
    op.execute(
        """
        CREATE TABLE pgqueue.workflow_events (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            workflow_id bigint NOT NULL,
            name text NOT NULL,
            payload jsonb NOT NULL,
            sent_at timestamptz NOT NULL DEFAULT now(),
            consumed_at timestamptz,
            consumed_by integer
        )
        """
    )
    op.execute(
        "CREATE INDEX workflow_events_pending_idx ON pgqueue.workflow_events"
        " (workflow_id, name, id) WHERE consumed_at IS NULL"
    )
    # The pruner deletes a workflow's events with its job (delete_workflow_logs).
    op.execute("CREATE INDEX workflow_events_workflow_idx ON pgqueue.workflow_events (workflow_id)")


def downgrade() -> None:
    op.execute("DROP TABLE pgqueue.workflow_events")
    op.execute("DROP TABLE pgqueue.workflow_steps")
