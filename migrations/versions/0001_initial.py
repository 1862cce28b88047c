"""Schema v1: jobs, schedules, workers, views.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UPGRADE = """
CREATE SCHEMA IF NOT EXISTS pgqueue;

CREATE TABLE pgqueue.jobs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue            text        NOT NULL DEFAULT 'default',
    task             text        NOT NULL,
    args             jsonb       NOT NULL DEFAULT '[]',
    kwargs           jsonb       NOT NULL DEFAULT '{}',
    priority         smallint    NOT NULL DEFAULT 0,
    status           text        NOT NULL DEFAULT 'queued',
    run_at           timestamptz NOT NULL DEFAULT now(),
    attempts         integer     NOT NULL DEFAULT 0,
    max_attempts     integer     NOT NULL DEFAULT 3,
    leased_until     timestamptz,
    lease_token      uuid,
    worker_id        text,
    unique_key       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    last_error       text,
    errors           jsonb       NOT NULL DEFAULT '[]',
    result           jsonb,
    progress         jsonb,
    cancel_requested boolean     NOT NULL DEFAULT false,
    meta             jsonb       NOT NULL DEFAULT '{}',
    CONSTRAINT jobs_status_check CHECK (
        status IN ('queued', 'running', 'succeeded', 'failed', 'dead', 'cancelled')),
    CONSTRAINT jobs_attempts_check CHECK (attempts >= 0 AND max_attempts >= 1),
    CONSTRAINT jobs_args_check CHECK (jsonb_typeof(args) = 'array'),
    CONSTRAINT jobs_kwargs_check CHECK (jsonb_typeof(kwargs) = 'object')
) WITH (fillfactor = 80);

-- The claim reads exactly this predicate and this order, per queue.
CREATE INDEX jobs_claim_idx ON pgqueue.jobs (queue, priority DESC, run_at, id)
    WHERE status IN ('queued', 'failed');

-- At most one unfinished job per unique key.
CREATE UNIQUE INDEX jobs_unique_key_idx ON pgqueue.jobs (unique_key)
    WHERE unique_key IS NOT NULL AND status IN ('queued', 'running', 'failed');

-- The rescuer scans running jobs; leased_until is left out of every index
-- because the heartbeat rewrites it (keeps those updates HOT).
CREATE INDEX jobs_running_idx ON pgqueue.jobs (id) WHERE status = 'running';

-- Pruning and dead-letter browsing by finish time.
CREATE INDEX jobs_finished_idx ON pgqueue.jobs (status, finished_at)
    WHERE status IN ('succeeded', 'dead', 'cancelled');

ALTER TABLE pgqueue.jobs SET (
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 1
);

CREATE TABLE pgqueue.schedules (
    name         text PRIMARY KEY,
    cron         text        NOT NULL,
    timezone     text        NOT NULL DEFAULT 'UTC',
    task         text        NOT NULL,
    args         jsonb       NOT NULL DEFAULT '[]',
    kwargs       jsonb       NOT NULL DEFAULT '{}',
    queue        text        NOT NULL DEFAULT 'default',
    priority     smallint    NOT NULL DEFAULT 0,
    max_attempts integer     NOT NULL DEFAULT 3,
    missed       text        NOT NULL DEFAULT 'latest',
    max_catchup  integer     NOT NULL DEFAULT 10,
    grace_seconds double precision NOT NULL DEFAULT 60,
    enabled      boolean     NOT NULL DEFAULT true,
    declared     boolean     NOT NULL DEFAULT false,
    shard        integer     NOT NULL DEFAULT 0,
    next_run_at  timestamptz,
    last_run_at  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT schedules_missed_check CHECK (missed IN ('skip', 'latest', 'all')),
    CONSTRAINT schedules_catchup_check CHECK (max_catchup >= 1)
);

CREATE INDEX schedules_due_idx ON pgqueue.schedules (shard, next_run_at)
    WHERE enabled AND next_run_at IS NOT NULL;

CREATE TABLE pgqueue.workers (
    id           text PRIMARY KEY,
    hostname     text        NOT NULL,
    pid          integer     NOT NULL,
    queues       text[]      NOT NULL,
    concurrency  integer     NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);

-- Per-queue controls; a queue without a row has no limits.
CREATE TABLE pgqueue.queues (
    name                   text PRIMARY KEY,
    paused                 boolean NOT NULL DEFAULT false,
    max_running            integer CHECK (max_running >= 0),
    rate_limit             integer CHECK (rate_limit >= 0),
    rate_period            double precision NOT NULL DEFAULT 1 CHECK (rate_period > 0),
    rate_window_start      timestamptz,
    rate_window_count      integer NOT NULL DEFAULT 0,
    max_depth              integer CHECK (max_depth >= 0),
    retention              double precision CHECK (retention >= 0),
    dead_retention         double precision CHECK (dead_retention >= 0),
    updated_at             timestamptz NOT NULL DEFAULT now()
);

CREATE VIEW pgqueue.queue_stats AS
SELECT queue,
       status,
       count(*) AS count,
       CASE WHEN status IN ('queued', 'failed')
            THEN max(now() - run_at) FILTER (WHERE run_at <= now())
       END AS oldest_waiting_age
FROM pgqueue.jobs
GROUP BY queue, status;

CREATE VIEW pgqueue.dead_jobs AS
SELECT id, queue, task, args, kwargs, attempts, max_attempts, last_error, errors,
       created_at, finished_at
FROM pgqueue.jobs
WHERE status = 'dead';

CREATE VIEW pgqueue.live_workers AS
SELECT w.*, (SELECT count(*) FROM pgqueue.jobs j
             WHERE j.status = 'running' AND j.worker_id = w.id) AS running_jobs
FROM pgqueue.workers w
WHERE w.heartbeat_at > now() - interval '1 minute';
"""

DOWNGRADE = """
DROP VIEW IF EXISTS pgqueue.live_workers;
DROP VIEW IF EXISTS pgqueue.dead_jobs;
DROP VIEW IF EXISTS pgqueue.queue_stats;
DROP TABLE IF EXISTS pgqueue.queues;
DROP TABLE IF EXISTS pgqueue.workers;
DROP TABLE IF EXISTS pgqueue.schedules;
DROP TABLE IF EXISTS pgqueue.jobs;
DROP SCHEMA IF EXISTS pgqueue;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
