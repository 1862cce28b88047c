"""The ``pgqueue`` command line: thin over the public API.

Each command group lives in its own module and registers on ``cli``.
User mistakes print one line and exit non-zero, never a traceback.
"""

from __future__ import annotations

import sys

# Command modules register themselves on `cli` when imported.
from pgqueue.cli import _admin, _bench, _cron, _demo, _flows, _ops, _web, _worker, _workflows  # noqa: F401
from pgqueue.cli._base import cli, run

__all__ = ["cli", "main"]


def main() -> None:
    sys.exit(run())
