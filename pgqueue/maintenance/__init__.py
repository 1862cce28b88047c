"""Maintenance loops, one module each: start() does not block, stop() is idempotent.

Any number of processes may run them: each pass coordinates through an
advisory lock (or row locks), never by assuming a single process. Workers run
them for you (``pgqueue.worker``): the rescuer in every worker process, the
scheduler and the pruner in one process per supervisor.

    _service.py   what they share: the thread, stop(timeout=None), one reconnecting
                  connection with capped backoff (the heartbeat uses it too)
    rescuer.py    expired leases back to queued (or dead)
    scheduler.py  cron fires, each exactly once
    pruner.py     finished jobs past their retention
"""

from pgqueue.maintenance.pruner import Pruner
from pgqueue.maintenance.rescuer import Rescuer
from pgqueue.maintenance.scheduler import Scheduler

__all__ = ["Pruner", "Rescuer", "Scheduler"]
