-- name: schedule_input
-- Fragment: schedule rows given as one JSON array of objects (see _schedules.row_params).
SELECT e->>'name' AS name, e->>'cron' AS cron, e->>'timezone' AS timezone,
       e->>'task' AS task, e->'args' AS args, e->'kwargs' AS kwargs, e->>'queue' AS queue,
       (e->>'priority')::smallint AS priority, (e->>'max_attempts')::int AS max_attempts,
       e->>'missed' AS missed, (e->>'max_catchup')::int AS max_catchup,
       (e->>'grace_seconds')::float8 AS grace_seconds, (e->>'shard')::int AS shard,
       (e->>'next_run_at')::timestamptz AS next_run_at
FROM jsonb_array_elements(%(rows)s::jsonb) AS e

-- name: schedule_columns
-- Fragment: the columns a pgqueue.Schedule is decoded from, in order (see _schedules.FIELDS).
name, cron, task, timezone, args, kwargs, queue, priority, max_attempts, missed,
max_catchup, grace_seconds, enabled, declared, next_run_at, last_run_at

-- name: schedules_clock
-- The database's clock (the transaction's start): every next_run_at is computed from it.
SELECT now()

-- name: schedules_sync
-- Upsert the schedules declared in code; unchanged rows are not written. A new
-- expression or zone, or a row that was not declared before, gets the passed next_run_at;
-- a declared row keeps its enabled flag (an operator's pause survives restarts).
INSERT INTO pgqueue.schedules AS s (
    name, cron, timezone, task, args, kwargs, queue, priority, max_attempts, missed,
    max_catchup, grace_seconds, enabled, declared, shard, next_run_at)
SELECT name, cron, timezone, task, args, kwargs, queue, priority, max_attempts, missed,
       max_catchup, grace_seconds, true, true, shard, next_run_at
FROM ({schedule_input}) AS input
ORDER BY name
ON CONFLICT (name) DO UPDATE SET
    cron = excluded.cron, timezone = excluded.timezone, task = excluded.task,
    args = excluded.args, kwargs = excluded.kwargs, queue = excluded.queue,
    priority = excluded.priority, max_attempts = excluded.max_attempts,
    missed = excluded.missed, max_catchup = excluded.max_catchup,
    grace_seconds = excluded.grace_seconds, shard = excluded.shard,
    enabled = s.enabled OR NOT s.declared,
    declared = true,
    next_run_at = CASE
        WHEN s.cron <> excluded.cron OR s.timezone <> excluded.timezone
             OR s.next_run_at IS NULL OR NOT s.declared
        THEN excluded.next_run_at ELSE s.next_run_at END,
    updated_at = now()
WHERE (s.cron, s.timezone, s.task, s.args, s.kwargs, s.queue, s.priority, s.max_attempts,
       s.missed, s.max_catchup, s.grace_seconds, s.shard, s.declared)
      IS DISTINCT FROM
      (excluded.cron, excluded.timezone, excluded.task, excluded.args, excluded.kwargs,
       excluded.queue, excluded.priority, excluded.max_attempts, excluded.missed,
       excluded.max_catchup, excluded.grace_seconds, excluded.shard, true)
   OR s.next_run_at IS NULL
RETURNING name, (xmax = 0) AS inserted

-- name: schedules_disable_undeclared
-- Disable (never delete) the schedules code declared before but declares no more.
UPDATE pgqueue.schedules
SET enabled = false, declared = false, updated_at = now()
WHERE declared AND NOT (name = ANY(%(names)s::text[]))
RETURNING name

-- name: schedule_add
-- Add one schedule at runtime (declared = false); with replace, overwrite and enable it.
INSERT INTO pgqueue.schedules AS s (
    name, cron, timezone, task, args, kwargs, queue, priority, max_attempts, missed,
    max_catchup, grace_seconds, enabled, declared, shard, next_run_at)
SELECT name, cron, timezone, task, args, kwargs, queue, priority, max_attempts, missed,
       max_catchup, grace_seconds, true, false, shard, next_run_at
FROM ({schedule_input}) AS input
ON CONFLICT (name) DO UPDATE SET
    cron = excluded.cron, timezone = excluded.timezone, task = excluded.task,
    args = excluded.args, kwargs = excluded.kwargs, queue = excluded.queue,
    priority = excluded.priority, max_attempts = excluded.max_attempts,
    missed = excluded.missed, max_catchup = excluded.max_catchup,
    grace_seconds = excluded.grace_seconds, shard = excluded.shard,
    enabled = true, next_run_at = excluded.next_run_at, updated_at = now()
WHERE %(replace)s
RETURNING name

-- name: schedules_list
-- Every schedule, by name.
SELECT {schedule_columns} FROM pgqueue.schedules ORDER BY name

-- name: schedule_get
-- One schedule by name, locked for a change.
SELECT {schedule_columns} FROM pgqueue.schedules WHERE name = %(name)s FOR UPDATE

-- name: schedule_pause
-- Stop a schedule firing (it keeps its row and its next_run_at).
UPDATE pgqueue.schedules SET enabled = false, updated_at = now()
WHERE name = %(name)s
RETURNING name

-- name: schedule_resume
-- Fire again from the passed next_run_at (the fires of the pause are not caught up).
UPDATE pgqueue.schedules SET enabled = true, next_run_at = %(next_run_at)s, updated_at = now()
WHERE name = %(name)s AND NOT enabled
RETURNING name

-- name: schedule_remove
-- Delete a schedule (one still declared in code comes back at the next sync).
DELETE FROM pgqueue.schedules WHERE name = %(name)s RETURNING name

-- name: scheduler_shards
-- Per shard, the earliest next_run_at (one probe of schedules_due_idx each), and the clock.
SELECT sh.shard,
       (SELECT s.next_run_at FROM pgqueue.schedules AS s
        WHERE s.shard = sh.shard AND s.enabled AND s.next_run_at IS NOT NULL
        ORDER BY s.next_run_at LIMIT 1) AS next_run_at,
       coalesce(%(now)s::timestamptz, now()) AS now
FROM generate_series(0, %(shards)s::int - 1) AS sh(shard)

-- name: scheduler_claim
-- Under the shard's advisory lock (skipped, not awaited, when another scheduler holds it),
-- lock up to %(limit)s due schedules of the shard through schedules_due_idx.
SELECT name, cron, timezone, task, args, kwargs, queue, priority, max_attempts, missed,
       max_catchup, grace_seconds, next_run_at, coalesce(%(now)s::timestamptz, now()) AS now
FROM pgqueue.schedules
WHERE (SELECT pg_try_advisory_xact_lock(%(lock_key)s::int, %(shard)s::int))
  AND shard = %(shard)s::int
  AND enabled
  AND next_run_at IS NOT NULL
  AND next_run_at <= coalesce(%(now)s::timestamptz, now())
ORDER BY next_run_at
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED

-- name: scheduler_advance
-- Move each fired schedule to its next fire in one statement; last_run_at only moves
-- when a fire was enqueued; a NULL next_run_at parks a schedule that cannot be computed.
UPDATE pgqueue.schedules AS s
SET next_run_at = u.next_run_at,
    last_run_at = coalesce(u.last_run_at, s.last_run_at)
FROM unnest(%(names)s::text[], %(next)s::timestamptz[], %(last)s::timestamptz[])
     AS u(name, next_run_at, last_run_at)
WHERE s.name = u.name
