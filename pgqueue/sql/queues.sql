-- name: queue_upsert
-- Set one queue's controls; NULL arguments leave a setting as it is.
INSERT INTO pgqueue.queues AS q (name, paused, max_running, rate_limit, rate_period,
                                 max_depth, retention, dead_retention)
VALUES (%(name)s, coalesce(%(paused)s, false), %(max_running)s, %(rate_limit)s,
        coalesce(%(rate_period)s, 1), %(max_depth)s, %(retention)s, %(dead_retention)s)
ON CONFLICT (name) DO UPDATE SET
    paused = coalesce(%(paused)s, q.paused),
    max_running = CASE WHEN %(clear)s::text[] @> ARRAY['max_running']
                       THEN NULL ELSE coalesce(%(max_running)s, q.max_running) END,
    rate_limit = CASE WHEN %(clear)s::text[] @> ARRAY['rate_limit']
                      THEN NULL ELSE coalesce(%(rate_limit)s, q.rate_limit) END,
    rate_period = coalesce(%(rate_period)s, q.rate_period),
    max_depth = CASE WHEN %(clear)s::text[] @> ARRAY['max_depth']
                     THEN NULL ELSE coalesce(%(max_depth)s, q.max_depth) END,
    retention = CASE WHEN %(clear)s::text[] @> ARRAY['retention']
                     THEN NULL ELSE coalesce(%(retention)s, q.retention) END,
    dead_retention = CASE WHEN %(clear)s::text[] @> ARRAY['dead_retention']
                          THEN NULL ELSE coalesce(%(dead_retention)s, q.dead_retention) END,
    rate_window_start = NULL,
    rate_window_count = 0,
    updated_at = now()
RETURNING name, paused, max_running, rate_limit, rate_period, max_depth, retention,
          dead_retention

-- name: queue_list
-- Every queue with jobs or controls, and its controls.
SELECT n.name, coalesce(q.paused, false) AS paused, q.max_running, q.rate_limit,
       coalesce(q.rate_period, 1) AS rate_period, q.max_depth, q.retention, q.dead_retention
FROM (SELECT name FROM pgqueue.queues
      UNION
      SELECT DISTINCT queue FROM pgqueue.jobs WHERE status IN ('queued', 'blocked', 'running', 'failed')) AS n
LEFT JOIN pgqueue.queues AS q ON q.name = n.name
ORDER BY n.name

-- name: queue_wake
-- Wake workers of a queue (after resume).
SELECT pg_notify('pgqueue_jobs', %(name)s)
