"""Unique keys scoped to their task (or queue); exact max_depth under concurrent producers.

- ``jobs.unique_scope`` ('task' by default, 'queue' or 'global') says where a
  job's ``unique_key`` must be unique among unfinished jobs: among the jobs of
  its task, of its queue, or of every job with that scope. The unique index
  is rebuilt on (key, scope, the scope's task or queue). Existing jobs get
  'task': keys that were unique across everything are unique per task too.
- ``pgqueue.lock_depth(queues)``: the enqueue statements call it for queues
  with a ``max_depth``; it takes a transaction-level advisory lock per such
  queue, then counts the waiting jobs in a new snapshot, so two producers
  cannot both see room for the last slot.

The index is rebuilt inside the migration's transaction (writes to
``pgqueue.jobs`` wait for it): on a very large table, run it at a quiet time.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# 7250005: pgqueue._keys.QUEUE_DEPTH_LOCK (two-int form: class, hashtext(queue)).
UPGRADE = """
ALTER TABLE pgqueue.jobs
    ADD COLUMN unique_scope text NOT NULL DEFAULT 'task'
    CONSTRAINT jobs_unique_scope_check CHECK (unique_scope IN ('task', 'queue', 'global'));

DROP INDEX pgqueue.jobs_unique_key_idx;

-- At most one unfinished job per unique key within its scope.
CREATE UNIQUE INDEX jobs_unique_key_idx ON pgqueue.jobs (
    unique_key, unique_scope,
    (CASE unique_scope WHEN 'task' THEN task WHEN 'queue' THEN queue ELSE '' END))
    WHERE unique_key IS NOT NULL AND status IN ('queued', 'running', 'failed');

CREATE FUNCTION pgqueue.lock_depth(queues text[])
RETURNS TABLE (queue_name text, depth_limit integer, waiting bigint)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    q text;
    lim integer;
BEGIN
    -- In name order, so that producers locking the same queues cannot deadlock.
    FOR q, lim IN SELECT l.name, l.max_depth FROM pgqueue.queues AS l
                  WHERE l.name = ANY(queues) AND l.max_depth IS NOT NULL
                  ORDER BY l.name LOOP
        PERFORM pg_advisory_xact_lock(7250005, hashtext(q));
        -- A new statement, so a new snapshot (READ COMMITTED): it sees the jobs
        -- committed by every producer that held the lock before this one.
        SELECT count(*) INTO waiting
        FROM (SELECT 1 FROM pgqueue.jobs AS j
              WHERE j.queue = q AND j.status IN ('queued', 'failed')
              LIMIT lim + 1) AS w;
        queue_name := q;
        depth_limit := lim;
        RETURN NEXT;
    END LOOP;
END
$$;
"""

DOWNGRADE = """
DROP FUNCTION pgqueue.lock_depth(text[]);

DROP INDEX pgqueue.jobs_unique_key_idx;

-- Fails if two unfinished jobs of different tasks or queues now share a key:
-- finish or cancel one of them first.
CREATE UNIQUE INDEX jobs_unique_key_idx ON pgqueue.jobs (unique_key)
    WHERE unique_key IS NOT NULL AND status IN ('queued', 'running', 'failed');

ALTER TABLE pgqueue.jobs DROP COLUMN unique_scope;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
