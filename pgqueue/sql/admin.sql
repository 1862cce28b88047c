-- name: retry_jobs
-- Put failed/dead/cancelled jobs back in the queue now, with a fresh attempt budget if
-- exhausted; a job whose unique key is held again (in its scope) is skipped and reported.
WITH picked AS (
    SELECT id, queue, task, status, unique_key, unique_scope
    FROM pgqueue.jobs
    WHERE id = ANY(%(ids)s::bigint[]) AND status IN ('failed', 'dead', 'cancelled')
    ORDER BY id
    FOR UPDATE
), checked AS (
{requeue_checked}
), retried AS (
    UPDATE pgqueue.jobs AS j
    SET status = 'queued',
        run_at = now(),
        max_attempts = greatest(j.max_attempts, j.attempts + 1),
        finished_at = NULL,
        leased_until = NULL,
        lease_token = NULL,
        cancel_requested = false
    FROM checked
    WHERE j.id = checked.id AND NOT checked.held
    RETURNING j.id, j.queue
), wake AS (
    SELECT pg_notify('pgqueue_jobs', q.queue) FROM (SELECT DISTINCT queue FROM retried) AS q
)
SELECT id, true, (SELECT count(*) FROM wake) FROM retried
UNION ALL
SELECT id, false, 0 FROM checked WHERE held

-- name: cancel_jobs
-- Cancel waiting jobs at once; flag running ones so their worker stops them.
WITH waiting AS (
    UPDATE pgqueue.jobs
    SET status = 'cancelled', finished_at = now(), leased_until = NULL, lease_token = NULL
    WHERE id = ANY(%(ids)s::bigint[]) AND status IN ('queued', 'blocked', 'failed')
    RETURNING id, status
), running AS (
    UPDATE pgqueue.jobs
    SET cancel_requested = true
    WHERE id = ANY(%(ids)s::bigint[]) AND status = 'running'
    RETURNING id, status
), wake AS (
    SELECT pg_notify('pgqueue_done', string_agg(id::text, ',')) FROM waiting HAVING count(*) > 0
), wake_running AS (  -- their workers cancel them now, not at their next heartbeat
    SELECT pg_notify('pgqueue_cancel', string_agg(id::text, ','))
    FROM (SELECT id, (row_number() OVER ()) / 300 AS chunk FROM running) AS r  -- < 8000 bytes
    GROUP BY chunk
)
SELECT id, status, (SELECT count(*) FROM wake) FROM waiting
UNION ALL
SELECT id, status, (SELECT count(*) FROM wake_running) FROM running

-- name: replay_dead
-- Requeue a batch of dead jobs matching optional filters, after id %(after)s (the
-- dead-letter replay); a job whose unique key is held again is skipped and reported.
WITH picked AS (
    SELECT id, queue, task, status, unique_key, unique_scope
    FROM pgqueue.jobs
    WHERE status = 'dead'
      AND id > %(after)s
      AND (%(queue)s::text IS NULL OR queue = %(queue)s)
      AND (%(task)s::text IS NULL OR task = %(task)s)
      AND (%(since)s::timestamptz IS NULL OR finished_at >= %(since)s)
    ORDER BY id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), checked AS (
{requeue_checked}
), replayed AS (
    UPDATE pgqueue.jobs AS j
    SET status = 'queued',
        run_at = now(),
        max_attempts = greatest(j.max_attempts, j.attempts + 1),
        finished_at = NULL
    FROM checked
    WHERE j.id = checked.id AND NOT checked.held
    RETURNING j.id, j.queue
), wake AS (
    SELECT pg_notify('pgqueue_jobs', q.queue) FROM (SELECT DISTINCT queue FROM replayed) AS q
)
SELECT id, true, (SELECT count(*) FROM wake) FROM replayed
UNION ALL
SELECT id, false, 0 FROM checked WHERE held

