"""The supervisor: ``--processes P`` worker processes under one parent.

* Children are forked by default (POSIX): the app object is inherited, so it
  need not be importable by name; pass ``start_method="spawn"`` (and
  ``app_spec="module:attr"``) for a fresh interpreter per child. The parent
  resolves the DSN once (starting the embedded database if need be) and opens
  no connection itself; a child drops any pool it inherited.
* A child that crashes is restarted, with a backoff when it keeps crashing
  fast; a child that reaches ``max_tasks_per_child`` exits with code 75 and
  is replaced at once. In burst mode a child that exits 0 (its queues are
  drained) is not replaced.
* Child 0 runs the scheduler and the pruner (when enabled); every child runs
  a rescuer; the supervisor serves one ``/metrics`` for all children on
  ``metrics_port`` (``_metrics_mp``).
* SIGTERM/SIGINT to the parent: SIGTERM to every child (graceful), a second
  signal forwards a second SIGTERM (children abort). Children ignore SIGINT,
  so Ctrl-C in a terminal reaches them once, through the parent. A child
  whose parent vanished (kill -9) shuts itself down.
* Exit code: 0 when every child ended cleanly, else 1.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import time
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import TYPE_CHECKING, Any

from pgqueue._errors import ConfigurationError
from pgqueue._spec import import_object
from pgqueue._sql import query
from pgqueue.worker._config import EXIT_ABORTED, EXIT_OK, RECYCLE_EXIT_CODE, WorkerConfig
from pgqueue.worker._log import log
from pgqueue.worker._metrics_mp import SupervisorMetrics

if TYPE_CHECKING:
    from pgqueue._db import Database
    from pgqueue._registry import Registry

RESTART_BACKOFF_MIN = 0.5  # seconds before restarting a child that crashed fast ...
RESTART_BACKOFF_MAX = 30.0  # ... doubling up to this
HEALTHY_AFTER = 10.0  # a child that ran this long resets its backoff
SUPERVISE_TICK = 0.2  # seconds between checks


def import_ports(spec: str, dsn: str) -> tuple[Database, Registry]:
    """The database (at ``dsn``) and registry of the app ``module:attribute`` names."""
    obj = import_object(spec)
    database, registry = getattr(obj, "database", None), getattr(obj, "registry", None)
    if database is None or registry is None:
        raise ConfigurationError(f"{spec!r} is not a pgqueue.App")
    return database.with_dsn(dsn), registry


Ports = tuple["Database", "Registry"]


def _child_main(ports: Ports | str, dsn: str, config: WorkerConfig) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    from pgqueue.worker._worker import Worker

    if isinstance(ports, str):
        database, registry = import_ports(ports, dsn)
    else:
        database, registry = ports
        # Forked: the pools belong to the parent's threads and sockets.
        database.after_fork()
    sys.exit(Worker(database, registry, config).run())


class _Slot:
    def __init__(self, index: int) -> None:
        self.index = index
        self.process: BaseProcess | None = None
        self.started_at = 0.0
        self.backoff = 0.0
        self.restart_at = 0.0
        self.done = False
        self.last_code: int | None = None


class Supervisor:
    def __init__(self, database: Database, registry: Registry, config: WorkerConfig) -> None:
        self.database = database
        self.registry = registry
        self.config = config
        method = config.start_method or (
            "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        )
        if method == "spawn" and not config.app_spec:
            raise ConfigurationError("spawned worker processes need app_spec='module:attr'")
        self._ctx: Any = multiprocessing.get_context(method)
        self._method = method
        self._signals = 0
        self.restarts = 0
        self._metrics: SupervisorMetrics | None = None

    def run(self) -> int:
        dsn = self.database.resolve()
        missing = self._missing_privileges()
        if missing:
            # Each child would fail at its first claim and be restarted for ever.
            log(logging.ERROR, "worker_failed", error=f"the database role lacks {missing}",
                hint="GRANT pgqueue_worker TO the login (README: 'Least privilege')")  # fmt: skip
            return EXIT_ABORTED
        child = self.config.with_(
            processes=1,
            max_tasks_per_child=None,
            max_tasks=self.config.max_tasks_per_child,
            parent_pid=os.getpid(),
            worker_id=None,
            metrics_port=None,  # the supervisor serves the children's metrics
        )
        target: Ports | str = (
            (self.database, self.registry) if self._method == "fork" else str(self.config.app_spec)
        )
        slots = [_Slot(i) for i in range(self.config.processes)]
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        log(
            logging.INFO,
            "supervisor_start",
            processes=len(slots),
            method=self._method,
            pid=os.getpid(),
        )
        try:
            if self.config.metrics_port is not None:
                self._metrics = SupervisorMetrics(
                    self.database, self.config.metrics_port, self.config.metrics_host
                )
                self._metrics.start()
            for slot in slots:
                self._spawn(slot, target, dsn, child)
            forwarded = 0
            while not all(s.done for s in slots):
                sentinels = [s.process.sentinel for s in slots if s.process is not None]
                multiprocessing.connection.wait(sentinels, timeout=SUPERVISE_TICK)
                if self._signals > forwarded:
                    forwarded = self._signals
                    self._forward(slots)
                for slot in slots:
                    self._check(slot, target, dsn, child)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if self._metrics is not None:
                self._metrics.close()
        clean = all(s.last_code in (EXIT_OK, RECYCLE_EXIT_CODE) for s in slots)
        code = EXIT_OK if clean else EXIT_ABORTED
        log(logging.INFO, "supervisor_stop", exit_code=code, restarts=self.restarts)
        return code

    def _missing_privileges(self) -> str:
        """What a worker needs that the session's role lacks ("" when nothing, or when
        the database cannot be asked now: an outage the children wait out)."""
        try:
            with self.database.connect() as conn:
                rows = conn.execute(query("worker_privileges")).fetchall()
        except Exception:  # the children meet it and report it
            return ""
        return ", ".join(r[0] for r in rows)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1

    def _forward(self, slots: list[_Slot]) -> None:
        log(
            logging.INFO,
            "supervisor_signal",
            count=self._signals,
            action="abort" if self._signals > 1 else "graceful_stop",
        )
        for slot in slots:
            proc = slot.process
            if proc is not None and proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signal.SIGTERM)
            elif proc is None:
                slot.done = True  # waiting for a restart: stay down

    def _spawn(self, slot: _Slot, ports: Ports | str, dsn: str, config: WorkerConfig) -> None:
        first = slot.index == 0  # one scheduler and one pruner per supervisor
        port = config.metrics_port
        config = config.with_(
            scheduler=config.scheduler and first,
            pruner=config.pruner and first,
            metrics_port=None if port is None else port + slot.index,
        )
        proc = self._ctx.Process(
            target=_child_main, args=(ports, dsn, config), name=f"pgqueue-worker-{slot.index}"
        )
        proc.start()
        slot.process = proc
        slot.started_at = time.monotonic()

    def _check(self, slot: _Slot, ports: Ports | str, dsn: str, config: WorkerConfig) -> None:
        proc = slot.process
        now = time.monotonic()
        if proc is None:
            if not slot.done and now >= slot.restart_at:
                self._spawn(slot, ports, dsn, config)
            return
        if proc.is_alive():
            return
        proc.join()
        if self._metrics is not None:
            self._metrics.child_exited(proc.pid)
        code = proc.exitcode
        slot.last_code = code
        slot.process = None
        if self._signals or (code == EXIT_OK and self.config.until_empty):
            slot.done = True
            return
        self.restarts += 1
        if code in (EXIT_OK, RECYCLE_EXIT_CODE):
            log(logging.INFO, "child_recycled", index=slot.index, pid=proc.pid)
            slot.restart_at = now
            return
        lived = now - slot.started_at
        slot.backoff = (
            0.0
            if lived >= HEALTHY_AFTER
            else min(RESTART_BACKOFF_MAX, max(RESTART_BACKOFF_MIN, slot.backoff * 2))
        )
        slot.restart_at = now + slot.backoff
        log(
            logging.ERROR,
            "child_crashed",
            index=slot.index,
            pid=proc.pid,
            exit_code=code,
            restart_in=slot.backoff,
        )
