"""Command: bench (the pgqueue-only part of ``make bench``).

Runs the suite in ``benchmarks/`` (a source checkout: the folder is not in the
wheel) without the peers: enqueue against raw psycopg, drain against the
PostgreSQL ceiling loop, idle latency, backlog, mixed, and the profile. The
peer comparison is ``make bench`` (``python -m benchmarks``).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Annotated

import typer

from pgqueue.cli._base import DsnOption, cli, fail

SECTIONS = "enqueue,drain,ceiling,latency,backlog,mixed,profile"


def _runner() -> ModuleType:
    try:
        return importlib.import_module("benchmarks.suite.runner")
    except ImportError:
        pass
    checkout = Path(__file__).resolve().parents[2]
    if not (checkout / "benchmarks" / "suite" / "runner.py").is_file():
        raise fail(
            "pgqueue bench runs from a source checkout: the benchmarks/ folder is not "
            "installed with the package"
        )
    sys.path.insert(0, str(checkout))
    return importlib.import_module("benchmarks.suite.runner")


@cli.command()
def bench(
    quick: Annotated[
        bool, typer.Option("--quick", help="The quick profile (< 2 minutes).")
    ] = False,
    profile: Annotated[
        str, typer.Option(help="default (< 10 minutes), quick, or tiny (proves the harness).")
    ] = "default",
    only: Annotated[str | None, typer.Option(help=f"Some sections of: {SECTIONS}.")] = None,
    runs: Annotated[int | None, typer.Option(help="Runs per figure (median, min, max).")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Results folder (default benchmarks/results).")
    ] = None,
    dsn: DsnOption = None,
) -> None:
    """Benchmark pgqueue on a database it creates; writes JSON, Markdown and a chart.

    --dsn names the server (a maintenance database such as postgres) to create the
    benchmark databases on; else $PGQUEUE_BENCH_DSN, the local server, or a
    throwaway cluster.
    """
    if profile not in ("default", "quick", "tiny"):
        raise fail("--profile must be one of: default, quick, tiny")
    argv = ["--profile", profile]
    if quick:
        argv.append("--quick")
    for flag, value in (("--only", only), ("--runs", runs), ("--out", out), ("--dsn", dsn)):
        if value is not None:
            argv += [flag, str(value)]
    raise typer.Exit(_runner().main(argv, prog="pgqueue bench", peers=False))
