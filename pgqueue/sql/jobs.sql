-- name: enqueue
-- Insert jobs given as one JSON array of rows, in one statement; wake each ready queue once.
-- A queue with a max_depth that this batch would overflow inserts nothing and is
-- returned as a row with a NULL id and status 'full' (back-pressure), unless
-- %(force)s (cron fires: a schedule is bounded by its own cadence).
WITH input AS (
    SELECT e->>0 AS queue, e->>1 AS task, e->2 AS args, e->3 AS kwargs,
           (e->>4)::smallint AS priority, (e->>5)::timestamptz AS run_at,
           (e->>6)::float8 AS delay, (e->>7)::int AS max_attempts,
           e->>8 AS unique_key, e->9 AS meta, e->>10 AS unique_scope, ord
    FROM jsonb_array_elements(%(rows)s::jsonb) WITH ORDINALITY AS r(e, ord)
), full_queues AS (
    SELECT d.queue_name AS name
    FROM pgqueue.lock_depth(CASE WHEN %(force)s::bool THEN ARRAY[]::text[]
                                 ELSE ARRAY(SELECT DISTINCT queue FROM input) END) AS d
    WHERE (SELECT count(*) FROM input WHERE input.queue = d.queue_name)
          + d.waiting > d.depth_limit
), ins AS (
    INSERT INTO pgqueue.jobs (queue, task, args, kwargs, priority, run_at,
                              max_attempts, unique_key, meta, unique_scope)
    SELECT queue, task, args, kwargs, priority,
           coalesce(run_at, now() + make_interval(secs => delay)),
           max_attempts, unique_key, meta, coalesce(unique_scope, 'task')
    FROM input
    WHERE NOT EXISTS (SELECT 1 FROM full_queues)
    ORDER BY ord
    {unique_conflict}
    RETURNING id, queue, unique_key, status, run_at, created_at, unique_scope, task
), wake AS (
    SELECT pg_notify('pgqueue_jobs', q.queue)
    FROM (SELECT DISTINCT queue FROM ins WHERE run_at <= now()) AS q
)
SELECT id, unique_key, status, run_at, created_at, (SELECT count(*) FROM wake) AS woken,
       unique_scope, task, queue
FROM ins
UNION ALL
SELECT NULL, name, 'full', NULL, NULL, 0, NULL, NULL, NULL FROM full_queues
ORDER BY 1

-- name: enqueue_prelude
-- Before a bulk COPY, in its transaction: the transaction's now() (the rows'
-- created_at), ids for the rows, one NOTIFY per ready queue (sent at commit);
-- or, when the batch would overflow a queue's max_depth, the full queues and
-- nothing else (unless %(force)s).
WITH input AS (
    SELECT * FROM unnest(%(queues)s::text[], %(counts)s::int[], %(due)s::bool[],
                         %(earliest)s::timestamptz[]) AS i(queue, n, due, earliest)
), full_queues AS (
    SELECT d.queue_name AS name
    FROM pgqueue.lock_depth(CASE WHEN %(force)s::bool THEN ARRAY[]::text[]
                                 ELSE %(queues)s::text[] END) AS d
    JOIN input ON input.queue = d.queue_name
    WHERE input.n + d.waiting > d.depth_limit
), wake AS (
    SELECT pg_notify('pgqueue_jobs', queue)
    FROM input
    WHERE (due OR earliest <= now()) AND NOT EXISTS (SELECT 1 FROM full_queues)
)
SELECT now(),
       (SELECT array_agg(name ORDER BY name) FROM full_queues),
       CASE WHEN NOT EXISTS (SELECT 1 FROM full_queues) THEN
           ARRAY(SELECT nextval('pgqueue.jobs_id_seq') FROM generate_series(1, %(n)s))
       END,
       (SELECT count(*) FROM wake)

-- name: enqueue_copy
-- Bulk rows after `enqueue_prelude` (ids from it; run_at and created_at default to now()).
COPY pgqueue.jobs (id, queue, task, args, kwargs, priority, max_attempts, meta) FROM STDIN

