"""``python -m benchmarks``: the whole suite (``make bench``); ``--quick``, ``--help``."""

from __future__ import annotations

import sys

from benchmarks.suite.runner import main

if __name__ == "__main__":
    sys.exit(main())
