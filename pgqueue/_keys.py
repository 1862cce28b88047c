"""Notification channels and advisory-lock keys: one table, so none collide.

The SQL files name the channels literally (``pg_notify('pgqueue_jobs', …)``);
a test checks they match these constants.
"""

from __future__ import annotations

# Channels (LISTEN/NOTIFY).
JOBS_CHANNEL = "pgqueue_jobs"  # payload: a queue name with new ready work
DONE_CHANNEL = "pgqueue_done"  # payload: finished job ids, comma-separated
CANCEL_CHANNEL = "pgqueue_cancel"  # payload: ids of running jobs asked to cancel, comma-separated

# Advisory locks (session or transaction level, on pgqueue's own database).
MIGRATE_LOCK = 7250001  # serialises concurrent `pgqueue migrate` runs
RESCUER_LOCK = 7250002  # one rescuer pass at a time across all workers
SCHEDULER_LOCK = 7250003  # first of the scheduler's per-shard keys (key + shard)
PRUNER_LOCK = 7250004  # one pruner pass at a time
# Class of the per-queue max_depth locks, two-int form (class, hashtext(queue)),
# taken by pgqueue.lock_depth() (migration 0002 names the number literally).
QUEUE_DEPTH_LOCK = 7250005

LOCK_KEYS = {
    "migrate": MIGRATE_LOCK,
    "rescuer": RESCUER_LOCK,
    "scheduler": SCHEDULER_LOCK,
    "pruner": PRUNER_LOCK,
    "queue_depth": QUEUE_DEPTH_LOCK,
}
