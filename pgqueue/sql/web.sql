-- name: web_queue_names
-- Queue names without reading jobs one by one: controls rows, a loose index scan
-- of the claim index (one probe per waiting queue), running jobs (jobs_lease_idx:
-- every running job holds a lease, here as in every count of them), and the
-- queues of the latest dead jobs.
WITH RECURSIVE waiting AS (
    (SELECT queue FROM pgqueue.jobs
     WHERE status IN ('queued', 'failed') ORDER BY queue LIMIT 1)
    UNION ALL
    SELECT (SELECT j.queue FROM pgqueue.jobs AS j
            WHERE j.status IN ('queued', 'failed') AND j.queue > w.queue
            ORDER BY j.queue LIMIT 1)
    FROM waiting AS w WHERE w.queue IS NOT NULL
)
SELECT queue AS name FROM waiting WHERE queue IS NOT NULL
UNION SELECT name FROM pgqueue.queues
UNION SELECT queue FROM pgqueue.jobs WHERE status = 'running' AND leased_until IS NOT NULL
UNION SELECT queue FROM (SELECT queue FROM pgqueue.jobs WHERE status = 'dead'
                         ORDER BY finished_at DESC LIMIT 1000) AS d
ORDER BY 1

-- name: web_queue_counts
-- Per queue: counts exact up to %(cap)s each, read from the indexes; NULL where
-- an exact figure would read too many rows (the page shows an estimate from
-- `web_sample` instead). Ready: waiting and due (retries included), scheduled:
-- waiting for a later run_at (retries in backoff included); both index-only
-- scans of the claim index. Retrying (status failed) and dead need the rows
-- themselves: exact only when the queue's waiting jobs (resp. all dead jobs)
-- number under the cap. Oldest ready age: the head of each priority of the
-- claim index (a loose scan over priorities), never a full scan.
WITH names AS (
    {web_queue_names}
), dead_total AS (
    SELECT count(*) AS n FROM (SELECT 1 FROM pgqueue.jobs WHERE status = 'dead'
                               LIMIT %(cap)s) AS d
), dead_by_queue AS MATERIALIZED (
    SELECT queue, count(*) AS n FROM pgqueue.jobs
    WHERE status = 'dead' AND (SELECT n FROM dead_total) < %(cap)s
    GROUP BY queue
), counts AS MATERIALIZED (
    SELECT n.name,
           (SELECT count(*) FROM (SELECT 1 FROM pgqueue.jobs AS j
                WHERE j.queue = n.name AND j.status IN ('queued', 'failed')
                  AND j.run_at <= now() LIMIT %(cap)s) AS w) AS ready,
           (SELECT count(*) FROM (SELECT 1 FROM pgqueue.jobs AS j
                WHERE j.queue = n.name AND j.status IN ('queued', 'failed')
                  AND j.run_at > now() LIMIT %(cap)s) AS w) AS scheduled
    FROM names AS n
)
SELECT n.name AS queue, n.ready, n.scheduled,
       (SELECT count(*) FROM (SELECT 1 FROM pgqueue.jobs AS j
            WHERE j.status = 'running' AND j.leased_until IS NOT NULL AND j.queue = n.name
            LIMIT %(cap)s) AS r) AS running,
       -- In claim-index order, so that it reads only this queue's (few) waiting jobs.
       CASE WHEN n.ready + n.scheduled < %(cap)s THEN
           (SELECT count(*) FILTER (WHERE w.status = 'failed') FROM (
                SELECT j.status FROM pgqueue.jobs AS j
                WHERE j.queue = n.name AND j.status IN ('queued', 'failed')
                ORDER BY j.priority DESC, j.run_at, j.id LIMIT %(cap)s) AS w)
       END AS retrying,
       CASE WHEN (SELECT n FROM dead_total) < %(cap)s THEN
           coalesce((SELECT d.n FROM dead_by_queue AS d WHERE d.queue = n.name), 0)
       END AS dead,
       (SELECT extract(epoch FROM now() - min(h.run_at)) FROM (
            WITH RECURSIVE heads AS (
                (SELECT j.priority, j.run_at FROM pgqueue.jobs AS j
                 WHERE j.queue = n.name AND j.status IN ('queued', 'failed')
                 ORDER BY j.priority DESC, j.run_at, j.id LIMIT 1)
                UNION ALL
                SELECT x.priority, x.run_at FROM heads AS p, LATERAL (
                    SELECT j.priority, j.run_at FROM pgqueue.jobs AS j
                    WHERE j.queue = n.name AND j.status IN ('queued', 'failed')
                      AND j.priority < p.priority
                    ORDER BY j.priority DESC, j.run_at, j.id LIMIT 1) AS x
            ) SELECT run_at FROM heads) AS h
        WHERE h.run_at <= now()) AS oldest_ready_seconds,
       coalesce(q.paused, false) AS paused, q.max_running, q.rate_limit,
       coalesce(q.rate_period, 1) AS rate_period, q.max_depth, q.retention,
       q.dead_retention, q.rate_window_start, q.rate_window_count
