"""Celery with a Redis broker: what most Python teams run instead of a PostgreSQL queue.

Not a ``System`` (no SQL to read timings from): the steady-state workload
(``benchmarks/steady.py``) drives it through the same producer process and
reads its figures from the task itself. The broker is Debian's
``redis-server``, started by the bench on 127.0.0.1:6390 with no persistence
(``--save '' --appendonly no``) and stopped afterwards; when it is missing the
workload says so and skips Celery.

Worker: Celery's own (``app.worker_main``, the code ``celery -A ... worker``
runs) with the documented settings for many short, I/O-light tasks:

- ``-P threads``: the tasks do no CPU work, so the GIL is not what bounds
  them, and the thread pool hands a message to a task in-process, where the
  default prefork pool pipes every message to a child process and the result
  back (docs: "Concurrency"; prefork is the fit for CPU-bound tasks);
- ``--concurrency`` 16 or 64, as pgqueue;
- ``--prefetch-multiplier 32``: "If you have many short-running tasks, and
  throughput/round trip latency is important to you, this number should be
  large" (docs: "Optimizing", Prefetch Limits; the default is 4);
- no result backend (``task_ignore_result``), early acknowledgement (Celery's
  default): at-most-once on a crash, where pgqueue is at-least-once;
- ``--without-gossip --without-mingle --without-heartbeat``: one worker, no
  cluster chatter (docs: "Workers Guide").

Each task appends ``<wall time> <pickup ms>`` to a file per process (the
producer puts its wall clock in the message), so completions and pickup
latency come from the task, as the other systems' come from their tables.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PORT = 6390
QUEUE = "bench"
PREFETCH_MULTIPLIER = 32
BROKER = os.environ.get("BENCH_CELERY_BROKER", f"redis://127.0.0.1:{PORT}/0")
LOG_DIR = "BENCH_CELERY_LOG_DIR"


def redis_server() -> str | None:
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )


def missing() -> str | None:
    """None when Celery can run here, else why not (shown in the report)."""
    try:
        import celery  # noqa: F401
        import redis  # noqa: F401
    except ImportError:
        return "not installed: celery[redis] (pip install -e '.[bench]')"
    if redis_server() is None:
        return "redis-server not found (Debian: apt-get install redis-server)"
    return None


def make_app() -> Any:
    from celery import Celery

    app = Celery("bench", broker=BROKER)
    app.conf.update(task_ignore_result=True, task_default_queue=QUEUE,
                    worker_prefetch_multiplier=PREFETCH_MULTIPLIER,
                    broker_connection_retry_on_startup=True)  # fmt: skip
    lock = threading.Lock()
    log: list[Any] = []

    @app.task(name="bench.sink")
    def sink(payload: str, enqueued_at: float) -> None:
        now = time.time()
        with lock:
            if not log:
                path = Path(os.environ[LOG_DIR], f"{os.getpid()}.log")
                log.append(path.open("a", buffering=1))
            log[0].write(f"{now:.6f} {(now - enqueued_at) * 1000:.3f}\n")

    return app


app = make_app()


@contextlib.contextmanager
def broker() -> Iterator[str]:
    """A throwaway redis-server on 127.0.0.1:PORT, stopped (by its pid) afterwards."""
    import redis

    binary = redis_server()
    assert binary is not None
    proc = subprocess.Popen(
        [binary, "--port", str(PORT), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    client = redis.Redis(host="127.0.0.1", port=PORT)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        yield BROKER
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def worker_argv(concurrency: int) -> list[str]:
    return ["worker", "-P", "threads", "--concurrency", str(concurrency),
            "--prefetch-multiplier", str(PREFETCH_MULTIPLIER), "-Q", QUEUE,
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            "--loglevel", "WARNING"]  # fmt: skip


def run_worker(config: dict[str, Any]) -> int:
    """``python -m benchmarks.suite.workers celery CONFIG``: Celery's own worker."""
    os.environ[LOG_DIR] = config["log_dir"]
    app.worker_main(argv=worker_argv(int(config["concurrency"])))
    return 0


def reset(log_dir: Path) -> None:
    import redis

    client = redis.Redis(host="127.0.0.1", port=PORT)
    client.flushall()
    client.close()
    for f in log_dir.glob("*.log"):
        f.unlink()


def window(log_dir: Path, start: float, end: float) -> dict[str, Any]:
    """Tasks finished in [start, end) (wall clock) and their pickup p50/p95/p99 (ms)."""
    from benchmarks.suite.stats import percentile

    waits = []
    for f in log_dir.glob("*.log"):
        for line in f.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and start <= float(parts[0]) < end:
                waits.append(float(parts[1]))
    waits.sort()
    out: dict[str, Any] = {"completed": len(waits)}
    for q in (50, 95, 99):
        out[f"pickup_p{q}_ms"] = round(percentile(waits, q), 2) if waits else None
    return out


class Feeder:
    """The load producer's side (``benchmarks/load.py``): Celery has no batch publish,
    so a batch is ``apply_async`` per job on one broker connection."""

    def __init__(self, dsn: str, payload: str) -> None:
        import redis

        self.sink = app.tasks["bench.sink"]
        self.payload = payload
        self.redis = redis.Redis(host="127.0.0.1", port=PORT)
        self.conn = app.connection_for_write()
        self.producer = app.amqp.Producer(self.conn)

    def enqueue(self, n: int) -> None:
        for _ in range(n):
            self.sink.apply_async((self.payload, time.time()), producer=self.producer)

    def waiting(self) -> int:
        return int(self.redis.llen(QUEUE))  # type: ignore[arg-type]

    def close(self) -> None:
        self.conn.release()
        self.redis.close()
