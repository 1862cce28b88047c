"""``WorkerConfig``: how a worker runs, one value object with named defaults."""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from pgqueue._errors import ConfigurationError

if TYPE_CHECKING:
    from pgqueue._registry import Registry

DEFAULT_QUEUE = "default"
DEFAULT_CONCURRENCY = 10
DEFAULT_POLL_INTERVAL = 1.0  # seconds between claims when no notification arrives
POLL_JITTER = 0.25  # each poll wait is the interval times uniform(1 - j, 1 + j)
DEFAULT_SHUTDOWN_GRACE = 30.0  # seconds running jobs get to finish after SIGTERM
RESCUE_INTERVAL = 5.0  # seconds between rescuer passes (expired leases)
COMPLETER_BATCH = 1000  # outcomes per `complete` statement, at most
COMPLETER_LINGER = 0.002  # seconds the completer waits to gather a batch
FETCH_COOLDOWN = 0.0005  # seconds a busy worker lets more slots free up before claiming
# Claim-ahead: jobs a worker may hold claimed but unstarted beyond its free slots,
# per slot, when ``prefetch`` is not given: two, as at one per slot the claim
# batches were small enough to bound 16 slots (benchmarks/results/ANALYSIS.md).
PREFETCH_PER_SLOT = 2.0
HEARTBEAT_MAX = 10.0  # seconds between heartbeats, at most
DEFAULT_METRICS_HOST = "127.0.0.1"  # metrics are not for the world: opt in to more

# A supervised child that exits with this code asked to be replaced
# (it reached --max-tasks-per-child); any other non-zero exit is a crash.
RECYCLE_EXIT_CODE = 75
EXIT_OK = 0
EXIT_ABORTED = 1  # the grace period ran out or a second signal arrived


