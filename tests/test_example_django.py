"""The Django example's own test-suite (pytest-django), run as its users run it.

Twice: with this venv's Python (on 3.10 and 3.11, Django 5.2 with the
``django-tasks`` backport), and on Django 6's built-in ``django.tasks`` in
``.venv-django6/``, a virtualenv of a CPython >= 3.12 built at the first run and
reused while ``pyproject.toml`` is unchanged. That interpreter is the first of:
this one, ``$PGQUEUE_PY312``, ``python3.13`` or ``python3.12`` on PATH (when they
run: pyenv's shims may not), ``$PYENV_ROOT`` or ``~/.pyenv``'s newest 3.12+; with
none the Django 6 tests are skipped, saying so.

Each suite runs in a subprocess because pytest-django configures Django for a
whole pytest session; it gets a database name of its own on the tests' server
(pytest-django creates and drops ``test_<name>``).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from conftest import with_dbname

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "django"
VENV6 = REPO / ".venv-django6"
# The project with its `django` extra (Django 6 there, by pyproject's markers),
# and the pytest plugins the example's pytest.ini configures.
VENV6_INSTALL = (
    "-e", ".[django]", "pytest>=8", "pytest-django>=4.8", "pytest-timeout>=2.2",
    "pytest-asyncio>=0.23",
)  # fmt: skip
PROBE = (
    "import platform, sys, sysconfig; print(platform.python_implementation(), "
    "*sys.version_info[:3], sysconfig.get_config_var('Py_GIL_DISABLED') or 0)"
)
# Which Django, and which tasks framework the backend was built on.
WHICH_DJANGO = """
import importlib.util, json, django
from pgqueue.contrib.django import PgQueueBackend, _compat
print(json.dumps({
    "version": list(django.VERSION[:3]),
    "backport": importlib.util.find_spec("django_tasks") is not None,
    "bases": [cls.__module__ for cls in PgQueueBackend.__mro__],
    "task_result": _compat.TaskResult.__module__,
}))
"""

Version = tuple[int, int, int]


def run_example_suite(python: str, pg_dsn: str) -> subprocess.CompletedProcess[str]:
    name = f"pgqueue_test_{os.getpid()}_{secrets.token_hex(4)}_django"
    env = {**os.environ, "DATABASE_URL": with_dbname(pg_dsn, name)}
    for key in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
        env.pop(key, None)
    proc = subprocess.run(
        [python, "-m", "pytest", "-q"],
        cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " passed" in proc.stdout and "failed" not in proc.stdout, proc.stdout
    return proc


def test_django_example_suite_passes(pg_dsn: str) -> None:
    run_example_suite(sys.executable, pg_dsn)


# -- Django 6 ----------------------------------------------------------------------


def probe(python: str) -> Version | None:
    """The version of the CPython >= 3.12 (with a GIL) at ``python``, or None."""
    try:
        proc = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    fields = proc.stdout.split()
    if proc.returncode or len(fields) != 5 or fields[0] != "CPython" or fields[4] != "0":
        return None
    version = (int(fields[1]), int(fields[2]), int(fields[3]))
    return version if version >= (3, 12) else None


def find_python312() -> str | None:
    """A CPython >= 3.12 to build the Django 6 venv with (see the module's docstring)."""
    if (
        sys.version_info >= (3, 12)
        and platform.python_implementation() == "CPython"
        and not sysconfig.get_config_var("Py_GIL_DISABLED")
    ):
        return sys.executable
    named = os.environ.get("PGQUEUE_PY312")
    if named:
        if probe(named) is None:
            pytest.fail(f"PGQUEUE_PY312={named!r} is not a CPython >= 3.12 that runs")
        return named
    for command in ("python3.13", "python3.12"):
        found = shutil.which(command)
        if found and probe(found):
            return found
    roots = {Path(os.environ.get("PYENV_ROOT") or "~/.pyenv").expanduser(),
             Path("~/.pyenv").expanduser()}  # fmt: skip
    candidates = [str(p) for root in roots for p in root.glob("versions/3.1[2-9]*/bin/python3")]
    versions = {python: version for python in candidates if (version := probe(python))}
    return max(versions, key=lambda python: versions[python]) if versions else None


def build(command: list[str], what: str) -> None:
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=540)
    if proc.returncode != 0:
        pytest.fail(f"{what}: {' '.join(command)} exited {proc.returncode}:\n"
                    f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")  # fmt: skip


def django6_venv(base: str) -> Path:
    """``.venv-django6``'s Python: built from ``base``, reinstalled when pyproject changes.

    The stamp holds what the install was made from; a lock keeps two test runs
    in one checkout from building it at once.
    """
    python = VENV6 / "bin" / "python"
    stamp = VENV6 / ".installed"
    made_from = f"python {base} {probe(base)}\n"
    wanted = (made_from + hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()
              + "\n" + " ".join(VENV6_INSTALL) + "\n")  # fmt: skip
    VENV6.mkdir(exist_ok=True)
    with (VENV6 / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = stamp.read_text() if stamp.exists() else ""
        if done == wanted and python.exists():
            return python
        if not done.startswith(made_from) or not python.exists():  # another interpreter
            for child in VENV6.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                elif child.name != ".lock":
                    child.unlink()
            # No pip of its own (a distribution's Python may lack ensurepip): this
            # venv's pip installs into it.
            build([base, "-m", "venv", "--without-pip", str(VENV6)], "creating .venv-django6")
        stamp.unlink(missing_ok=True)
        build([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
               "--disable-pip-version-check", "--no-input", *VENV6_INSTALL],
              "installing pgqueue[django] into .venv-django6")  # fmt: skip
        stamp.write_text(wanted)
    return python


@pytest.fixture(scope="module")
def django6_python() -> str:
    base = find_python312()
    if base is None:
        pytest.skip(
            "Django 6 needs CPython >= 3.12 and none was found (this Python, $PGQUEUE_PY312, "
            "python3.13/python3.12 on PATH, $PYENV_ROOT or ~/.pyenv/versions/3.12+)"
        )
    return str(django6_venv(base))


@pytest.mark.timeout(600)  # the first run builds the venv (a pip install)
def test_django6_venv_runs_the_builtin_tasks_framework(django6_python: str) -> None:
    proc = subprocess.run([django6_python, "-c", WHICH_DJANGO], cwd=REPO,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert found["version"][0] >= 6, found
    assert not found["backport"], "pgqueue[django] installed django-tasks on Django 6"
    assert "django.tasks.backends.base" in found["bases"], found
    assert found["task_result"] == "django.tasks.base", found


@pytest.mark.timeout(600)
def test_django_example_suite_passes_on_django6(django6_python: str, pg_dsn: str) -> None:
    run_example_suite(django6_python, pg_dsn)