-- name: enqueue_copy_timed
-- `enqueue_copy` for a batch where some job has its own run_at or delay.
COPY pgqueue.jobs (id, queue, task, args, kwargs, priority, run_at, max_attempts, meta)
FROM STDIN

-- name: enqueue_one
-- The single-job twin of `enqueue` for a queue without max_depth: one short
-- prepared statement. No row comes back when it inserted nothing (the unique
-- key is held, or the queue has a max_depth): the caller asks `queue_depth`
-- why, and takes `enqueue_one_limited` for a queue with a max_depth.
WITH ins AS (
{enqueue_one_select}
    WHERE NOT EXISTS (SELECT 1 FROM pgqueue.queues AS q
                      WHERE q.name = %(queue)s AND q.max_depth IS NOT NULL)
{enqueue_one_finish}

-- name: enqueue_one_limited
-- `enqueue_one` for a queue with a max_depth: nothing when the queue is full.
-- lock_depth serialises the producers of the queue until their commit, so the
-- depth holds under concurrent producers.
WITH ins AS (
{enqueue_one_select}
    WHERE NOT EXISTS (
        SELECT 1 FROM pgqueue.lock_depth(ARRAY[%(queue)s::text]) AS d
        WHERE 1 + d.waiting > d.depth_limit)
{enqueue_one_finish}

-- name: enqueue_one_select
-- Fragment: the single job's row (enqueue_one*).
    INSERT INTO pgqueue.jobs (queue, task, args, kwargs, priority, run_at,
                              max_attempts, unique_key, meta, unique_scope)
    SELECT %(queue)s, %(task)s, %(args)s::jsonb, %(kwargs)s::jsonb, %(priority)s,
           coalesce(%(run_at)s::timestamptz, now() + make_interval(secs => %(delay)s)),
           %(max_attempts)s, %(unique_key)s, %(meta)s::jsonb, %(unique_scope)s

-- name: enqueue_one_finish
-- Fragment: skip a held unique key, return the row, wake its queue (enqueue_one*).
    {unique_conflict}
    RETURNING id, queue, unique_key, status, run_at, created_at
)
SELECT id, unique_key, status, run_at, created_at,
       CASE WHEN run_at <= now() THEN pg_notify('pgqueue_jobs', queue) END
FROM ins

-- name: queue_depth
-- Whether the queue has a max_depth, and whether one more job would overflow it.
SELECT q.max_depth IS NOT NULL, coalesce(1 + {waiting_in_queue} > q.max_depth, false)
FROM pgqueue.queues AS q
WHERE q.name = %(queue)s

-- name: waiting_in_queue
-- Fragment: waiting jobs of queue `q`, counted up to just past its max_depth.
(SELECT count(*) FROM (SELECT 1 FROM pgqueue.jobs AS j
                       WHERE j.queue = q.name AND j.status IN ('queued', 'failed')
                       LIMIT q.max_depth + 1) AS waiting)

-- name: jobs_by_unique_key
-- The job holding each (key, scope, task, queue) of the arrays, within its scope: the
-- unfinished one, else the newest; each row ends with its 1-based position in the arrays.
SELECT DISTINCT ON (k.pos) {job_columns}, k.pos
FROM unnest(%(keys)s::text[], %(scopes)s::text[], %(tasks)s::text[], %(queues)s::text[])
     WITH ORDINALITY AS k(k_key, k_scope, k_task, k_queue, pos)
JOIN pgqueue.jobs AS j
  ON j.unique_key = k.k_key AND j.unique_scope = k.k_scope
 AND (k.k_scope <> 'task' OR j.task = k.k_task)
 AND (k.k_scope <> 'queue' OR j.queue = k.k_queue)
ORDER BY k.pos, (j.status IN ('queued', 'blocked', 'running', 'failed')) DESC, j.id DESC

-- name: unique_conflict
-- Fragment: the conflict target of jobs_unique_key_idx (a held key in its scope).
ON CONFLICT (unique_key, unique_scope,
             (CASE unique_scope WHEN 'task' THEN task WHEN 'queue' THEN queue ELSE '' END))
        WHERE unique_key IS NOT NULL AND status IN ('queued', 'blocked', 'running', 'failed')
        DO NOTHING

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
last_error, errors, result, progress, cancel_requested, meta, flow_id, parent_ids

-- name: enqueue_linked_prelude
-- `enqueue_prelude` for a batch with dependencies: also locks the existing parents
-- (setting has_dependents) until the commit and returns their state, read after
-- the lock: a parent finishing concurrently is seen finished, or finishes after
-- this transaction commits and then releases the new children itself.
WITH input AS (
    SELECT * FROM unnest(%(queues)s::text[], %(counts)s::int[], %(due)s::bool[],
                         %(earliest)s::timestamptz[]) AS i(queue, n, due, earliest)
), full_queues AS (
    SELECT d.queue_name AS name
    FROM pgqueue.lock_depth(CASE WHEN %(force)s::bool THEN ARRAY[]::text[]
                                 ELSE %(queues)s::text[] END) AS d
    JOIN input ON input.queue = d.queue_name
    WHERE input.n + d.waiting > d.depth_limit
), parents AS (
    UPDATE pgqueue.jobs AS j
    SET has_dependents = true
    WHERE j.id = ANY(%(parents)s::bigint[]) AND NOT EXISTS (SELECT 1 FROM full_queues)
    RETURNING j.id, j.status, j.task
), wake AS (
    SELECT pg_notify('pgqueue_jobs', queue)
    FROM input
    WHERE (due OR earliest <= now()) AND NOT EXISTS (SELECT 1 FROM full_queues)
)
SELECT now(),
       (SELECT array_agg(name ORDER BY name) FROM full_queues),
       CASE WHEN NOT EXISTS (SELECT 1 FROM full_queues) THEN
           ARRAY(SELECT nextval('pgqueue.jobs_id_seq') FROM generate_series(1, %(n)s))
       END,
       (SELECT count(*) FROM wake),
       (SELECT array_agg(id ORDER BY id) FROM parents),
       (SELECT array_agg(status ORDER BY id) FROM parents),
       (SELECT array_agg(task ORDER BY id) FROM parents)

-- name: enqueue_copy_linked
-- The rows of a batch with dependencies, after `enqueue_linked_prelude`.
COPY pgqueue.jobs (id, queue, task, args, kwargs, priority, run_at, max_attempts, meta,
                   status, flow_id, parent_ids, pending_parents, on_parent_failure,
                   pass_result, has_dependents, finished_at, last_error, errors)
FROM STDIN

-- name: enqueue_edges
-- The dependency edges of a batch, after its rows (two arrays, as text: one C-level dump).
INSERT INTO pgqueue.job_dependencies (parent_id, child_id)
SELECT * FROM unnest(%(parents)s::bigint[], %(children)s::bigint[])

-- name: flow_jobs
-- Every job of a flow, in enqueue order (parents before their children).
SELECT {job_columns} FROM pgqueue.jobs WHERE flow_id = %(flow_id)s ORDER BY id

-- name: flow_counts
-- How many jobs of a flow are in each status.
SELECT status, count(*) FROM pgqueue.jobs WHERE flow_id = %(flow_id)s GROUP BY status

-- name: flow_unfinished
-- The unfinished jobs of a flow (what cancelling it cancels).
SELECT id FROM pgqueue.jobs
WHERE flow_id = %(flow_id)s AND status NOT IN ('succeeded', 'dead', 'cancelled')
ORDER BY id

-- name: flow_root_failure
-- The first job of a flow that ended dead, else the first cancelled: what failed it.
SELECT {job_columns} FROM pgqueue.jobs
WHERE flow_id = %(flow_id)s AND status IN ('dead', 'cancelled')
ORDER BY status = 'dead' DESC, id
LIMIT 1

-- name: job_children
-- The jobs that depend on job %(id)s, in id order (its parents are its parent_ids).
SELECT {job_columns}
FROM pgqueue.jobs
WHERE id IN (SELECT child_id FROM pgqueue.job_dependencies WHERE parent_id = %(id)s)
ORDER BY id