FROM counts AS n
LEFT JOIN pgqueue.queues AS q ON q.name = n.name
ORDER BY n.name

-- name: web_table_rows
-- The jobs table's row estimate (kept by VACUUM and ANALYZE): sizes the sample.
SELECT reltuples FROM pg_class WHERE oid = 'pgqueue.jobs'::regclass

-- name: web_sample
-- Estimates where exact counts would read too many rows: per queue and state,
-- the jobs in a block sample of the table (`percent` of its pages; TABLESAMPLE
-- SYSTEM reads only those pages), and the rows sampled, to scale by (against
-- `web_table_rows`). Rows with the dead-letter filters are counted too.
SELECT s.queue,
       count(*) FILTER (WHERE s.status IN ('queued', 'failed') AND s.run_at <= now()) AS ready,
       count(*) FILTER (WHERE s.status IN ('queued', 'failed') AND s.run_at > now())
           AS scheduled,
       count(*) FILTER (WHERE s.status = 'running') AS running,
       count(*) FILTER (WHERE s.status = 'failed') AS retrying,
       count(*) FILTER (WHERE s.status = 'dead') AS dead,
       count(*) FILTER (WHERE s.status = 'dead'
                          AND (%(task)s::text IS NULL OR s.task = %(task)s)
                          AND (%(since)s::timestamptz IS NULL OR s.finished_at >= %(since)s))
           AS dead_matching,
       sum(count(*)) OVER () AS sampled
FROM pgqueue.jobs AS s TABLESAMPLE SYSTEM (%(percent)s) REPEATABLE (0)
GROUP BY s.queue

-- name: web_throughput
-- Per minute over the last hour: jobs that finished (succeeded, dead) and the
-- pickup latency of their last attempt (started_at - run_at), median and p95.
-- Reads the finished-jobs index over one hour of finishes.
SELECT date_trunc('minute', finished_at) AS minute,
       count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
       count(*) FILTER (WHERE status = 'dead') AS failed,
       percentile_cont(0.5) WITHIN GROUP (
           ORDER BY extract(epoch FROM started_at - run_at)) AS latency_p50,
       percentile_cont(0.95) WITHIN GROUP (
           ORDER BY extract(epoch FROM started_at - run_at)) AS latency_p95
FROM pgqueue.jobs
WHERE status IN ('succeeded', 'dead') AND finished_at > now() - interval '1 hour'
GROUP BY 1
ORDER BY 1

-- name: web_workers
-- Live workers (heartbeat within a minute), their running jobs and heartbeat age.
SELECT w.id, w.hostname, w.pid, w.queues, w.concurrency, w.started_at,
       extract(epoch FROM now() - w.heartbeat_at) AS heartbeat_age,
       (SELECT count(*) FROM pgqueue.jobs AS j
        WHERE j.status = 'running' AND j.leased_until IS NOT NULL AND j.worker_id = w.id)
           AS running_jobs,
       (SELECT array_agg(j.id ORDER BY j.id) FROM (
            SELECT id FROM pgqueue.jobs AS j
            WHERE j.status = 'running' AND j.leased_until IS NOT NULL AND j.worker_id = w.id
            ORDER BY id LIMIT 20) AS j)
           AS running_ids
FROM pgqueue.workers AS w
WHERE w.heartbeat_at > now() - interval '1 minute'
ORDER BY w.hostname, w.pid, w.id

-- name: web_job_row
-- Fragment: the columns of a row of the jobs list.
id, queue, task, status, priority, attempts, max_attempts, run_at, created_at,
started_at, finished_at, unique_key, worker_id, left(last_error, 200) AS last_error

-- name: web_job_filters
-- Fragment: the optional filters of the jobs list (after an AND).
(%(queue)s::text IS NULL OR queue = %(queue)s)
  AND (%(task)s::text IS NULL OR task = %(task)s)
  AND (%(unique_key)s::text IS NULL OR unique_key = %(unique_key)s)
  AND (%(older)s::float8 IS NULL OR created_at <= now() - make_interval(secs => %(older)s))
  AND (%(newer)s::float8 IS NULL OR created_at >= now() - make_interval(secs => %(newer)s))
  AND (%(text)s::text IS NULL
       OR args::text ILIKE %(text)s OR kwargs::text ILIKE %(text)s
       OR meta::text ILIKE %(text)s OR last_error ILIKE %(text)s)

