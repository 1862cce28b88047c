-- name: workflow_begin
-- A workflow attempt starts: read its step log (a read: no commit to wait for).
SELECT seq, name, kind, result::text, error, finished_at IS NOT NULL, child_id
FROM pgqueue.workflow_steps
WHERE workflow_id = %(id)s AND seq > 0
ORDER BY seq

-- name: workflow_record
-- A step ended: its result or error, in its own commit (or in a transactional step's
-- transaction), fenced by the workflow job's lease. FOR SHARE waits for a rescue or a
-- re-claim in flight and re-checks the token on the row itself: a worker that lost the
-- job records nothing. The workflow's first checkpoint also writes its seq 0 row.
WITH holder AS (
    SELECT id FROM pgqueue.jobs
    WHERE id = %(id)s AND status = 'running' AND lease_token = %(token)s::uuid
    FOR SHARE
), mark AS (
{workflow_mark_row}
)
INSERT INTO pgqueue.workflow_steps AS s
       (workflow_id, seq, name, kind, args_digest, result, error, attempts, started_at,
        finished_at)
SELECT id, %(seq)s, %(name)s, %(kind)s, %(digest)s, %(result)s::jsonb, %(error)s,
       %(attempts)s, %(started_at)s, now()
FROM holder
ON CONFLICT (workflow_id, seq) DO UPDATE
SET result = excluded.result, error = excluded.error,
    attempts = s.attempts + excluded.attempts, finished_at = excluded.finished_at
WHERE s.finished_at IS NULL
RETURNING seq

-- name: workflow_mark
-- The workflow's seq 0 row, with its first checkpoint (under workflow_lock).
WITH holder AS (SELECT %(id)s::bigint AS id)
{workflow_mark_row}

-- name: workflow_mark_row
-- Fragment: insert seq 0 (the workflow, named %(mark)s) for the `holder` row, once.
    INSERT INTO pgqueue.workflow_steps (workflow_id, seq, name, kind, attempts, started_at,
                                        finished_at)
    SELECT id, 0, %(mark)s, 'workflow', 0, %(run_started)s, NULL FROM holder
    WHERE %(mark)s::text IS NOT NULL
    ON CONFLICT (workflow_id, seq) DO NOTHING

-- name: workflow_lock
-- Lock the workflow's job row while this attempt still holds its lease (suspensions:
-- send_event takes the same row lock, so the two serialize on the row itself).
SELECT now()
FROM pgqueue.jobs
WHERE id = %(id)s AND status = 'running' AND lease_token = %(token)s::uuid
FOR NO KEY UPDATE

-- name: workflow_wait_begin
-- The pending row of a sleep, an event wait or a child, once; its wake time (deadline).
INSERT INTO pgqueue.workflow_steps AS s
       (workflow_id, seq, name, kind, event, child_id, attempts, wake_at)
VALUES (%(id)s, %(seq)s, %(name)s, %(kind)s, %(event)s, %(child)s, 0,
        now() + make_interval(secs => %(seconds)s))
ON CONFLICT (workflow_id, seq) DO UPDATE SET wake_at = s.wake_at
RETURNING wake_at, wake_at <= now(), finished_at IS NOT NULL, result::text, error, child_id

-- name: workflow_consume_event
-- The oldest event of that name not yet consumed becomes the wait's result.
WITH ev AS (
    SELECT id FROM pgqueue.workflow_events
    WHERE workflow_id = %(id)s AND name = %(event)s AND consumed_at IS NULL
    ORDER BY id
    LIMIT 1
    FOR UPDATE
), used AS (
    UPDATE pgqueue.workflow_events AS e
    SET consumed_at = now(), consumed_by = %(seq)s
    FROM ev WHERE e.id = ev.id
    RETURNING e.payload
), done AS (
    UPDATE pgqueue.workflow_steps AS s
    SET result = used.payload, finished_at = now(), attempts = s.attempts + 1
    FROM used
    WHERE s.workflow_id = %(id)s AND s.seq = %(seq)s
)
SELECT payload::text FROM used

-- name: workflow_finish_wait
-- A sleep that is over, an event wait past its deadline (result NULL), a finished child.
UPDATE pgqueue.workflow_steps
SET finished_at = now(), attempts = attempts + 1, result = %(result)s::jsonb, error = %(error)s
WHERE workflow_id = %(id)s AND seq = %(seq)s AND finished_at IS NULL

