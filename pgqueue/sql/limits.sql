-- name: limited_queues
-- Which of these queues have a concurrency or rate limit (the plain claim skips them).
SELECT name FROM pgqueue.queues
WHERE name = ANY(%(queues)s::text[]) AND NOT paused
  AND (max_running IS NOT NULL OR rate_limit IS NOT NULL)

-- name: lock_limited_queues
-- Serialise claims on limited queues: taken in its own statement so that the
-- claim that follows (a new snapshot) sees every claim committed before it.
SELECT name FROM pgqueue.queues
WHERE name = ANY(%(queues)s::text[]) AND NOT paused
  AND (max_running IS NOT NULL OR rate_limit IS NOT NULL)
ORDER BY name
FOR UPDATE

-- name: claim_limited
-- Claim from limited queues, each at most its allowance: max_running minus the
-- jobs running now, and rate_limit minus the starts in the current rate window
-- (fixed windows of rate_period seconds). Run after lock_limited_queues, in the
-- same transaction; records the starts in the window.
WITH allowance AS (
    SELECT q.name,
           least(
               %(limit)s::int,
               CASE WHEN q.max_running IS NULL THEN %(limit)s::int
                    ELSE greatest(0, q.max_running - (
                        SELECT count(*) FROM pgqueue.jobs AS r
                        WHERE r.status = 'running' AND r.leased_until IS NOT NULL  -- jobs_lease_idx
                          AND r.queue = q.name))::int
               END,
               CASE WHEN q.rate_limit IS NULL THEN %(limit)s::int
                    WHEN q.rate_window_start IS NULL
                         OR q.rate_window_start <= now() - make_interval(secs => q.rate_period)
                    THEN q.rate_limit
                    ELSE greatest(0, q.rate_limit - q.rate_window_count)
               END
           ) AS n
    FROM pgqueue.queues AS q
    WHERE q.name = ANY(%(queues)s::text[]) AND NOT q.paused
      AND (q.max_running IS NOT NULL OR q.rate_limit IS NOT NULL)
), candidates AS (
    SELECT j.id
    FROM unnest(%(queues)s::text[]) WITH ORDINALITY AS q(name, pos)
    JOIN allowance AS a ON a.name = q.name
    CROSS JOIN LATERAL (
        SELECT id, priority, run_at
        FROM pgqueue.jobs
        WHERE queue = q.name
          AND status IN ('queued', 'failed')
          AND run_at <= now()
        ORDER BY priority DESC, run_at, id
        LIMIT a.n
        FOR UPDATE SKIP LOCKED
    ) AS j
    ORDER BY q.pos, j.priority DESC, j.run_at, j.id
    LIMIT %(limit)s
), claimed AS (
{lease_candidates}
), window_update AS (
    UPDATE pgqueue.queues AS q
    SET rate_window_start = CASE
            WHEN q.rate_window_start IS NULL
                 OR q.rate_window_start <= now() - make_interval(secs => q.rate_period)
            THEN now() ELSE q.rate_window_start END,
        rate_window_count = CASE
            WHEN q.rate_window_start IS NULL
                 OR q.rate_window_start <= now() - make_interval(secs => q.rate_period)
            THEN 0 ELSE q.rate_window_count END
            + (SELECT count(*) FROM claimed AS c WHERE c.queue = q.name)
    FROM allowance AS a
    WHERE q.name = a.name AND q.rate_limit IS NOT NULL
    RETURNING q.name
)
-- (window_update runs: data-modifying CTEs always do.)
SELECT * FROM claimed
