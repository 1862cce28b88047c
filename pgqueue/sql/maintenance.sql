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
-- Delete one small batch of finished jobs past their retention. The index
-- condition uses the shortest retention in force (%(cutoff)s); the exact
-- per-queue retention is checked row by row. A parent whose dependents are
-- unfinished is kept (they read its result when they run); a deleted parent's
-- edges go with it.
WITH victims AS (
    SELECT j.id
    FROM pgqueue.jobs AS j
    LEFT JOIN pgqueue.queues AS q ON q.name = j.queue
    WHERE j.status = ANY(%(statuses)s::text[])
      AND j.finished_at < %(cutoff)s
      AND j.finished_at < %(now)s - make_interval(secs => coalesce(
              CASE WHEN j.status = 'dead' THEN q.dead_retention ELSE q.retention END,
              %(default)s))
      AND NOT {awaited_parent}
    LIMIT %(limit)s
    FOR UPDATE OF j SKIP LOCKED
), gone AS (
    DELETE FROM pgqueue.jobs AS j
    USING victims
    WHERE j.id = victims.id AND j.status = ANY(%(statuses)s::text[])
    RETURNING j.id, j.has_dependents
), edges AS (
    DELETE FROM pgqueue.job_dependencies AS d
    USING gone
    WHERE gone.has_dependents AND d.parent_id = gone.id
)
SELECT id FROM gone

-- name: awaited_parent
-- Fragment: job `j` has a dependent that has not finished (prune, purge keep it).
(j.has_dependents AND EXISTS (
    SELECT 1
    FROM pgqueue.job_dependencies AS d
    JOIN pgqueue.jobs AS c ON c.id = d.child_id
    WHERE d.parent_id = j.id AND c.status NOT IN ('succeeded', 'dead', 'cancelled')))