-- name: requeue_checked
-- Fragment: the `picked` jobs, each with whether requeueing it would break its unique
-- key: another unfinished job holds the key in its scope, or an earlier one of this
-- batch takes it (a `failed` job, which holds its key already, goes first).
SELECT c.id,
       c.unique_key IS NOT NULL AND (
           EXISTS (SELECT 1 FROM pgqueue.jobs AS h
                   WHERE h.unique_key = c.unique_key AND h.unique_scope = c.unique_scope
                     AND (c.unique_scope <> 'task' OR h.task = c.task)
                     AND (c.unique_scope <> 'queue' OR h.queue = c.queue)
                     AND h.status IN ('queued', 'blocked', 'running', 'failed') AND h.id <> c.id)
           OR row_number() OVER (
                  PARTITION BY c.unique_key, c.unique_scope,
                               CASE c.unique_scope WHEN 'task' THEN c.task
                                                   WHEN 'queue' THEN c.queue ELSE '' END
                  ORDER BY c.status = 'failed' DESC, c.id) > 1
       ) AS held
FROM picked AS c

-- name: queue_stats
-- Per queue: counts by state and the age of the oldest ready job.
-- One arm per partial index (jobs_claim_idx, jobs_blocked_idx, jobs_lease_idx,
-- jobs_dead_queue_idx, jobs_finished_idx for the last minute): finished jobs the
-- retention keeps are not read.
SELECT queue,
       count(*) FILTER (WHERE status = 'queued' AND run_at <= now()) AS queued,
       count(*) FILTER (WHERE status = 'queued' AND run_at > now()) AS scheduled,
       count(*) FILTER (WHERE status = 'blocked') AS blocked,
       count(*) FILTER (WHERE status = 'running') AS running,
       count(*) FILTER (WHERE status = 'failed') AS retrying,
       count(*) FILTER (WHERE status = 'dead') AS dead,
       count(*) FILTER (WHERE status = 'succeeded') AS done_last_minute,
       -- float8: extract() gives numeric, which reaches Python as a Decimal.
       extract(epoch FROM max(now() - run_at)
               FILTER (WHERE status IN ('queued', 'failed') AND run_at <= now()))::float8
           AS oldest_waiting_seconds
FROM (
    SELECT queue, status, run_at FROM pgqueue.jobs WHERE status IN ('queued', 'failed')
    UNION ALL
    SELECT queue, status, run_at FROM pgqueue.jobs WHERE status = 'blocked'
    UNION ALL
    SELECT queue, status, run_at FROM pgqueue.jobs
    WHERE status = 'running' AND leased_until IS NOT NULL  -- jobs_lease_idx (every running job holds a lease)
    UNION ALL
    SELECT queue, status, run_at FROM pgqueue.jobs WHERE status = 'dead'
    UNION ALL
    SELECT queue, status, run_at FROM pgqueue.jobs
    WHERE status = 'succeeded' AND finished_at > now() - interval '1 minute'
) AS j
GROUP BY queue
ORDER BY queue

-- name: purge
-- Delete one batch of jobs matching explicit filters (never running ones, nor a
-- parent whose dependents are unfinished); a deleted parent's edges go with it,
-- and so do the step logs and events of deleted workflows.
WITH victims AS (
    SELECT j.id
    FROM pgqueue.jobs AS j
    WHERE j.status <> 'running'
      AND (%(statuses)s::text[] IS NULL OR j.status = ANY(%(statuses)s::text[]))
      AND (%(queue)s::text IS NULL OR j.queue = %(queue)s)
      AND (%(task)s::text IS NULL OR j.task = %(task)s)
      AND (%(older_than)s::float8 IS NULL
           OR j.created_at <= now() - make_interval(secs => %(older_than)s))
      AND NOT {awaited_parent}
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM pgqueue.jobs AS j
    USING victims
    WHERE j.id = victims.id AND j.status <> 'running'
    RETURNING j.id, j.has_dependents
), edges AS (
    DELETE FROM pgqueue.job_dependencies AS d
    USING gone
    WHERE gone.has_dependents AND d.parent_id = gone.id
)
{delete_workflow_logs}
