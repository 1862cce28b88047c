"""Least privilege: the holder of a unique key, looked up for producers that cannot read jobs.

``pgqueue.unique_holders(keys, scopes, tasks, queues)`` returns, for each
(key, scope, task, queue), the job holding it (the unfinished one, else the
newest), in the column order of ``pgqueue.Job`` plus its 1-based position. An
enqueue whose unique key is held returns that job; a producer role
(``pgqueue migrate --grant``) may insert jobs but not read their payload, so
the lookup runs as the function's owner (``SECURITY DEFINER``, with a fixed
``search_path``) and returns ``args``, ``kwargs``, ``meta``, ``result``,
``errors``, ``last_error`` and ``progress`` only when the session's own role
may read that column: otherwise NULL. ``session_user`` is the right role to
ask: a session can always ``RESET ROLE`` back to it, so the function never
shows more than the session could read by itself.

Also ``jobs_run_at_check``: ``run_at`` between the years 1 and 9999 (with a day's
margin for any session time zone). A row inserted by plain SQL with ``run_at =
'-infinity'`` (or ``'infinity'``, or the year 10000) could be claimed but not
decoded by Python: every worker that claimed it died with the claim committed,
and the jobs claimed with it were stranded until rescued. The constraint is added
``NOT VALID``: rows already there are not checked (nor is the table scanned);
new and updated rows are.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE FUNCTION pgqueue.unique_holders(keys text[], scopes text[], tasks text[], queues text[])
RETURNS TABLE (id bigint, queue text, task text, args jsonb, kwargs jsonb, priority smallint,
               status text, run_at timestamptz, attempts integer, max_attempts integer,
               leased_until timestamptz, worker_id text, unique_key text,
               created_at timestamptz, started_at timestamptz, finished_at timestamptz,
               last_error text, errors jsonb, result jsonb, progress jsonb,
               cancel_requested boolean, meta jsonb, flow_id bigint,
               parent_ids bigint[], pos bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- plpgsql, not sql: its plan is cached for the session (a sql function with
    -- SECURITY DEFINER is planned again at every call).
    RETURN QUERY
    WITH may AS (
        SELECT has_column_privilege(session_user, 'pgqueue.jobs', 'args', 'SELECT') AS args,
               has_column_privilege(session_user, 'pgqueue.jobs', 'kwargs', 'SELECT') AS kwargs,
               has_column_privilege(session_user, 'pgqueue.jobs', 'last_error', 'SELECT')
                   AS last_error,
               has_column_privilege(session_user, 'pgqueue.jobs', 'errors', 'SELECT') AS errors,
               has_column_privilege(session_user, 'pgqueue.jobs', 'result', 'SELECT') AS result,
               has_column_privilege(session_user, 'pgqueue.jobs', 'progress', 'SELECT')
                   AS progress,
               has_column_privilege(session_user, 'pgqueue.jobs', 'meta', 'SELECT') AS meta
    )
    SELECT DISTINCT ON (k.pos)
           j.id, j.queue, j.task,
           CASE WHEN may.args THEN j.args END, CASE WHEN may.kwargs THEN j.kwargs END,
           j.priority, j.status, j.run_at, j.attempts, j.max_attempts, j.leased_until,
           j.worker_id, j.unique_key, j.created_at, j.started_at, j.finished_at,
           CASE WHEN may.last_error THEN j.last_error END,
           CASE WHEN may.errors THEN j.errors END, CASE WHEN may.result THEN j.result END,
           CASE WHEN may.progress THEN j.progress END, j.cancel_requested,
           CASE WHEN may.meta THEN j.meta END,
           j.flow_id, j.parent_ids,
           k.pos
    FROM unnest(keys, scopes, tasks, queues)
         WITH ORDINALITY AS k(k_key, k_scope, k_task, k_queue, pos)
    CROSS JOIN may
    JOIN pgqueue.jobs AS j
      ON j.unique_key = k.k_key AND j.unique_scope = k.k_scope
     AND (k.k_scope <> 'task' OR j.task = k.k_task)
     AND (k.k_scope <> 'queue' OR j.queue = k.k_queue)
    ORDER BY k.pos, (j.status IN ('queued', 'blocked', 'running', 'failed')) DESC, j.id DESC;
END
$$;

ALTER TABLE pgqueue.jobs ADD CONSTRAINT jobs_run_at_check
    CHECK (run_at > '0001-01-02 00:00:00+00' AND run_at < '9999-12-30 00:00:00+00') NOT VALID;
"""

DOWNGRADE = """
ALTER TABLE pgqueue.jobs DROP CONSTRAINT jobs_run_at_check;
DROP FUNCTION pgqueue.unique_holders(text[], text[], text[], text[]);
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
