"""Job dependencies: blocked jobs, flows, parents released by their parents' outcome.

- ``jobs.status`` gains ``'blocked'``: waiting for parent jobs. Blocked jobs are
  outside ``jobs_claim_idx`` (its predicate stays ``status IN ('queued',
  'failed')``) and hold their unique key (the unique index is rebuilt with
  'blocked' in its predicate).
- ``jobs.flow_id`` (the flow a job belongs to: the id of the flow's first job;
  indexed where set), ``jobs.parent_ids`` (the declared parents, in declaration
  order: the order a chord's callback receives their results in),
  ``jobs.pending_parents`` (parents not finished yet, decremented under the
  child's row lock), ``jobs.on_parent_failure`` (NULL or 'cancel': cancel
  the job when a parent ends dead or cancelled; 'run': run it anyway),
  ``jobs.pass_result`` (NULL for a job without parents; 'none', 'previous'
  (the single parent's result as the first argument) or 'list' (the list of
  the parents' results, in ``parent_ids`` order, as the first argument)) and
  ``jobs.has_dependents`` (some job depends on this one: the trigger's cheap
  filter, so jobs without dependents never call its function).
- ``pgqueue.job_dependencies (parent_id, child_id)``: one row per edge, found
  from the parent by its primary key. An edge table rather than a GIN index
  on ``parent_ids``: a GIN index would be rewritten with the whole array on
  every non-HOT update of the child (a 10,000-parent chord callback, 10,000
  times), and every other job's updates would pay for the index too.
- Two triggers settle the dependents in the statement that records the
  parents' outcome, whatever wrote it: the completer, the rescuer, a release
  at shutdown, an admin cancel, a replay, plain SQL. ``jobs_note_parents``
  (BEFORE UPDATE OF status, per row) notes the parents: its WHEN clause only
  passes rows with ``has_dependents`` whose status moves to or from an
  outcome, so jobs without dependents never call a function.
  ``jobs_settle_dependents`` (AFTER UPDATE, per statement, only when something
  was noted) settles them all in one set-based pass (``pgqueue.settle_parents``):
  it releases children whose last parent succeeded (one NOTIFY per queue),
  cancels the dependents of a failed parent (level by level, no nested
  trigger chain) or counts down those declared 'run', and on a replay re-blocks
  the dependents its failure cancelled (``pgqueue.reblock_dependents``).
  Set-based matters: a batch of 100 completions in a 10,000-job chord's header
  counts the callback down once, by 100, not 100 times.
- ``pgqueue.block_on(child_id, parent_ids)``: make an existing job depend on
  more existing jobs (what durable workflows use to wait for a child job).

The new columns have constant defaults (no table rewrite), but the status check
is re-validated and the unique index rebuilt inside the migration's transaction
(writes to ``pgqueue.jobs`` wait for them): on a very large table, run it at a
quiet time.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE pgqueue.jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE pgqueue.jobs ADD CONSTRAINT jobs_status_check CHECK (
    status IN ('queued', 'blocked', 'running', 'succeeded', 'failed', 'dead', 'cancelled'));

ALTER TABLE pgqueue.jobs
    ADD COLUMN flow_id bigint,
    ADD COLUMN parent_ids bigint[],
    ADD COLUMN pending_parents integer NOT NULL DEFAULT 0,
    ADD COLUMN on_parent_failure text
        CONSTRAINT jobs_on_parent_failure_check CHECK (on_parent_failure IN ('cancel', 'run')),
    ADD COLUMN pass_result text
        CONSTRAINT jobs_pass_result_check CHECK (pass_result IN ('none', 'previous', 'list')),
    ADD COLUMN has_dependents boolean NOT NULL DEFAULT false;

CREATE INDEX jobs_flow_idx ON pgqueue.jobs (flow_id) WHERE flow_id IS NOT NULL;
-- Blocked jobs per queue (queue_stats, the dashboard) without reading finished ones.
CREATE INDEX jobs_blocked_idx ON pgqueue.jobs (queue) WHERE status = 'blocked';

DROP INDEX pgqueue.jobs_unique_key_idx;
CREATE UNIQUE INDEX jobs_unique_key_idx ON pgqueue.jobs (
    unique_key, unique_scope,
    (CASE unique_scope WHEN 'task' THEN task WHEN 'queue' THEN queue ELSE '' END))
    WHERE unique_key IS NOT NULL AND status IN ('queued', 'blocked', 'running', 'failed');

CREATE TABLE pgqueue.job_dependencies (
    parent_id bigint NOT NULL,
    child_id  bigint NOT NULL,
    PRIMARY KEY (parent_id, child_id)
);

-- Settle the dependents of parents whose status just changed (`parents`), in one
-- set-based pass per cascade level: a child whose parents succeeded counts down by
-- that many (and is released at 0); a parent that ended dead or cancelled cancels
-- its blocked children unless they declared on_parent_failure 'run' (those count
-- down too); cancelled children with dependents of their own are the next level.
-- Parents that run again (replayed, retried) block again what their failure
-- cancelled. Children are locked in id order first, so transactions settling
-- parents of the same child meet on its row lock, one after the other, and count
-- down from the latest row version (no snapshot race).
CREATE FUNCTION pgqueue.settle_parents(parents bigint[])
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    ok bigint[];      -- this level's parents that succeeded
    bad bigint[];     -- this level's parents that ended dead or cancelled
    rerun bigint[];   -- parents running again after a failure (replay, retry)
    next bigint[];    -- the children this level cancelled that have dependents
    woke bigint;
BEGIN
    SELECT coalesce(array_agg(id) FILTER (WHERE status = 'succeeded'), '{}'),
           coalesce(array_agg(id) FILTER (WHERE status IN ('dead', 'cancelled')), '{}'),
           array_agg(id) FILTER (WHERE status NOT IN ('succeeded', 'dead', 'cancelled'))
    INTO ok, bad, rerun
    FROM pgqueue.jobs
    WHERE id = ANY(parents);
    IF rerun IS NOT NULL THEN
        PERFORM pgqueue.reblock_dependents(rerun);
    END IF;
    WHILE cardinality(ok) + cardinality(bad) > 0 LOOP
        next := '{}';
        IF cardinality(bad) > 0 THEN
            -- Lock every child of this level in id order, then cancel those that
            -- cancel on a parent's failure (naming the parent).
            PERFORM 1 FROM pgqueue.jobs AS j
            WHERE j.id IN (SELECT d.child_id FROM pgqueue.job_dependencies AS d
                           WHERE d.parent_id = ANY(ok || bad))
              AND j.status NOT IN ('succeeded', 'dead', 'cancelled')
            ORDER BY j.id
            FOR UPDATE OF j;
            WITH culprits AS (
                SELECT d.child_id AS id, min(d.parent_id) AS parent
                FROM pgqueue.job_dependencies AS d
                WHERE d.parent_id = ANY(bad)
                GROUP BY d.child_id
            ), cancelled AS (
                UPDATE pgqueue.jobs AS j
                SET status = 'cancelled',
                    finished_at = now(),
                    last_error = 'ParentFailed: parent job ' || p.id || ' (' || p.task
                                 || ') ended ' || p.status,
                    errors = j.errors || jsonb_build_array(jsonb_build_object(
                        'attempt', j.attempts, 'at', now(), 'type', 'pgqueue.ParentFailed',
                        'parent', p.id,
                        'error', 'ParentFailed: parent job ' || p.id || ' (' || p.task
                                 || ') ended ' || p.status))
                FROM culprits AS c JOIN pgqueue.jobs AS p ON p.id = c.parent
                WHERE j.id = c.id AND j.status = 'blocked'
                  AND j.on_parent_failure IS DISTINCT FROM 'run'
                RETURNING j.id, j.has_dependents
            ), woken AS (
                SELECT pg_notify('pgqueue_done', string_agg(id::text, ','))
                FROM (SELECT id, (row_number() OVER ()) / 500 AS chunk FROM cancelled) AS c
                GROUP BY chunk
            )
            SELECT coalesce(array_agg(id) FILTER (WHERE has_dependents), '{}')
            INTO next
            FROM cancelled, (SELECT count(*) FROM woken) AS w;
        END IF;
        -- Count down the children still unfinished: one per succeeded parent, and
        -- one per failed parent for those declared 'run'; release those at zero.
        WITH edges AS (
            SELECT d.child_id AS id,
                   count(*) FILTER (WHERE d.parent_id = ANY(ok)) AS n_ok,
                   count(*) FILTER (WHERE d.parent_id = ANY(bad)) AS n_bad
            FROM pgqueue.job_dependencies AS d
            WHERE d.parent_id = ANY(ok || bad)
            GROUP BY d.child_id
        ), locked AS (
            SELECT j.id,
                   e.n_ok + CASE WHEN j.on_parent_failure = 'run' THEN e.n_bad ELSE 0 END AS n
            FROM pgqueue.jobs AS j JOIN edges AS e ON e.id = j.id
            WHERE j.status NOT IN ('succeeded', 'dead', 'cancelled')
            ORDER BY j.id
            FOR UPDATE OF j
        ), released AS (
            UPDATE pgqueue.jobs AS j
            SET pending_parents = greatest(j.pending_parents - l.n, 0),
                status = CASE WHEN j.status = 'blocked' AND j.pending_parents <= l.n
                              THEN 'queued' ELSE j.status END,
                run_at = CASE WHEN j.status = 'blocked' AND j.pending_parents <= l.n
                              THEN greatest(j.run_at, now()) ELSE j.run_at END
            FROM locked AS l
            WHERE j.id = l.id AND l.n > 0
            RETURNING j.status, j.queue, j.run_at
        )
        SELECT count(pg_notify('pgqueue_jobs', q.queue)) INTO woke
        FROM (SELECT DISTINCT queue FROM released
              WHERE status = 'queued' AND run_at <= now()) AS q;
        ok := '{}';
        bad := next;
    END LOOP;
END
$$;

-- A parent that failed and runs again (replayed, retried): the dependents its
-- failure cancelled are blocked again, recursively, and counted anew (parents
-- locked FOR SHARE: a parent finishing concurrently is seen in its final state).
-- A dependent with another parent still dead or cancelled stays cancelled.
CREATE FUNCTION pgqueue.reblock_dependents(parents bigint[])
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    frontier bigint[] := parents;
BEGIN
    WHILE frontier IS NOT NULL AND cardinality(frontier) > 0 LOOP
        WITH locked AS (
            SELECT j.id
            FROM pgqueue.jobs AS j
            WHERE j.id IN (SELECT d.child_id FROM pgqueue.job_dependencies AS d
                           WHERE d.parent_id = ANY(frontier))
              AND j.status = 'cancelled'
              AND j.errors -> -1 ->> 'type' = 'pgqueue.ParentFailed'
            ORDER BY j.id
            FOR UPDATE OF j
        ), parents AS (
            SELECT l.id, p.status
            FROM locked AS l
            JOIN pgqueue.job_dependencies AS d ON d.child_id = l.id
            JOIN pgqueue.jobs AS p ON p.id = d.parent_id
            FOR SHARE OF p
        ), counts AS (
            SELECT id, count(*) FILTER (WHERE status <> 'succeeded') AS pending,
                   count(*) FILTER (WHERE status IN ('dead', 'cancelled')) AS failed
            FROM parents
            GROUP BY id
        ), reblocked AS (
            UPDATE pgqueue.jobs AS j
            SET status = 'blocked', pending_parents = c.pending, finished_at = NULL
            FROM counts AS c
            WHERE j.id = c.id AND c.failed = 0 AND c.pending > 0
            RETURNING j.id, j.has_dependents
        )
        SELECT array_agg(id) FILTER (WHERE has_dependents) INTO frontier FROM reblocked;
    END LOOP;
END
$$;

-- Two triggers, so that a statement settles all its parents in one pass (a
-- completer batch finishing 100 jobs of a chord's header counts the callback down
-- once, by 100). The row trigger notes each parent in a transaction-local setting,
-- BEFORE the write (it runs after the row is locked and the statement's WHERE
-- rechecked, so a noted row is one that gets updated); its WHEN clause lets
-- through only rows with dependents whose status moves to or from an outcome, so
-- nearly all jobs never call it. The statement trigger fires only when something
-- was noted. The cascade's own updates are not noted again: the pass handles them.
CREATE FUNCTION pgqueue.note_parent()
RETURNS trigger LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF current_setting('pgqueue.settling', true) IS DISTINCT FROM 'on' THEN
        PERFORM set_config('pgqueue.settle',
                           coalesce(current_setting('pgqueue.settle', true), '') || NEW.id || ',',
                           true);
    END IF;
    RETURN NEW;
END
$$;

CREATE FUNCTION pgqueue.settle_dependents()
RETURNS trigger LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    noted bigint[] := string_to_array(
        rtrim(current_setting('pgqueue.settle', true), ','), ',')::bigint[];
BEGIN
    PERFORM set_config('pgqueue.settle', '', true);
    PERFORM set_config('pgqueue.settling', 'on', true);
    PERFORM pgqueue.settle_parents(noted);
    PERFORM set_config('pgqueue.settling', '', true);
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_note_parents
    BEFORE UPDATE OF status ON pgqueue.jobs
    FOR EACH ROW
    WHEN (NEW.has_dependents AND OLD.status IS DISTINCT FROM NEW.status
          AND (NEW.status IN ('succeeded', 'dead', 'cancelled')
               OR OLD.status IN ('dead', 'cancelled')))
    EXECUTE FUNCTION pgqueue.note_parent();

-- Not `UPDATE OF status`: a statement with two UPDATEs of the jobs table (such as
-- admin cancel) keeps only the last one's statement-trigger event, which must fire.
CREATE TRIGGER jobs_settle_dependents
    AFTER UPDATE ON pgqueue.jobs
    FOR EACH STATEMENT
    WHEN (coalesce(current_setting('pgqueue.settle', true), '') <> '')
    EXECUTE FUNCTION pgqueue.settle_dependents();

-- Make job `child_id` (unfinished) depend on existing jobs `parent_ids` too:
-- the parents are locked (FOR NO KEY UPDATE, through has_dependents) until
-- the caller commits, so one finishing meanwhile is seen in its final state.
-- Returns the child's pending_parents; a 'queued' or 'failed' child with
-- pending parents becomes 'blocked'. A child that is running stays so: its
-- caller sets it 'blocked' when it ends the attempt (pending_parents > 0).
-- A parent already dead or cancelled counts as finished here (it does not
-- cancel the child). Raises when a job does not exist.
CREATE FUNCTION pgqueue.block_on(child bigint, parents bigint[])
RETURNS integer LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    missing bigint;
    added integer;
    result integer;
BEGIN
    WITH locked AS (
        UPDATE pgqueue.jobs SET has_dependents = true
        WHERE id = ANY(parents) AND id <> child
        RETURNING id, status
    ), edges AS (
        INSERT INTO pgqueue.job_dependencies (parent_id, child_id)
        SELECT id, child FROM locked
        ON CONFLICT DO NOTHING
        RETURNING parent_id
    )
    SELECT count(*) FILTER (WHERE l.status NOT IN ('succeeded', 'dead', 'cancelled')),
           (SELECT min(p) FROM unnest(parents) AS p
            WHERE p NOT IN (SELECT id FROM locked) AND p <> child)
    INTO added, missing
    FROM locked AS l
    WHERE l.id IN (SELECT parent_id FROM edges);
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'job % does not exist', missing USING ERRCODE = 'foreign_key_violation';
    END IF;
    UPDATE pgqueue.jobs
    SET pending_parents = pending_parents + added,
        parent_ids = coalesce(parent_ids, ARRAY[]::bigint[])
                     || ARRAY(SELECT p FROM unnest(parents) AS p
                              WHERE p <> child AND NOT p = ANY(coalesce(parent_ids, '{}'))),
        pass_result = coalesce(pass_result, 'none'),
        status = CASE WHEN status IN ('queued', 'failed') AND pending_parents + added > 0
                      THEN 'blocked' ELSE status END
    WHERE id = child AND status NOT IN ('succeeded', 'dead', 'cancelled')
    RETURNING pending_parents INTO result;
    IF result IS NULL THEN
        RAISE EXCEPTION 'job % does not exist or has finished', child
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN result;
END
$$;

"""

