"""``python -m benchmarks.chaos [--quick] [--jobs N] [--seed S]``."""

from __future__ import annotations

import sys

from benchmarks.chaos.runner import main

if __name__ == "__main__":
    sys.exit(main())
