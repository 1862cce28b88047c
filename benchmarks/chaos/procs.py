"""Worker and scheduler processes: real ``pgqueue`` CLI processes, each in its own
process group, killed by their own pids only.

A :class:`Proc` is one command line (``pgqueue worker ...`` under a supervisor
when ``--processes`` > 1, or ``pgqueue scheduler``) with its log file; it can be
SIGKILLed as a group (the supervisor and its children: a host dying), have one
child SIGKILLed (the supervisor restarts it), be started again, and be stopped
(SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APP = "benchmarks.chaos.tasks:app"
APP_NAME = "pgqueue-chaos"  # application_name of every connection the processes open
STOP_GRACE = 20.0


def pgqueue_argv() -> list[str]:
    """The ``pgqueue`` command of this interpreter's environment."""
    return [sys.executable, "-m", "pgqueue"]


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


class Proc:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], logdir: Path,
                 prefix: list[str] | None = None) -> None:  # fmt: skip
        self.name = name
        self.argv = argv
        self.env = env
        self.prefix = prefix or []
        self.log_path = logdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        env = dict(os.environ)
        env.update(self.env)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        env["PGAPPNAME"] = APP_NAME  # libpq: every connection says who it is
        env["PYTHONUNBUFFERED"] = "1"
        log = self.log_path.open("ab")
        log.write(f"--- start {self.starts} at {time.time():.3f}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            [*self.prefix, *self.argv], cwd=ROOT, env=env, stdout=log, stderr=log,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        log.close()
        self.starts += 1

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def children(self) -> list[int]:
        return children_of(self.pid) if self.running() else []

    def kill_group(self) -> list[int]:
        """SIGKILL the process and its children at once; returns the pids killed."""
        if not self.running():
            return []
        pids = [self.pid, *self.children()]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        assert self.proc is not None
        self.proc.wait(10)
        return pids

    def kill_child(self, rng: random.Random) -> int | None:
        """SIGKILL one child (the supervisor restarts it); returns its pid."""
        kids = self.children()
        if not kids:
            return None
        pid = rng.choice(kids)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        return pid

    def stop(self, grace: float = STOP_GRACE) -> int | None:
        """SIGTERM, then SIGKILL to the group after ``grace``; the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait(10)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)  # nothing of ours stays behind
        return self.proc.returncode


def worker(name: str, dsn: str, logdir: Path, *, queues: str, processes: int,
           concurrency: int, lease: float, rescue_interval: float, work_ms: float,
           rescue: bool = True, prefix: list[str] | None = None) -> Proc:  # fmt: skip
    argv = [*pgqueue_argv(), "worker", APP, "--queues", queues,
            "--processes", str(processes), "--concurrency", str(concurrency),
            "--rescue-interval", str(rescue_interval), "--no-scheduler", "--no-pruner",
            "--shutdown-grace", "10", "--poll-interval", "0.5", "--log-level", "warning"]
    if not rescue:
        argv.append("--no-rescue")
    env = {"PGQUEUE_DSN": dsn, "CHAOS_LEASE": str(lease), "CHAOS_WORK_MS": str(work_ms)}
    return Proc(name, argv, env, logdir, prefix)


def scheduler(name: str, dsn: str, logdir: Path) -> Proc:
    argv = [*pgqueue_argv(), "scheduler", "--dsn", dsn, "--poll-interval", "0.5"]
    return Proc(name, argv, {"PGQUEUE_DSN": dsn}, logdir)
