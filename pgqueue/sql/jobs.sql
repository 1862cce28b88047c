-- name: enqueue
-- Insert jobs given as one JSON array of rows, in one statement; wake each ready queue once.
-- A queue with a max_depth that this batch would overflow inserts nothing and is
-- returned as a row with a NULL id and status 'full' (back-pressure), unless
-- %(force)s (cron fires: a schedule is bounded by its own cadence).
WITH input AS (
    SELECT e->>0 AS queue, e->>1 AS task, e->2 AS args, e->3 AS kwargs,
           (e->>4)::smallint AS priority, (e->>5)::timestamptz AS run_at,
           (e->>6)::float8 AS delay, (e->>7)::int AS max_attempts,
           e->>8 AS unique_key, e->9 AS meta, ord
    FROM jsonb_array_elements(%(rows)s::jsonb) WITH ORDINALITY AS r(e, ord)
), full_queues AS (
    SELECT q.name
    FROM pgqueue.queues AS q
    WHERE q.max_depth IS NOT NULL
      AND NOT %(force)s::bool
      AND (SELECT count(*) FROM input WHERE input.queue = q.name) > 0
      AND (SELECT count(*) FROM input WHERE input.queue = q.name)
          + (SELECT count(*) FROM (SELECT 1 FROM pgqueue.jobs AS j
                                   WHERE j.queue = q.name AND j.status IN ('queued', 'failed')
                                   LIMIT q.max_depth + 1) AS waiting)
          > q.max_depth
), ins AS (
    INSERT INTO pgqueue.jobs (queue, task, args, kwargs, priority, run_at,
                              max_attempts, unique_key, meta)
    SELECT queue, task, args, kwargs, priority,
           coalesce(run_at, now() + make_interval(secs => delay)),
           max_attempts, unique_key, meta
    FROM input
    WHERE NOT EXISTS (SELECT 1 FROM full_queues)
    ORDER BY ord
    ON CONFLICT (unique_key)
        WHERE unique_key IS NOT NULL AND status IN ('queued', 'running', 'failed')
        DO NOTHING
    RETURNING id, queue, unique_key, status, run_at, created_at
), wake AS (
    SELECT pg_notify('pgqueue_jobs', q.queue)
    FROM (SELECT DISTINCT queue FROM ins WHERE run_at <= now()) AS q
)
SELECT id, unique_key, status, run_at, created_at, (SELECT count(*) FROM wake) AS woken
FROM ins
UNION ALL
SELECT NULL, name, 'full', NULL, NULL, 0 FROM full_queues
ORDER BY 1

-- name: enqueue_one
-- The single-job twin of `enqueue` (same semantics), without the JSON array
-- unpacking: a single enqueue is one short prepared statement.
WITH full_queues AS (
    SELECT q.name
    FROM pgqueue.queues AS q
    WHERE q.name = %(queue)s
      AND q.max_depth IS NOT NULL
      AND 1 + (SELECT count(*) FROM (SELECT 1 FROM pgqueue.jobs AS j
                                     WHERE j.queue = q.name AND j.status IN ('queued', 'failed')
                                     LIMIT q.max_depth + 1) AS waiting)
          > q.max_depth
), ins AS (
    INSERT INTO pgqueue.jobs (queue, task, args, kwargs, priority, run_at,
                              max_attempts, unique_key, meta)
    SELECT %(queue)s, %(task)s, %(args)s::jsonb, %(kwargs)s::jsonb, %(priority)s,
           coalesce(%(run_at)s::timestamptz, now() + make_interval(secs => %(delay)s)),
           %(max_attempts)s, %(unique_key)s, %(meta)s::jsonb
    WHERE NOT EXISTS (SELECT 1 FROM full_queues)
    ON CONFLICT (unique_key)
        WHERE unique_key IS NOT NULL AND status IN ('queued', 'running', 'failed')
        DO NOTHING
    RETURNING id, queue, unique_key, status, run_at, created_at
), wake AS (
    SELECT pg_notify('pgqueue_jobs', queue) FROM ins WHERE run_at <= now()
)
SELECT id, unique_key, status, run_at, created_at, (SELECT count(*) FROM wake) AS woken
FROM ins
UNION ALL
SELECT NULL, name, 'full', NULL, NULL, 0 FROM full_queues

-- name: jobs_by_unique_key
-- The job holding each unique key: the unfinished one, else the newest.
SELECT DISTINCT ON (unique_key) {job_columns}
FROM pgqueue.jobs
WHERE unique_key = ANY(%(keys)b::text[])
ORDER BY unique_key, (status IN ('queued', 'running', 'failed')) DESC, id DESC

-- name: get_job
-- One job by id.
SELECT {job_columns} FROM pgqueue.jobs WHERE id = %(id)s

-- name: list_jobs
-- Jobs matching optional filters, newest first.
SELECT {job_columns}
FROM pgqueue.jobs
WHERE (%(queue)s::text IS NULL OR queue = %(queue)s)
  AND (%(task)s::text IS NULL OR task = %(task)s)
  AND (%(status)s::text IS NULL OR status = %(status)s)
  AND (%(older_than)s::float8 IS NULL OR created_at <= now() - make_interval(secs => %(older_than)s))
  AND (%(before_id)s::bigint IS NULL OR id < %(before_id)s)
ORDER BY id DESC
LIMIT %(limit)s

-- name: job_states
-- Status of a set of jobs (for waiters).
SELECT id, status FROM pgqueue.jobs WHERE id = ANY(%(ids)s::bigint[])

-- name: job_columns
-- Fragment: the columns a pgqueue.Job is decoded from, in order (see _core.JOB_FIELDS).
id, queue, task, args, kwargs, priority, status, run_at, attempts, max_attempts,
leased_until, worker_id, unique_key, created_at, started_at, finished_at,
last_error, errors, result, progress, cancel_requested, meta