-- name: web_jobs_top
-- Where a free-text search window starts: below the cursor, or above the newest job.
SELECT coalesce(%(before)s::bigint, (SELECT max(id) + 1 FROM pgqueue.jobs))

-- name: web_jobs
-- One page of jobs, newest first, keyset-paginated on id (no OFFSET): every
-- filter optional; %(text)s is a case-insensitive substring of args, kwargs,
-- meta or last_error, searched in the ids from %(floor)s up (one window a page).
SELECT {web_job_row}
FROM pgqueue.jobs
WHERE (%(before)s::bigint IS NULL OR id < %(before)s)
  AND (%(floor)s::bigint IS NULL OR id >= %(floor)s)
  AND (%(status)s::text IS NULL OR status = %(status)s)
  AND {web_job_filters}
ORDER BY id DESC
LIMIT %(limit)s

-- name: web_jobs_finished
-- `web_jobs` for one finished status (succeeded, dead, cancelled): newest
-- finish first, read backwards along the finished-jobs index; the cursor is
-- still a job id (the page continues after that job's finish).
SELECT {web_job_row}
FROM pgqueue.jobs
WHERE status = %(status)s
  AND (%(since)s::timestamptz IS NULL OR finished_at >= %(since)s)
  AND (%(before)s::bigint IS NULL
       OR (finished_at, id) < (SELECT c.finished_at, c.id FROM pgqueue.jobs AS c
                               WHERE c.id = %(before)s))
  AND {web_job_filters}
ORDER BY finished_at DESC, id DESC
LIMIT %(limit)s

-- name: web_job
-- One job with everything the detail page shows, and the state that explains
-- why it is not running: its queue's controls, the queue's running count (up
-- to max_running) and the worker that holds its lease.
SELECT j.id, j.queue, j.task, j.args, j.kwargs, j.priority, j.status, j.run_at,
       j.attempts, j.max_attempts, j.leased_until, j.worker_id, j.unique_key,
       j.created_at, j.started_at, j.finished_at, j.last_error, j.errors, j.result,
       j.progress, j.cancel_requested, j.meta, now() AS now, j.flow_id,
       coalesce(j.parent_ids, '{}'::bigint[]) AS parent_ids, j.pending_parents,
       coalesce(j.on_parent_failure, 'cancel') AS on_parent_failure,
       coalesce(q.paused, false) AS queue_paused, q.max_running, q.rate_limit,
       coalesce(q.rate_period, 1) AS rate_period, q.rate_window_start, q.rate_window_count,
       (SELECT count(*) FROM (SELECT 1 FROM pgqueue.jobs AS r
            WHERE r.status = 'running' AND r.leased_until IS NOT NULL AND r.queue = j.queue
            LIMIT coalesce(q.max_running, 0)) AS c) AS queue_running,
       (SELECT count(*) FROM pgqueue.workers AS w
        WHERE w.heartbeat_at > now() - interval '1 minute' AND j.queue = ANY(w.queues))
           AS queue_workers,
       w.hostname AS worker_hostname, w.pid AS worker_pid,
       extract(epoch FROM now() - w.heartbeat_at) AS worker_heartbeat_age
FROM pgqueue.jobs AS j
LEFT JOIN pgqueue.queues AS q ON q.name = j.queue
LEFT JOIN pgqueue.workers AS w ON w.id = j.worker_id
WHERE j.id = %(id)s

-- name: web_dead_count
-- How many dead jobs a replay or purge by these filters would touch (exact up
-- to %(cap)s; the page estimates beyond, from `web_sample`).
SELECT count(*) FROM (
    SELECT 1 FROM pgqueue.jobs
    WHERE status = 'dead'
      AND (%(queue)s::text IS NULL OR queue = %(queue)s)
      AND (%(task)s::text IS NULL OR task = %(task)s)
      AND (%(since)s::timestamptz IS NULL OR finished_at >= %(since)s)
    LIMIT %(cap)s
) AS c

-- name: web_schedules
-- Every schedule with its state (next fire, last fire, missed-window policy).
SELECT name, cron, timezone, task, queue, missed, max_catchup, grace_seconds, enabled,
       declared, next_run_at, last_run_at, now() AS now
FROM pgqueue.schedules
ORDER BY name

-- name: web_now
-- The database's clock (charts are drawn against it, not the web server's).
SELECT now()
