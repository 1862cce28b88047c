-- name: prune_lock
-- One pruner pass at a time across all processes (session lock, released after the pass).
SELECT pg_try_advisory_lock(%(key)s)

-- name: prune_unlock
-- Release the pruner's lock.
SELECT pg_advisory_unlock(%(key)s)

-- name: prune_settings
-- Per-queue retention overrides (seconds); queues without a row use the defaults.
SELECT name, retention, dead_retention
FROM pgqueue.queues
WHERE retention IS NOT NULL OR dead_retention IS NOT NULL

-- name: prune
-- Delete one small batch of finished jobs past their retention, with the step logs
-- and events of the workflows among them. The index condition uses the shortest
-- retention in force (%(cutoff)s); the exact per-queue retention is checked row by row.
WITH victims AS (
    SELECT j.id
    FROM pgqueue.jobs AS j
    LEFT JOIN pgqueue.queues AS q ON q.name = j.queue
    WHERE j.status = ANY(%(statuses)s::text[])
      AND j.finished_at < %(cutoff)s
      AND j.finished_at < %(now)s - make_interval(secs => coalesce(
              CASE WHEN j.status = 'dead' THEN q.dead_retention ELSE q.retention END,
              %(default)s))
    LIMIT %(limit)s
    FOR UPDATE OF j SKIP LOCKED
), deleted AS (
    DELETE FROM pgqueue.jobs AS j
    USING victims
    WHERE j.id = victims.id AND j.status = ANY(%(statuses)s::text[])
    RETURNING j.id
)
{delete_workflow_logs}

-- name: delete_workflow_logs
-- Fragment: delete the step logs and events of the `deleted` jobs (prune, purge), in
-- the statement that deletes them (no foreign key: its per-row cascade would cost every
-- deleted job two queries), and return the deleted ids.
, steps AS (
    DELETE FROM pgqueue.workflow_steps AS s USING deleted WHERE s.workflow_id = deleted.id
), events AS (
    DELETE FROM pgqueue.workflow_events AS e USING deleted WHERE e.workflow_id = deleted.id
)
SELECT id FROM deleted
