"""Command: demo."""

from __future__ import annotations

from typing import Annotated

import typer

from pgqueue._demo import run_demo
from pgqueue.cli._base import DsnOption, cli


@cli.command()
def demo(
    dsn: DsnOption = None,
    verbose: Annotated[bool, typer.Option("--verbose", help="Show the worker's log.")] = False,
) -> None:
    """Enqueue example jobs (retries, a dead letter, async, delayed) and run them."""
    raise typer.Exit(run_demo(dsn, verbose=verbose))
