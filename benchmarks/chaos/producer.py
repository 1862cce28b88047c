"""The job stream: ``--jobs`` jobs, a quarter each of ``chaos.alo``, ``chaos.tx``,
``chaos.alo_async`` and ``chaos.tx_async``, enqueued
in small batches at a pace that spreads them over the planned run, so every
fault finds work waiting and running.

``deadline`` (a ``time.monotonic()`` value) is moved by the runner as scenarios
start; the rate is what is left over the time that is left. A batch whose
enqueue fails (the server is down, read-only, out of connections) is retried
until it goes in: a failure after the commit then enqueues the batch twice,
which the checks allow (both copies must succeed; each sequence number must).
"""

from __future__ import annotations

import threading
import time

from benchmarks.chaos.tasks import alo, alo_async, app, tx, tx_async

BATCH_MAX = 500
KINDS = (alo, tx, alo_async, tx_async)
TICK = 0.1


class Producer(threading.Thread):
    def __init__(self, total: int, deadline: float) -> None:
        super().__init__(name="chaos-producer", daemon=True)
        self.total = total
        self.deadline = deadline
        self.ids: list[int] = []
        self.enqueued = 0
        self.failures = 0
        self.finished_at: float | None = None
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(30)

    def run(self) -> None:
        last = time.monotonic()
        owed = 0.0
        while self.enqueued < self.total and not self._halt.is_set():
            now = time.monotonic()
            left = self.total - self.enqueued
            rate = left / max(1.0, self.deadline - now)
            owed += rate * (now - last)
            last = now
            n = min(left, BATCH_MAX, int(owed))
            if n > 0:
                seqs = range(self.enqueued, self.enqueued + n)
                specs = [KINDS[s % 4].job(s) for s in seqs]
                try:
                    jobs = app.enqueue_many(specs)
                except Exception:
                    self.failures += 1
                    self._halt.wait(0.2)
                    continue
                self.ids.extend(j.id for j in jobs)
                self.enqueued += n
                owed -= n
            self._halt.wait(TICK)
        self.finished_at = time.time()
