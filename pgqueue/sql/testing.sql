-- name: testing_waiting_queues
-- Queues with waiting jobs: what pgqueue.testing.drain() drains when no queues are named.
SELECT DISTINCT queue FROM pgqueue.jobs WHERE status IN ('queued', 'failed') ORDER BY 1

-- name: testing_busy
-- Does a job of these (unpaused) queues run, or wait ready now? drain() stops once none does.
SELECT EXISTS (
    SELECT 1
    FROM pgqueue.jobs
    WHERE queue = ANY(%(queues)s::text[])
      AND (status = 'running' OR (status = 'queued' AND run_at <= now()))
      AND queue NOT IN (SELECT name FROM pgqueue.queues WHERE paused)
)

-- name: testing_make_due
-- drain(include_scheduled=True): scheduled jobs and retries of these queues due now; wake them.
WITH due AS (
    UPDATE pgqueue.jobs
    SET run_at = now()
    WHERE queue = ANY(%(queues)s::text[])
      AND status IN ('queued', 'failed')
      AND run_at > now()
    RETURNING queue
)
SELECT pg_notify('pgqueue_jobs', q.queue) FROM (SELECT DISTINCT queue FROM due) AS q
