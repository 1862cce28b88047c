-- name: grant_roles
-- `pgqueue migrate --grant`: create pgqueue's four group roles (NOLOGIN) and give each
-- what it needs, in one transaction; idempotent, and re-run after every upgrade (README,
-- "Least privilege: database roles"). Plain SQL: run it with psql as it stands, or let
-- `--grant --role-prefix P` rename pgqueue_* to P_*. Run as a superuser, or as the owner
-- of the pgqueue schema with CREATEROLE (it then becomes a member of pgqueue_admin).
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['pgqueue_producer', 'pgqueue_worker', 'pgqueue_reader',
                             'pgqueue_admin'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- created meanwhile by another database's --grant: roles are cluster-wide
            END;
        END IF;
    END LOOP;
    IF NOT pg_has_role(current_user, 'pgqueue_admin', 'MEMBER') THEN
        -- A schema owner that is no superuser keeps its rights through the role it hands them to.
        EXECUTE format('GRANT %I TO %I', 'pgqueue_admin', current_user);
    END IF;
END
$$;

-- pgqueue_admin owns the schema and everything in it: it alone can migrate (ALTER needs
-- ownership), and `pgqueue migrate` run by any member creates new objects as pgqueue_admin,
-- so the default privileges below apply to them.
ALTER SCHEMA pgqueue OWNER TO pgqueue_admin;
DO $$
DECLARE
    obj text;
BEGIN
    FOR obj IN  -- tables, views, sequences not owned by a table (identity ones follow it)
        SELECT c.oid::regclass::text FROM pg_catalog.pg_class AS c
        WHERE c.relnamespace = 'pgqueue'::regnamespace
          AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
          AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend AS d
                          WHERE d.classid = 'pg_catalog.pg_class'::regclass
                            AND d.objid = c.oid AND d.deptype IN ('a', 'i'))
    LOOP
        EXECUTE format('ALTER TABLE %s OWNER TO %I', obj, 'pgqueue_admin');
    END LOOP;
    FOR obj IN
        SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc AS p
        WHERE p.pronamespace = 'pgqueue'::regnamespace
    LOOP
        EXECUTE format('ALTER ROUTINE %s OWNER TO %I', obj, 'pgqueue_admin');
    END LOOP;
    FOR obj IN  -- enums and domains (a table's row type follows its table)
        SELECT t.oid::regtype::text FROM pg_catalog.pg_type AS t
        WHERE t.typnamespace = 'pgqueue'::regnamespace AND t.typtype IN ('e', 'd')
    LOOP
        EXECUTE format('ALTER TYPE %s OWNER TO %I', obj, 'pgqueue_admin');
    END LOOP;
END
$$;

-- Start from nothing, so that a re-run after an upgrade also takes back what this
-- release no longer grants (REVOKE on a table takes its column privileges too).
REVOKE ALL ON ALL TABLES IN SCHEMA pgqueue FROM pgqueue_producer, pgqueue_worker, pgqueue_reader;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA pgqueue FROM pgqueue_producer, pgqueue_worker, pgqueue_reader;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA pgqueue FROM pgqueue_producer, pgqueue_worker, pgqueue_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE pgqueue_admin IN SCHEMA pgqueue
    REVOKE ALL ON TABLES FROM pgqueue_producer, pgqueue_worker, pgqueue_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE pgqueue_admin IN SCHEMA pgqueue
    REVOKE ALL ON SEQUENCES FROM pgqueue_producer, pgqueue_worker, pgqueue_reader;

GRANT USAGE ON SCHEMA pgqueue TO pgqueue_producer, pgqueue_worker, pgqueue_reader;
-- Every command checks the schema's revision first.
GRANT SELECT ON public.pgqueue_alembic_version
    TO pgqueue_producer, pgqueue_worker, pgqueue_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.pgqueue_alembic_version TO pgqueue_admin;

-- pgqueue_producer: enqueue only (single, bulk COPY, unique keys, max_depth), on its own
-- connection and in its own transactions. It inserts the enqueue columns and reads back
-- only what enqueue returns: never args, kwargs, meta, result, errors, last_error or
-- progress of any job. A held unique key is looked up through
-- pgqueue.unique_holders (SECURITY DEFINER), which hides those columns from it.
-- A batch with dependencies (depends_on, flows) also writes its jobs' links and
-- initial state, its edges, and marks its existing parents (has_dependents, under
-- their row lock, reading back their status and task only).
GRANT INSERT (id, queue, task, args, kwargs, priority, run_at, max_attempts, unique_key,
              meta, unique_scope, status, flow_id, parent_ids, pending_parents,
              on_parent_failure, pass_result, has_dependents, finished_at, last_error, errors)
    ON pgqueue.jobs TO pgqueue_producer;
GRANT SELECT (id, queue, task, priority, status, run_at, unique_key, unique_scope, created_at,
              flow_id, parent_ids)
    ON pgqueue.jobs TO pgqueue_producer;
GRANT UPDATE (has_dependents) ON pgqueue.jobs TO pgqueue_producer;
GRANT INSERT ON pgqueue.job_dependencies TO pgqueue_producer;
GRANT USAGE ON SEQUENCE pgqueue.jobs_id_seq TO pgqueue_producer;  -- ids for a bulk COPY
GRANT SELECT ON pgqueue.queues TO pgqueue_producer;               -- which queues have max_depth
GRANT EXECUTE ON FUNCTION pgqueue.lock_depth(text[]),
                          pgqueue.unique_holders(text[], text[], text[], text[])
    TO pgqueue_producer;

-- pgqueue_worker: claim, heartbeat, complete, release, rescue, prune, cron, the workers
-- table, the jobs its tasks enqueue, and the operators' job commands (retry, cancel,
-- replay, purge, cron add/pause/remove): it reads and writes every table of the schema
-- (those later migrations add too, as the default privileges below give them), but for
-- the queue controls (pause, limits), which are pgqueue_admin's: of pgqueue.queues the
-- worker writes only a queue's rate-limit window. No DDL.
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA pgqueue TO pgqueue_worker;
REVOKE INSERT, UPDATE, DELETE ON pgqueue.queues FROM pgqueue_worker;
GRANT UPDATE (rate_window_start, rate_window_count) ON pgqueue.queues TO pgqueue_worker;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA pgqueue TO pgqueue_worker;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA pgqueue TO pgqueue_worker;

