"""The Django example's own test-suite (pytest-django), run as its users run it.

It runs in a subprocess because pytest-django configures Django for a whole
pytest session; it gets a database name of its own on the tests' server
(pytest-django creates and drops ``test_<name>``).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

from conftest import with_dbname

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "django"


def test_django_example_suite_passes(pg_dsn: str) -> None:
    name = f"pgqueue_test_{os.getpid()}_{secrets.token_hex(4)}_django"
    env = {**os.environ, "DATABASE_URL": with_dbname(pg_dsn, name)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q"],
        cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " passed" in proc.stdout and "failed" not in proc.stdout, proc.stdout
