"""Durable workflows: the step log and the events sent to workflows.

``pgqueue.workflow_steps`` holds one row per checkpointed step of a workflow
(the workflow itself is a job: ``workflow_id`` is its ``pgqueue.jobs.id``),
keyed by ``(workflow_id, seq)``; seq 0 marks the workflow (written at its first
run), 1, 2, ... are its steps in call order. ``pgqueue.workflow_events`` holds
the events sent with ``send_event``, consumed in order by ``wait_for_event``.
Both reference the job with ``ON DELETE CASCADE``: the pruner (or a purge)
that deletes a workflow's job deletes its step log and events with it, never
before.

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
            workflow_id bigint NOT NULL REFERENCES pgqueue.jobs (id) ON DELETE CASCADE,
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
            workflow_id bigint NOT NULL REFERENCES pgqueue.jobs (id) ON DELETE CASCADE,
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
    # The foreign keys' ON DELETE checks, run by the pruner for every job it deletes.
    op.execute("CREATE INDEX workflow_events_workflow_idx ON pgqueue.workflow_events (workflow_id)")


def downgrade() -> None:
    op.execute("DROP TABLE pgqueue.workflow_events")
    op.execute("DROP TABLE pgqueue.workflow_steps")