@dataclass(frozen=True)
class WorkerConfig:
    """Settings of one worker (or of each child of a supervisor).

    ``queues`` lists the queues to drain, strictly in that order (the first
    non-empty queue wins each claim); with ``weights`` a claim orders the
    queues by a weighted random draw instead (weighted fairness). ``None``
    means every queue the app's tasks declare, equally weighted.

    ``until_empty`` (``--burst``): exit once no job of these queues is
    unfinished, scheduled ones and retries included (paused queues aside), and
    nothing runs here. ``concurrency`` slots per process: sync tasks each take a
    task thread, async tasks run on the event loop.

    ``prefetch``: jobs claimed ahead beyond the free slots, held leased and
    unstarted until a slot frees up (``None``: two per slot; 0: none). See the
    README, "Workers".
    """

    queues: tuple[str, ...] | None = None
    weights: tuple[float, ...] | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    processes: int = 1
    max_tasks_per_child: int | None = None
    until_empty: bool = False  # burst: exit once the queues are drained
    shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE
    listen: bool = True  # False: poll only (PgBouncer in transaction pooling mode)
    poll_interval: float = DEFAULT_POLL_INTERVAL
    poll_jitter: float = POLL_JITTER
    heartbeat_interval: float | None = None  # None: a third of the shortest lease
    rescue: bool = True  # run the rescuer in this process (coordinated by advisory lock)
    rescue_interval: float = RESCUE_INTERVAL
    scheduler: bool = True  # upsert the app's schedules and run the cron scheduler (not in burst)
    pruner: bool = True  # delete finished jobs past their retention (not in burst)
    retention: float = 86_400.0  # pruner: seconds to keep succeeded/cancelled jobs
    dead_retention: float = 30 * 86_400.0  # pruner: seconds to keep dead jobs
    metrics_port: int | None = None  # serve Prometheus metrics (a supervisor: for all)
    metrics_host: str = DEFAULT_METRICS_HOST  # the address metrics listen on
    completer_batch: int = COMPLETER_BATCH
    completer_linger: float = COMPLETER_LINGER
    fetch_cooldown: float = FETCH_COOLDOWN
    # Claimed-but-unstarted jobs held beyond the free slots (0: none); None: two per slot.
    prefetch: int | None = None
    worker_id: str | None = None  # None: host:pid:random
    # SIGTERM/SIGINT (main thread only). None: only on an event loop of the worker's
    # own (run_worker, the CLI), never on a host's (run_worker_async: uvicorn keeps its own).
    install_signal_handlers: bool | None = None
    start_method: str | None = None  # supervisor: "fork" or "spawn"; None: fork on POSIX
    app_spec: str | None = None  # "module:attr", lets spawned children import the app
    max_tasks: int | None = None  # this process stops (recycle code) after this many jobs
    parent_pid: int | None = None  # stop when this process (the supervisor) goes away

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigurationError("concurrency must be >= 1")
        if self.processes < 1:
            raise ConfigurationError("processes must be >= 1")
        if self.prefetch is not None and self.prefetch < 0:
            raise ConfigurationError("prefetch must be >= 0")
        if self.max_tasks_per_child is not None and self.max_tasks_per_child < 1:
            raise ConfigurationError("max_tasks_per_child must be >= 1")
        if self.retention < 0 or self.dead_retention < 0:
            raise ConfigurationError("retention and dead_retention must be >= 0 seconds")
        if self.shutdown_grace < 0:
            raise ConfigurationError("shutdown_grace must be >= 0 seconds")
        if self.poll_interval <= 0:
            raise ConfigurationError("poll_interval must be > 0 seconds")
        if not 0 <= self.poll_jitter < 1:
            raise ConfigurationError("poll_jitter must be within [0, 1)")
        if self.queues is not None:
            if not self.queues or not all(isinstance(q, str) and q for q in self.queues):
                raise ConfigurationError("queues must be non-empty names")
            if len(set(self.queues)) != len(self.queues):
                raise ConfigurationError("a queue is listed twice")
        if self.weights is not None:
            if self.queues is not None and len(self.weights) != len(self.queues):
                raise ConfigurationError("give one weight per queue")
            if any(w <= 0 for w in self.weights):
                raise ConfigurationError("queue weights must be > 0")
        if self.start_method not in (None, "fork", "spawn"):
            raise ConfigurationError("start_method is 'fork' or 'spawn'")

    @property
    def prefetch_jobs(self) -> int:
        """The claim-ahead buffer's size: ``prefetch``, or its default for this concurrency."""
        if self.prefetch is not None:
            return self.prefetch
        return round(self.concurrency * PREFETCH_PER_SLOT)

    def with_(self, **changes: object) -> WorkerConfig:
        return replace(self, **changes)  # type: ignore[arg-type]

    def resolve(self, registry: Registry) -> WorkerConfig:
        """This config with the queues filled in from the app's tasks when unset."""
        if self.queues is not None:
            return self
        declared = [q for q in registry.queues() if q != DEFAULT_QUEUE]
        queues = (DEFAULT_QUEUE, *declared)
        # No order was given, so none is implied: equal shares, not strict priority.
        weights = (1.0,) * len(queues) if len(queues) > 1 else None
        return replace(self, queues=queues, weights=weights)

    def make_worker_id(self) -> str:
        if self.worker_id:
            return self.worker_id
        return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def parse_queues(text: str | None) -> tuple[tuple[str, ...] | None, tuple[float, ...] | None]:
    """``"critical,default"`` or ``"critical:3,default:1"`` -> (queues, weights or None)."""
    if text is None or not text.strip():
        return None, None
    queues: list[str] = []
    weights: list[float] = []
    weighted = False
    for item in text.split(","):
        name, sep, weight = item.strip().partition(":")
        if not name:
            raise ConfigurationError(f"empty queue name in {text!r}")
        queues.append(name)
        if sep:
            weighted = True
            try:
                weights.append(float(weight))
            except ValueError:
                raise ConfigurationError(f"queue weight must be a number: {item!r}") from None
        else:
            weights.append(1.0)
    return tuple(queues), (tuple(weights) if weighted else None)