-- pgqueue_reader: read everything (the dashboard with --read-only, stats, job lookups,
-- job.wait()); write nothing.
GRANT SELECT ON ALL TABLES IN SCHEMA pgqueue TO pgqueue_reader;

-- Tables a later migration creates (run by pgqueue_admin): readable by the reader and
-- the worker, writable by the worker, at once. The producer gets nothing by default:
-- what it may touch is listed above, by hand, and re-applied by re-running --grant.
ALTER DEFAULT PRIVILEGES FOR ROLE pgqueue_admin IN SCHEMA pgqueue
    GRANT SELECT ON TABLES TO pgqueue_reader, pgqueue_worker;
ALTER DEFAULT PRIVILEGES FOR ROLE pgqueue_admin IN SCHEMA pgqueue
    GRANT INSERT, UPDATE, DELETE ON TABLES TO pgqueue_worker;
ALTER DEFAULT PRIVILEGES FOR ROLE pgqueue_admin IN SCHEMA pgqueue
    GRANT USAGE, SELECT ON SEQUENCES TO pgqueue_worker

-- name: migration_role
-- The role `pgqueue migrate` runs as: the owner of the pgqueue schema, when the session
-- is another role that belongs to it (after --grant: pgqueue_admin), so that what a
-- migration creates belongs to that role and gets its default privileges.
SELECT n.nspowner::regrole::text
FROM pg_catalog.pg_namespace AS n
WHERE n.nspname = 'pgqueue'
  AND n.nspowner <> (SELECT r.oid FROM pg_catalog.pg_roles AS r WHERE r.rolname = current_user)
  AND pg_has_role(current_user, n.nspowner, 'MEMBER')

-- name: worker_privileges
-- What the session's role lacks of what any worker's claim loop needs ("UPDATE on
-- pgqueue.jobs"): a supervisor checks before it starts children that would only fail.
-- Tables that do not exist (no schema yet) are skipped: the worker reports that itself.
SELECT need.privilege || ' on ' || need.name
FROM (VALUES ('pgqueue.jobs', 'SELECT'), ('pgqueue.jobs', 'UPDATE'),
             ('pgqueue.workers', 'INSERT'), ('pgqueue.workers', 'UPDATE'),
             ('pgqueue.queues', 'SELECT')) AS need(name, privilege)
WHERE NOT has_table_privilege(to_regclass(need.name), need.privilege)
