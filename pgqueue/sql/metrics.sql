-- name: metrics_queues
-- Per queue: waiting jobs (ready), scheduled, running, retrying, dead, oldest ready age.
-- Also the query to give KEDA's PostgreSQL scaler (see README).
SELECT queue,
       count(*) FILTER (WHERE status IN ('queued', 'failed') AND run_at <= now()) AS ready,
       count(*) FILTER (WHERE status = 'queued' AND run_at > now()) AS scheduled,
       count(*) FILTER (WHERE status = 'running') AS running,
       count(*) FILTER (WHERE status = 'failed' AND run_at > now()) AS retrying,
       count(*) FILTER (WHERE status = 'dead') AS dead,
       coalesce(extract(epoch FROM now() - min(run_at)
                FILTER (WHERE status IN ('queued', 'failed') AND run_at <= now())), 0)
           AS oldest_ready_seconds
FROM pgqueue.jobs
WHERE status IN ('queued', 'running', 'failed', 'dead')
GROUP BY queue
