"""Worker subprocesses: each started here, bounded in time, stopped by its own pid.

A worker is ``python -m benchmarks.suite.workers KIND CONFIG_JSON``. Stopping
is SIGTERM (every system under test shuts down gracefully on it), then, after
a grace period, SIGKILL to the process group we created for it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]  # the checkout: benchmarks/ and pgqueue/
STOP_GRACE = 15.0


class WorkerProcess:
    def __init__(self, kind: str, config: dict[str, Any], *, wrap: list[str] | None = None) -> None:
        self.kind = kind
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - kept open for the child
            prefix=f"bench-{kind}-", suffix=".log", delete=False
        )
        self.out = tempfile.NamedTemporaryFile(  # noqa: SIM115
            prefix=f"bench-{kind}-", suffix=".out", delete=False
        )
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        env.setdefault("PYTHONUNBUFFERED", "1")
        # `wrap` replaces the interpreter: a profiler command line ending in one.
        argv = [
            *(wrap or [sys.executable]),
            "-m",
            "benchmarks.suite.workers",
            kind,
            json.dumps(config),
        ]
        self.started = time.monotonic()
        self.killed = False
        self.terminated = False
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=self.out,
            stderr=self.log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own group: a stray child can be killed with it
            text=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def terminate(self) -> None:
        """One SIGTERM (a second one means "abort now" to most workers)."""
        if not self.terminated and self.running():
            self.terminated = True
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL to its group after the grace period."""
        if self.running():
            self.terminate()
            try:
                self.proc.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                self.killed = True
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, 0)  # children left behind in its group?
            os.killpg(self.proc.pid, signal.SIGKILL)

    def output(self) -> str:
        self.out.flush()
        return Path(self.out.name).read_text(errors="replace")

    def result(self) -> dict[str, Any]:
        """The JSON line a worker printed last on stdout (ceiling loops report this way)."""
        lines = [ln for ln in self.output().splitlines() if ln.startswith("{")]
        return dict(json.loads(lines[-1])) if lines else {}

    def log_tail(self, lines: int = 5) -> str:
        self.log.flush()
        text = Path(self.log.name).read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:])

    def close(self) -> None:
        for f in (self.log, self.out):
            f.close()
            with contextlib.suppress(OSError):
                os.unlink(f.name)


def wait_all(
    workers: list[WorkerProcess],
    deadline: float,
    *,
    done: Callable[[], bool] | None = None,
    tick: float = 0.05,
) -> bool:
    """Wait until every worker exited (or ``done()``), or the monotonic ``deadline``;
    True if they finished by themselves."""
    while time.monotonic() < deadline:
        if not any(w.running() for w in workers):
            return True
        if done is not None and done():
            return True
        time.sleep(tick)
    return False


def stop_all(workers: list[WorkerProcess]) -> None:
    for w in workers:
        w.terminate()
    for w in workers:
        w.stop()


def check_exit(workers: list[WorkerProcess]) -> str | None:
    """A failure description if a worker exited with an error, else None."""
    for w in workers:
        code = w.proc.returncode
        if w.killed:  # we killed it after the grace period: noted by the caller
            continue
        if code not in (0, None, -signal.SIGTERM, 75):
            return f"{w.kind} worker exited {code}: {w.log_tail()}"
    return None
