-- name: metrics_queues
-- Per queue: waiting jobs (ready), scheduled, running, retrying, dead, oldest ready age.
-- One arm per partial index (jobs_claim_idx, jobs_lease_idx, jobs_dead_queue_idx):
-- a single `status IN (...)` matches none of their predicates, and the scrape became
-- a sequential scan of every finished job the retention keeps.
SELECT queue,
       count(*) FILTER (WHERE status IN ('queued', 'failed') AND run_at <= now()) AS ready,
       count(*) FILTER (WHERE status = 'queued' AND run_at > now()) AS scheduled,
       count(*) FILTER (WHERE status = 'running') AS running,
       count(*) FILTER (WHERE status = 'failed' AND run_at > now()) AS retrying,
       count(*) FILTER (WHERE status = 'dead') AS dead,
       coalesce(extract(epoch FROM now() - min(run_at)
                FILTER (WHERE status IN ('queued', 'failed') AND run_at <= now())), 0)
           AS oldest_ready_seconds
FROM (
    SELECT queue, status, run_at FROM pgqueue.jobs WHERE status IN ('queued', 'failed')
    UNION ALL
    SELECT queue, status, run_at FROM pgqueue.jobs
    WHERE status = 'running' AND leased_until IS NOT NULL  -- jobs_lease_idx (every running job holds a lease)
    UNION ALL
    SELECT queue, status, run_at FROM pgqueue.jobs WHERE status = 'dead'
) AS j
GROUP BY queue