DOWNGRADE = """
DROP FUNCTION pgqueue.block_on(bigint, bigint[]);
DROP TRIGGER jobs_settle_dependents ON pgqueue.jobs;
DROP TRIGGER jobs_note_parents ON pgqueue.jobs;
DROP FUNCTION pgqueue.settle_dependents();
DROP FUNCTION pgqueue.note_parent();
DROP FUNCTION pgqueue.reblock_dependents(bigint[]);
DROP FUNCTION pgqueue.settle_parents(bigint[]);
DROP TABLE pgqueue.job_dependencies;

-- Blocked jobs cannot exist below this revision: they go back to the queue.
UPDATE pgqueue.jobs SET status = 'queued' WHERE status = 'blocked';

DROP INDEX pgqueue.jobs_unique_key_idx;
CREATE UNIQUE INDEX jobs_unique_key_idx ON pgqueue.jobs (
    unique_key, unique_scope,
    (CASE unique_scope WHEN 'task' THEN task WHEN 'queue' THEN queue ELSE '' END))
    WHERE unique_key IS NOT NULL AND status IN ('queued', 'running', 'failed');

DROP INDEX pgqueue.jobs_flow_idx;
DROP INDEX pgqueue.jobs_blocked_idx;
ALTER TABLE pgqueue.jobs
    DROP COLUMN flow_id,
    DROP COLUMN parent_ids,
    DROP COLUMN pending_parents,
    DROP COLUMN on_parent_failure,
    DROP COLUMN pass_result,
    DROP COLUMN has_dependents;

ALTER TABLE pgqueue.jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE pgqueue.jobs ADD CONSTRAINT jobs_status_check CHECK (
    status IN ('queued', 'running', 'succeeded', 'failed', 'dead', 'cancelled'));
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
