"""The FastAPI example under a real uvicorn: enqueue in the request, an embedded worker,
and a real SIGTERM that stops the server promptly and the worker gracefully."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
import pytest
from test_metrics import free_port
from test_worker_app import scalar, wait_until

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "fastapi"


def call(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def up(port: int) -> bool:
    try:
        return call(port, "GET", "/openapi.json")[0] == 200
    except OSError:
        return False


def job_status(dsn: str, job_id: int) -> str:
    return str(scalar(dsn, "SELECT status FROM pgqueue.jobs WHERE id = %s", (job_id,)))


# `python app.py` (uvicorn.run) exits 0; the uvicorn command re-raises the SIGTERM it
# handled once it has shut down cleanly, so its status is "terminated by SIGTERM".
SERVERS = {
    "uvicorn.run": (["app.py"], 0),
    "uvicorn-cli": (["-m", "uvicorn", "app:api", "--app-dir", "."], -signal.SIGTERM),
}


@pytest.mark.parametrize("how", sorted(SERVERS))
def test_uvicorn_runs_jobs_and_stops_on_sigterm(clean_db: str, how: str) -> None:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": clean_db}
    args, expected_code = SERVERS[how]
    cmd = [sys.executable, *args, "--host", "127.0.0.1", "--port", str(port)]
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
    server = subprocess.Popen(cmd, cwd=EXAMPLE, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: up(port) or server.poll() is not None, timeout=30)
        assert server.poll() is None, "uvicorn exited at startup"

        # The request's transaction: committed, the embedded worker runs the job.
        status, placed = call(port, "POST", "/signups", {"email": "a@example.com"})
        assert status == 201
        wait_until(lambda: call(port, "GET", f"/jobs/{placed['job']}")[1]["status"] == "succeeded")
        assert call(port, "GET", f"/signups/{placed['signup']}")[1]["welcomed"] is True

        # Rolled back after the enqueue: neither the signup nor its job exists.
        jobs_before = scalar(clean_db, "SELECT count(*) FROM pgqueue.jobs")
        status, _ = call(port, "POST", "/signups", {"email": "b@example.invalid"})
        assert status == 422
        assert scalar(clean_db, "SELECT count(*) FROM pgqueue.jobs") == jobs_before
        assert scalar(clean_db, "SELECT count(*) FROM signups WHERE email LIKE '%.invalid'") == 0

        # SIGTERM while a job runs: the server exits promptly, the job finishes first.
        status, slow = call(port, "POST", "/signups", {"email": "c@example.com", "delay": 1.0})
        wait_until(lambda: job_status(clean_db, slow["job"]) == "running")
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=15)  # a worker holding the signals kept uvicorn alive
        log.seek(0)
        output = log.read()
        assert code == expected_code, output
        assert "Application shutdown complete" in output, output
        assert job_status(clean_db, slow["job"]) == "succeeded"
        assert scalar(clean_db, "SELECT count(*) FROM pgqueue.jobs WHERE status = 'running'") == 0
        assert scalar(clean_db, "SELECT count(*) FROM pgqueue.workers") == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
        log.close()
        with psycopg.connect(clean_db, autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS signups")
