"""The worker's metrics endpoint listens on loopback unless told otherwise.

All of 127.0.0.0/8 is loopback on Linux: an endpoint bound to 127.0.0.1 cannot
be reached at 127.0.0.2, one bound to every address (0.0.0.0) could.
"""

from __future__ import annotations

import signal
import socket
import urllib.request

import pytest
from test_worker_app import prepare_tables, wait_until, worker_process


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(host: str, port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=2) as response:
            return b"pgqueue_worker_slots" in response.read()
    except OSError:
        return False


@pytest.mark.parametrize("processes", ["1", "2"])  # 2: the supervisor's endpoint
def test_metrics_bind_loopback_by_default(clean_db: str, processes: str) -> None:
    prepare_tables(clean_db)
    port = free_port()
    argv = ("--metrics-port", str(port), "--no-scheduler", "--processes", processes)
    with worker_process(clean_db, *argv) as worker:
        wait_until(lambda: scrape("127.0.0.1", port))
        assert not scrape("127.0.0.2", port)
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0


@pytest.mark.parametrize("processes", ["1", "2"])
def test_metrics_host_option(clean_db: str, processes: str) -> None:
    prepare_tables(clean_db)
    port = free_port()
    argv = ("--metrics-port", str(port), "--metrics-host", "127.0.0.2", "--no-scheduler",
            "--processes", processes)  # fmt: skip
    with worker_process(clean_db, *argv) as worker:
        wait_until(lambda: scrape("127.0.0.2", port))
        assert not scrape("127.0.0.1", port)
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0
