-- The batch statements (`complete`, `heartbeat`, `release`) join their batch through
-- unnest() and must find its jobs by primary key. The statistics show a handful of
-- running jobs, so `status = 'running'` as a constant made the planner read every
-- job it matched as the join's outer side, with the batch rescanned per row: all of
-- jobs_running_idx (until migration 0008 dropped it), whose entries under a pinned
-- MVCC horizon include every job claimed since, or without it the whole table. The
-- fence compares with `(SELECT 'running')` instead: a parameter, estimated as one
-- status of several, so the batch drives the join, one primary-key probe per job,
-- or a hash join over a small table (benchmarks/horizon_batches.py; ANALYSIS.md,
-- "Running jobs by lease"). Statements that count running jobs add
-- `leased_until IS NOT NULL` (jobs_lease_idx; every running job holds a lease).

-- name: claim
-- Lease up to %(limit)s ready jobs, queues in the listed order, each queue by priority DESC, run_at, id.
-- The per-queue LATERAL reads jobs_claim_idx (queue, priority DESC, run_at, id) WHERE status IN ('queued','failed').
-- Paused queues are skipped, and so are limited ones (max_running, rate_limit): claim_limited takes those.
-- The claim is durable (it commits with the session's synchronous_commit), so a server
-- crash cannot undo a started attempt. `pgqueue.claim_commit` (a database or role setting)
-- overrides it for the claim alone; 'off' trades that for one fsync less per claim
-- (README, "Delivery guarantees").
WITH candidates AS (
    SELECT j.id
    FROM unnest(%(queues)s::text[]) WITH ORDINALITY AS q(name, pos)
{claim_commit}
    CROSS JOIN LATERAL (
        SELECT id, priority, run_at
        FROM pgqueue.jobs
        WHERE queue = q.name
          AND status IN ('queued', 'failed')
          AND run_at <= now()
          AND q.name NOT IN (SELECT name FROM pgqueue.queues
                             WHERE paused OR max_running IS NOT NULL OR rate_limit IS NOT NULL)
        ORDER BY priority DESC, run_at, id
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ) AS j
    ORDER BY q.pos, j.priority DESC, j.run_at, j.id
    LIMIT %(limit)s
)
{lease_candidates}

-- name: claim_after
-- The claim from moving lower bounds: each segment scans one queue's priority range,
-- a known priority only from %(seg_after)s on (the run_at this worker last claimed there,
-- minus a slack), so dead entries of the claimed prefix are not walked again while the
-- MVCC horizon is pinned. Segments come in claim order; jobs behind a bound (long
-- transactions' enqueues, released or rescued jobs) wait for the next plain `claim`.
WITH candidates AS (
    SELECT j.id
    FROM unnest(%(seg_queue)s::text[], %(seg_above)s::int[], %(seg_below)s::int[],
                %(seg_priority)s::smallint[], %(seg_after)s::timestamptz[])
         WITH ORDINALITY AS s(queue, above, below, priority, after, pos)
{claim_commit}
    CROSS JOIN LATERAL (
        SELECT * FROM (
            SELECT id, priority, run_at
            FROM pgqueue.jobs
            WHERE s.priority IS NULL
              AND queue = s.queue
              AND priority > s.above AND priority < s.below
              AND status IN ('queued', 'failed')
              AND run_at <= now()
            ORDER BY priority DESC, run_at, id
            LIMIT %(limit)s
            FOR UPDATE SKIP LOCKED
        ) AS span
        UNION ALL
        SELECT * FROM (
            SELECT id, priority, run_at
            FROM pgqueue.jobs
            WHERE s.priority IS NOT NULL
              AND queue = s.queue
              AND priority = s.priority
              AND run_at >= s.after
              AND status IN ('queued', 'failed')
              AND run_at <= now()
            ORDER BY priority DESC, run_at, id
            LIMIT %(limit)s
            FOR UPDATE SKIP LOCKED
        ) AS level
        LIMIT %(limit)s
    ) AS j
    WHERE s.queue NOT IN (SELECT name FROM pgqueue.queues
                          WHERE paused OR max_running IS NOT NULL OR rate_limit IS NOT NULL)
    ORDER BY s.pos, j.priority DESC, j.run_at, j.id
    LIMIT %(limit)s
)
{lease_candidates}

-- name: complete
-- Record finished attempts in one statement, fenced by status and lease token;
-- retries wake their queue, finished jobs wake result waiters.
-- The ids arrive sorted (complete_params), as the heartbeat's do: where the batch
-- drives the join (one primary-key probe per job) both lock rows in id order and
-- never deadlock (tests/test_lock_order.py); a hash join over a small table locks
-- them in the table's order instead.
WITH outcome AS (
    SELECT *
    FROM unnest(%(ids)s::bigint[], %(tokens)s::uuid[], %(statuses)s::text[],
                %(results)s::jsonb[], %(delays)s::float8[], %(errors)s::text[],
                %(entries)s::jsonb[])
         AS o(id, token, status, result, delay, error, entry)
), done AS (
    UPDATE pgqueue.jobs AS j
    SET status = o.status,
        result = o.result,
        run_at = CASE WHEN o.status = 'failed'
                      THEN now() + make_interval(secs => o.delay) ELSE j.run_at END,
        finished_at = CASE WHEN o.status = 'failed' THEN NULL ELSE now() END,
        last_error = coalesce(o.error, j.last_error),
        errors = CASE WHEN o.entry IS NULL THEN j.errors ELSE j.errors || o.entry END,
        leased_until = NULL
    FROM outcome AS o
    WHERE j.id = o.id AND j.status = (SELECT 'running') AND j.lease_token = o.token
    RETURNING j.id, j.status, j.queue, j.run_at
), wake_done AS (
    SELECT pg_notify('pgqueue_done', string_agg(id::text, ','))
    FROM (SELECT id, (row_number() OVER ()) / 500 AS chunk
          FROM done WHERE status <> 'failed') AS d
    GROUP BY chunk
), wake_queue AS (
    SELECT pg_notify('pgqueue_jobs', q.queue)
    FROM (SELECT DISTINCT queue FROM done WHERE status = 'failed' AND run_at <= now()) AS q
)
SELECT id, (SELECT count(*) FROM wake_done) + (SELECT count(*) FROM wake_queue) AS notified
FROM done

-- name: heartbeat
-- Extend the leases this worker still holds; returns those it holds (and cancel requests).
-- The ids arrive sorted, as `complete`'s do (one lock order).
UPDATE pgqueue.jobs AS j
SET leased_until = now() + make_interval(secs => h.lease)
FROM unnest(%(ids)s::bigint[], %(tokens)s::uuid[], %(leases)s::float8[]) AS h(id, token, lease)
WHERE j.id = h.id AND j.status = (SELECT 'running') AND j.lease_token = h.token
RETURNING j.id, j.cancel_requested

-- name: release
-- Give back claimed jobs at shutdown: unstarted ones do not count an attempt; a started
-- one counts it, and goes to dead when none is left (the rescuer's rule).
WITH released AS (
    UPDATE pgqueue.jobs AS j
    SET status = CASE WHEN r.started AND j.attempts >= j.max_attempts THEN 'dead' ELSE 'queued' END,
        attempts = CASE WHEN r.started THEN j.attempts ELSE j.attempts - 1 END,
        finished_at = CASE WHEN r.started AND j.attempts >= j.max_attempts THEN now() END,
        last_error = CASE WHEN r.started
                          THEN 'released: worker ' || coalesce(j.worker_id, '?')
                               || ' stopped before the attempt ended'
                          ELSE j.last_error END,
        errors = CASE WHEN r.started THEN j.errors || jsonb_build_array(jsonb_build_object(
                          'attempt', j.attempts, 'at', now(),
                          'error', 'WorkerStopped: worker ' || coalesce(j.worker_id, '?')
                                   || ' stopped before the attempt ended'))
                      ELSE j.errors END,
        leased_until = NULL,
        lease_token = NULL,
        worker_id = NULL,
        started_at = NULL
    FROM unnest(%(ids)s::bigint[], %(tokens)s::uuid[], %(started)s::bool[])
         AS r(id, token, started)
    WHERE j.id = r.id AND j.status = (SELECT 'running') AND j.lease_token = r.token
    RETURNING j.id, j.queue, j.status
), wake AS (
    SELECT pg_notify('pgqueue_jobs', q.queue)
    FROM (SELECT DISTINCT queue FROM released WHERE status = 'queued') AS q
), wake_done AS (
    SELECT pg_notify('pgqueue_done', string_agg(id::text, ','))
    FROM released WHERE status = 'dead' HAVING count(*) > 0
)
SELECT id, status, (SELECT count(*) FROM wake) + (SELECT count(*) FROM wake_done) FROM released

-- name: rescue
-- Return jobs whose lease expired to the queue (the attempt counts), or to dead when exhausted.
-- Reads jobs_lease_idx (leased_until) WHERE status = 'running' AND leased_until IS NOT NULL
-- (implied by the range below) from %(after)s, the cutoff
-- (now()) of the rescuer's previous pass, NULL for a full pass: while the MVCC horizon is
-- pinned, the entries of leases that lapsed before it (dead ones included) are not walked again.
WITH expired AS (
    SELECT id
    FROM pgqueue.jobs
    WHERE status = 'running'
      AND leased_until >= coalesce(%(after)s::timestamptz, '-infinity')
      AND leased_until < now()
    ORDER BY leased_until
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), rescued AS (
    UPDATE pgqueue.jobs AS j
    SET status = CASE WHEN j.attempts >= j.max_attempts THEN 'dead' ELSE 'queued' END,
        finished_at = CASE WHEN j.attempts >= j.max_attempts THEN now() END,
        last_error = 'lease expired: worker ' || coalesce(j.worker_id, '?') || ' lost the job',
        errors = j.errors || jsonb_build_array(jsonb_build_object(
            'attempt', j.attempts, 'at', now(),
            'error', 'LeaseExpired: worker ' || coalesce(j.worker_id, '?') || ' lost the job')),
        leased_until = NULL,
        lease_token = NULL
    FROM expired
    WHERE j.id = expired.id
    RETURNING j.id, j.status, j.queue
), wake AS (
    SELECT pg_notify('pgqueue_jobs', q.queue)
    FROM (SELECT DISTINCT queue FROM rescued WHERE status = 'queued') AS q
)
SELECT id, status, queue, (SELECT count(*) FROM wake) FROM rescued

-- name: worker_register
-- Announce a worker process (operators read pgqueue.live_workers).
INSERT INTO pgqueue.workers (id, hostname, pid, queues, concurrency)
VALUES (%(id)s, %(hostname)s, %(pid)s, %(queues)s, %(concurrency)s)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()

-- name: worker_heartbeat
-- Mark a worker alive.
UPDATE pgqueue.workers SET heartbeat_at = now() WHERE id = %(id)s

-- name: worker_deregister
-- Remove a worker that stops cleanly; stale rows are pruned by the rescuer.
DELETE FROM pgqueue.workers WHERE id = %(id)s

-- name: workers_prune
-- Forget workers silent for longer than %(seconds)s.
DELETE FROM pgqueue.workers WHERE heartbeat_at < now() - make_interval(secs => %(seconds)s)

-- name: rescuer_lock
-- Take this rescue pass's turn: one pass at a time across all workers (transaction-scoped);
-- now() is the pass's cutoff, where the next bounded pass starts (rescue's lower bound).
SELECT pg_try_advisory_xact_lock(%(key)s), now()

-- name: queues_unfinished
-- Is any job of these (unpaused) queues still unfinished? Burst workers exit when not.
SELECT EXISTS (
    SELECT 1
    FROM pgqueue.jobs
    WHERE queue = ANY(%(queues)s::text[])
      AND status IN ('queued', 'failed', 'running')
      AND queue NOT IN (SELECT name FROM pgqueue.queues WHERE paused)
)

-- name: set_progress
-- A running task reports progress, fenced by its lease; returns whether cancellation was asked.
UPDATE pgqueue.jobs
SET progress = %(progress)s::jsonb
WHERE id = %(id)s AND status = 'running' AND lease_token = %(token)s::uuid
RETURNING cancel_requested

-- name: claim_commit
-- Fragment: a claim commits with the session's synchronous_commit, or with
-- `pgqueue.claim_commit` when that is set (claim, claim_after).
    CROSS JOIN (SELECT set_config('synchronous_commit',
                                  coalesce(nullif(current_setting('pgqueue.claim_commit', true), ''),
                                           current_setting('synchronous_commit')),
                                  true)) AS claim_commit

-- name: lease_candidates
-- Fragment: lease the rows of the `candidates` CTE (claim, claim_limited).
UPDATE pgqueue.jobs AS jobs
SET status = 'running',
    attempts = jobs.attempts + 1,
    leased_until = now() + make_interval(secs => %(lease)s),
    lease_token = %(token)s::uuid,  -- one per claim: (id, token) fences each job's outcome
    worker_id = %(worker_id)s,
    started_at = now()
-- An id list, not a join: the planner always probes the primary key (a join
-- may be planned as a hash join over the whole table).
WHERE jobs.id = ANY(ARRAY(SELECT id FROM candidates))
-- JSON as text: the worker decodes it itself, skipping the decoder for empty ones.
-- priority and run_at: the worker's claim bounds (see claim_after).
-- pass_result is NULL for a job without parents; for one with parents, the parents'
-- [id, result] pairs in parent_ids order come along (the CASE skips the subquery
-- for every other job, so their claim reads nothing more).
RETURNING jobs.id, jobs.queue, jobs.task, jobs.args::text, jobs.kwargs::text, jobs.attempts,
          jobs.max_attempts, jobs.meta::text, jobs.pass_result,
          CASE WHEN jobs.pass_result IS NOT NULL THEN (
              SELECT json_agg(json_build_array(u.id, p.result) ORDER BY u.ord)::text
              FROM unnest(jobs.parent_ids) WITH ORDINALITY AS u(id, ord)
              LEFT JOIN pgqueue.jobs AS p ON p.id = u.id) END,
          jobs.priority, jobs.run_at

-- name: leases_gone
-- Of these held jobs, those whose lease token changed (rescued, claimed again) or that vanished.
SELECT h.id
FROM unnest(%(ids)s::bigint[], %(tokens)s::uuid[]) AS h(id, token)
LEFT JOIN pgqueue.jobs AS j ON j.id = h.id
WHERE j.lease_token IS DISTINCT FROM h.token