-- name: workflow_suspend
-- End the attempt without counting it: back to queued until %(until)s (a wake time, an
-- event's deadline), leased to no one. Under the row lock of workflow_lock.
WITH suspended AS (
    UPDATE pgqueue.jobs
    SET status = 'queued',
        run_at = %(until)s,
        attempts = attempts - 1,
        leased_until = NULL,
        lease_token = NULL,
        worker_id = NULL
    WHERE id = %(id)s AND status = 'running' AND lease_token = %(token)s::uuid
    RETURNING id, queue, run_at
), wake AS (
    SELECT pg_notify('pgqueue_jobs', queue) FROM suspended WHERE run_at <= now()
)
SELECT id, (SELECT count(*) FROM wake) FROM suspended

-- name: workflow_event_lock
-- send_event: lock the workflow's job row first (see workflow_lock).
SELECT status FROM pgqueue.jobs WHERE id = %(id)s FOR NO KEY UPDATE

-- name: workflow_send_event
-- Record an event; a workflow suspended waiting for that name is due at once and its
-- queue is woken (one NOTIFY, delivered at commit). Runs after workflow_event_lock, in
-- a snapshot that sees any suspension that committed before the lock was granted.
WITH sent AS (
    INSERT INTO pgqueue.workflow_events (workflow_id, name, payload)
    VALUES (%(id)s, %(name)s, %(payload)s::jsonb)
    RETURNING id
), woken AS (
    UPDATE pgqueue.jobs AS j
    SET run_at = now()
    WHERE j.id = %(id)s AND j.status = 'queued' AND j.run_at > now()
      AND EXISTS (SELECT 1 FROM pgqueue.workflow_steps AS s
                  WHERE s.workflow_id = j.id AND s.kind = 'event' AND s.event = %(name)s
                    AND s.finished_at IS NULL)
    RETURNING j.queue
), wake AS (
    SELECT pg_notify('pgqueue_jobs', queue) FROM woken
)
SELECT (SELECT id FROM sent), (SELECT count(*) FROM woken), (SELECT count(*) FROM wake)

-- name: workflow_steps
-- A workflow's step log, in order (seq 0 is the workflow itself).
SELECT seq, name, kind, args_digest, result, error, attempts, wake_at, event, child_id,
       started_at, finished_at
FROM pgqueue.workflow_steps
WHERE workflow_id = %(id)s
ORDER BY seq

-- name: list_workflows
-- Workflow jobs (those that have run, or whose task is a workflow of the caller's app),
-- newest first, optionally by status.
SELECT {job_columns}
FROM pgqueue.jobs AS j
WHERE (EXISTS (SELECT 1 FROM pgqueue.workflow_steps AS s WHERE s.workflow_id = j.id AND s.seq = 0)
       OR j.task = ANY(%(names)s::text[]))
  AND (%(status)s::text IS NULL OR j.status = %(status)s::text)
ORDER BY j.id DESC
LIMIT %(limit)s

-- name: workflow_children
-- The unfinished children of a workflow (cancelled with it).
SELECT child_id FROM pgqueue.workflow_steps
WHERE workflow_id = %(id)s AND kind = 'child' AND finished_at IS NULL AND child_id IS NOT NULL

-- name: workflow_block_on
-- run_task: the workflow depends on its child (pgqueue.block_on, migration 0004, locks
-- the child's row until commit: a child finishing meanwhile is seen finished), after
-- workflow_run_on_failure.
SELECT pgqueue.block_on(%(id)s, ARRAY[%(child)s]::bigint[])

-- name: workflow_run_on_failure
-- The workflow runs on when a child fails: the failure is the step's, not a cancellation.
UPDATE pgqueue.jobs SET on_parent_failure = 'run'
WHERE id = %(id)s AND on_parent_failure IS DISTINCT FROM 'run'

-- name: workflow_child_state
-- The child's outcome so far (its row is locked by workflow_block_on).
SELECT status, result::text, task, last_error FROM pgqueue.jobs WHERE id = %(child)s

-- name: workflow_block
-- End the attempt waiting for the child: 'blocked' while it is unfinished (the
-- dependencies trigger queues the workflow when it ends), attempt not counted.
UPDATE pgqueue.jobs
SET status = CASE WHEN pending_parents > 0 THEN 'blocked' ELSE 'queued' END,
    run_at = now(),
    attempts = attempts - 1,
    leased_until = NULL,
    lease_token = NULL,
    worker_id = NULL
WHERE id = %(id)s AND status = 'running' AND lease_token = %(token)s::uuid
RETURNING id, status

-- name: workflow_step_timeout
-- A transactional sync step's timeout bounds its statements (its thread cannot be stopped).
SELECT set_config('statement_timeout', %(ms)s, true)
