"""A worker embedded in a host's event loop leaves the host's signals alone.

The host is a real uvicorn server, in a process of its own, that runs
``app.run_worker_async()`` in its lifespan; SIGTERM must stop uvicorn (its own
handler), whose lifespan shutdown then stops the worker gracefully. A worker on
its own loop (``app.run_worker()``) still handles SIGTERM itself.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import psycopg
from test_worker_app import wait_until

import pgqueue

HOST = '''
import asyncio
import contextlib
import logging
import os

import uvicorn

import pgqueue

logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s")
app = pgqueue.App(os.environ["DSN"])


@app.task(name="host.slow")
async def slow(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "done"


async def host(scope, receive, send):
    if scope["type"] == "lifespan":
        worker = None
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                worker = asyncio.create_task(app.run_worker_async(poll_interval=0.1))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                worker.cancel()  # a graceful stop: running jobs get the grace period
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
                print("host: worker stopped", flush=True)
                await send({"type": "lifespan.shutdown.complete"})
                return
    else:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


uvicorn.run(host, host="127.0.0.1", port=int(os.environ["PORT"]), lifespan="on")
'''

OWN_LOOP = '''
import os
import sys

import pgqueue

app = pgqueue.App(os.environ["DSN"])


@app.task(name="host.slow")
def slow(seconds: float) -> str:
    import time
    time.sleep(seconds)
    return "done"


sys.exit(app.run_worker(poll_interval=0.1))
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def status(dsn: str, job_id: int) -> str:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT status FROM pgqueue.jobs WHERE id = %s", (job_id,)).fetchone()
    assert row is not None
    return str(row[0])


def serving(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def start(script: str, tmp_path: Path, dsn: str, port: int = 0) -> subprocess.Popen[str]:
    path = tmp_path / "host.py"
    path.write_text(script)
    env = {**os.environ, "DSN": dsn, "PORT": str(port)}
    return subprocess.Popen(
        [sys.executable, str(path)], env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip


def stop(proc: subprocess.Popen[str], timeout: float) -> tuple[int | None, str]:
    """SIGTERM, then the exit code (None: still running after ``timeout``) and output."""
    proc.send_signal(signal.SIGTERM)
    try:
        code: int | None = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        code = None
        proc.kill()
        proc.wait(10)
    assert proc.stdout is not None
    return code, proc.stdout.read()


def test_uvicorn_host_shuts_down_on_sigterm_and_stops_the_worker(
    clean_db: str, tmp_path: Path
) -> None:
    with pgqueue.App(clean_db) as producer:
        job = producer.task_ref("host.slow").enqueue(1.5)
    port = free_port()
    proc = start(HOST, tmp_path, clean_db, port)
    try:
        wait_until(lambda: serving(port) and status(clean_db, job.id) == "running", timeout=20)
    except BaseException:
        proc.kill()
        raise

    code, output = stop(proc, timeout=20)

    # uvicorn's own handler ran: the host shut down (and, as uvicorn does, re-raised
    # the signal once its shutdown was complete).
    assert code in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output
    assert "host: worker stopped" in output
    assert "event=worker_stop" in output and "exit_code=0" in output  # a graceful stop ...
    assert status(clean_db, job.id) == "succeeded"  # ... let the running job finish
    assert not serving(port)


def test_a_worker_on_its_own_loop_still_handles_sigterm(clean_db: str, tmp_path: Path) -> None:
    with pgqueue.App(clean_db) as producer:
        job = producer.task_ref("host.slow").enqueue(1.0)
    proc = start(OWN_LOOP, tmp_path, clean_db)
    try:
        wait_until(lambda: status(clean_db, job.id) == "running", timeout=20)
    except BaseException:
        proc.kill()
        raise

    code, output = stop(proc, timeout=20)

    assert code == 0, output
    assert status(clean_db, job.id) == "succeeded"

