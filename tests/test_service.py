"""The thread-service contract every background loop shares: start, stop, backoff."""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Iterator

import pytest
from test_worker_app import wait_until

import pgqueue
from pgqueue.maintenance import Pruner, Rescuer, Scheduler
from pgqueue.maintenance._service import RECONNECT_MAX, Backoff, Service
from pgqueue.worker._heartbeat import Heartbeat


@pytest.fixture
def app(clean_db: str) -> Iterator[pgqueue.App]:
    with pgqueue.App(clean_db) as app:
        yield app


def _services(app: pgqueue.App) -> list[Service]:
    beat = Heartbeat(app.database, worker_id="w", queues=["default"], concurrency=1,
                     interval=60, held=list, on_lost=print, on_cancel=print)  # fmt: skip
    return [Rescuer(app.database, interval=60), Pruner(app.database, interval=60),
            Scheduler(app.database, app.registry, sync=False, poll_interval=60), beat]  # fmt: skip


def test_every_service_starts_without_blocking_and_stops_idempotently(app: pgqueue.App) -> None:
    def threads() -> list[str]:
        return [t.name for t in threading.enumerate()]

    before = threads()
    services = _services(app)
    signatures = {str(inspect.signature(type(s).stop)) for s in services}
    assert signatures == {"(self, timeout: 'float | None' = None) -> 'None'"}
    for service in services:
        service.stop()  # before start: harmless
        started = time.monotonic()
        service.start()
        service.start()  # a second start does not add a thread
        assert time.monotonic() - started < 1.0  # returned at once: the pass runs elsewhere
        assert service.running
    wait_until(lambda: services[3].beats == 1)  # type: ignore[attr-defined]
    after = threads()
    for name in ("rescuer", "pruner", "scheduler", "heartbeat"):
        assert after.count(f"pgqueue-{name}") == before.count(f"pgqueue-{name}") + 1
    for service in services:
        service.stop(timeout=10)
        service.stop()
        assert not service.running


def test_stop_from_inside_the_loop_only_asks(app: pgqueue.App) -> None:
    class Once(Service):
        passes = 0

        def loop_pass(self) -> float:
            self.passes += 1
            self.stop()  # as a signal handler of `pgqueue scheduler` would
            return 0.0

    once = Once(app.database, interval=60)
    once.run()  # returns: the stop was seen after the pass
    assert once.passes == 1 and not once.running


def test_backoff_doubles_with_jitter_up_to_its_cap() -> None:
    backoff = Backoff()
    delays = [backoff.next() for _ in range(40)]
    assert all(0 < d <= RECONNECT_MAX for d in delays)
    assert delays[0] <= backoff.low and max(delays[-5:]) > RECONNECT_MAX / 2
    backoff.reset()
    assert backoff.next() <= backoff.low
