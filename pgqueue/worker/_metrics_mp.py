"""One ``/metrics`` endpoint for a supervisor and all its children.

With ``--processes N --metrics-port P`` the supervisor serves port P alone.
Its children record into prometheus_client's multiprocess files, in a
directory the supervisor creates (``PROMETHEUS_MULTIPROC_DIR``, inherited by
forked and spawned children alike) and removes when it stops. A scrape merges
every file:

* counters and histograms sum over every child that ever ran, so what a child
  counted survives its recycling (``--max-tasks-per-child``) or its crash;
* the slot gauges (``multiprocess_mode="livesum"``) sum over live children: a
  child's gauge file is dropped when it exits;
* queue depth and age are read from the database once per scrape, by the
  supervisor (as a single worker does).

A recycled child's counter and histogram files are folded into one archive
file per kind when it exits, so a long run with many recycled children does
not leave one file per child for every scrape to read.

Task code's own prometheus_client metrics, created in a child, are merged
into the same endpoint.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import shutil
import tempfile
import threading
from typing import TYPE_CHECKING, Any

from pgqueue.worker._log import log

if TYPE_CHECKING:
    from pgqueue._db import Database

DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own switch
CHILD_ENV = "PGQUEUE_METRICS_MULTIPROC"  # set by a supervisor: children record, not serve
ARCHIVE_PID = "archive"  # the file name part that stands for every exited child
FOLDED = ("counter", "histogram")  # kinds whose values outlive the process


def in_supervised_child() -> bool:
    """Whether this process should record metrics for its supervisor's endpoint."""
    return bool(os.environ.get(CHILD_ENV)) and bool(os.environ.get(DIR_ENV))


def enable_in_child() -> None:
    """Make the metrics this process creates from now on write the shared files.

    prometheus_client picks its value class when first imported; a forked child
    may have inherited the single-process one from its parent.
    """
    from prometheus_client import values

    values.ValueClass = values.MultiProcessValue()


class SupervisorMetrics:
    """The supervisor's side: the directory, the merged endpoint, the clean-up."""

    def __init__(self, database: Database, port: int, addr: str = "127.0.0.1") -> None:
        self.database = database
        self.port = port
        self.addr = addr
        self.path = ""
        self._server: Any = None
        self._saved: dict[str, str | None] = {}
        self._lock = threading.Lock()  # a scrape never reads a file while it is folded

    def start(self) -> None:
        from prometheus_client import start_http_server

        from pgqueue.metrics import aggregate_registry

        self.path = tempfile.mkdtemp(prefix="pgqueue-metrics-")
        for name, value in ((DIR_ENV, self.path), (CHILD_ENV, "1")):
            self._saved[name] = os.environ.get(name)
            os.environ[name] = value
        try:
            registry = aggregate_registry(self.database, self.path, self._lock)
            self._server = start_http_server(self.port, addr=self.addr, registry=registry)
        except BaseException:
            self.close()
            raise
        log(logging.INFO, "metrics_start", port=self.port, path=self.path)

    def child_exited(self, pid: int | None) -> None:
        """Drop the exited child's live gauges; fold its counters into the archive."""
        if pid is None or not self.path:
            return
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, self.path)
        with self._lock:
            self._fold_all(pid)

    def _fold_all(self, pid: int) -> None:
        for kind in FOLDED:
            dead = os.path.join(self.path, f"{kind}_{pid}.db")
            if os.path.exists(dead):
                try:
                    _fold(dead, os.path.join(self.path, f"{kind}_{ARCHIVE_PID}.db"))
                except (OSError, ValueError) as exc:  # keep the file: it is still merged
                    log(logging.WARNING, "metrics_fold_failed", file=dead, error=str(exc))

    def close(self) -> None:
        if self._server is not None:
            server, _thread = self._server
            server.shutdown()
            server.server_close()
            self._server = None
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved = {}
        if self.path:
            shutil.rmtree(self.path, ignore_errors=True)
            self.path = ""


def _fold(dead: str, archive: str) -> None:
    """Add every value of ``dead`` into ``archive``, then remove ``dead``.

    The caller holds the lock scrapes take, so no scrape sees a value twice.
    """
    from prometheus_client.mmap_dict import MmapedDict

    values = list(MmapedDict.read_all_values_from_file(dead))
    target = MmapedDict(archive)
    try:
        for key, value, timestamp, _pos in values:
            current, _ts = target.read_value(key)
            target.write_value(key, current + value, timestamp)
    finally:
        target.close()
    with contextlib.suppress(FileNotFoundError):
        os.remove(dead)


def leftover_files(path: str) -> list[str]:
    """The per-process files in ``path`` (for tests and diagnostics)."""
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(path, "*.db")))
