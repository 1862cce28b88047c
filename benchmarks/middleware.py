"""What middleware costs: enqueue and drain with none, a no-op ``on_enqueue``, OpenTelemetry.

    python -m benchmarks.middleware [--jobs 2000] [--repeat 3]

Each configuration enqueues ``--jobs`` jobs one by one (a round trip each),
then drains them with ``pgqueue.testing.drain`` (a real worker in this
process); the median of ``--repeat`` runs is printed. OpenTelemetry uses the
SDK with a ``SimpleSpanProcessor`` into an ``InMemorySpanExporter`` (every
span exported synchronously: an upper bound on the tracing cost).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import pgqueue
from benchmarks._db import fresh_database
from pgqueue import testing
from pgqueue._testdb import truncate
from pgqueue.otel import instrument


class Noop(pgqueue.Middleware):
    def on_enqueue(self, spec: pgqueue.JobSpec) -> pgqueue.JobSpec:
        return spec


def _otel(app: pgqueue.App) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    instrument(app, provider)


CONFIGS: dict[str, Callable[[pgqueue.App], object]] = {
    "none": lambda app: None,
    "noop on_enqueue": lambda app: app.add_middleware(Noop()),
    "opentelemetry": _otel,
}


def run(dsn: str, setup: Callable[[pgqueue.App], object], jobs: int) -> tuple[float, float]:
    """(enqueue jobs/s, drain jobs/s) of one run."""
    truncate(dsn)
    with pgqueue.App(dsn) as app:

        @app.task(name="bench.echo")
        def echo(i: int) -> int:
            return i

        setup(app)
        echo.enqueue(-1)
        testing.drain(app)  # warm-up: pools, plans
        t0 = time.perf_counter()
        for i in range(jobs):
            echo.enqueue(i)
        enqueue = jobs / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        ran = testing.drain(app)
        drain = ran / (time.perf_counter() - t0)
    return enqueue, drain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with fresh_database("pgqueue_bench_mw") as dsn:
        print(f"{'middleware':<16} {'enqueue jobs/s':>15} {'drain jobs/s':>13}")
        for name, setup in CONFIGS.items():
            runs = [run(dsn, setup, args.jobs) for _ in range(args.repeat)]
            enqueue = statistics.median(r[0] for r in runs)
            drain = statistics.median(r[1] for r in runs)
            print(f"{name:<16} {enqueue:>15,.0f} {drain:>13,.0f}")


if __name__ == "__main__":
    main()
