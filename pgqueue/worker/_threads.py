"""Threads for sync tasks: a fixed set pulling jobs from one queue.

Not a ``ThreadPoolExecutor``: a sync task that overruns its timeout cannot be
interrupted, so its thread is *abandoned*: the job is failed at once, a new
thread takes the stuck one's place (capacity is kept) and the stuck thread
exits as soon as its task returns, its outcome discarded. Threads are daemons:
a worker that exits does not wait for abandoned ones.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from queue import Empty, SimpleQueue
from typing import Any

# Runs one item; returns False when the thread was abandoned meanwhile (it then exits).
RunItem = Callable[[Any], bool]


class ThreadRunner:
    def __init__(self, size: int, run: RunItem, name: str = "pgqueue-task") -> None:
        self._size = size
        self._run = run
        self._name = name
        self._queue: SimpleQueue[Any] = SimpleQueue()
        self._lock = threading.Lock()
        self._live = 0
        self._started = False
        self._count = 0

    def submit(self, item: Any) -> None:
        if not self._started:
            self._start()
        self._queue.put(item)

    def _start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        for _ in range(self._size):
            self._spawn()

    def _spawn(self) -> None:
        with self._lock:
            self._live += 1
            self._count += 1
            name = f"{self._name}-{self._count}"
        threading.Thread(target=self._work, name=name, daemon=True).start()

    def replace(self) -> None:
        """A thread is stuck on an abandoned job: add one in its place."""
        self._spawn()

    def drain(self) -> list[Any]:
        """Take back the items no thread has picked up yet."""
        items: list[Any] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except Empty:
                return items
            if item is not None:
                items.append(item)

    def stop(self) -> None:
        """Let idle threads exit (busy ones exit after their job); idempotent."""
        with self._lock:
            live = self._live
        for _ in range(live):
            self._queue.put(None)

    def _work(self) -> None:
        get = self._queue.get
        run = self._run
        try:
            while True:
                item = get()
                if item is None or not run(item):
                    return
        finally:
            with self._lock:
                self._live -= 1
