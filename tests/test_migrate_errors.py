"""``pgqueue migrate`` fails like every other command: one line, non-zero, no hang."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

from pgqueue._migrate import VERSION_TABLE, migrate_dsn
from pgqueue.cli._base import run


def migrate(capsys: pytest.CaptureFixture[str], dsn: str, *argv: str) -> tuple[int, str]:
    code = run(["migrate", "--dsn", dsn, *argv])
    _, err = capsys.readouterr()
    return code, err


def one_line(err: str) -> bool:
    return err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


def execute(dsn: str, statement: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(statement)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not done.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    done.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


def test_unreachable_dsn(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = migrate(capsys, "postgresql://x@127.0.0.1:1/none")
    assert code == 1
    assert one_line(err) and "cannot connect to PostgreSQL at 127.0.0.1:1/none" in err


def test_a_server_that_never_answers_times_out(silent_server: int) -> None:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pgqueue", "migrate", "--dsn",
         f"postgresql://x@127.0.0.1:{silent_server}/db"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    assert one_line(proc.stderr) and "timeout" in proc.stderr
    assert time.monotonic() - started < 30


def test_unknown_stored_revision(fresh_db_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    migrate_dsn(fresh_db_dsn)
    execute(fresh_db_dsn, f"UPDATE public.{VERSION_TABLE} SET version_num = 'zzz9'")

    for argv in ((), ("--downgrade",)):
        code, err = migrate(capsys, fresh_db_dsn, *argv)
        assert code == 1
        assert one_line(err) and "'zzz9'" in err


def test_missing_version_table(fresh_db_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    migrate_dsn(fresh_db_dsn)
    execute(fresh_db_dsn, f"DROP TABLE public.{VERSION_TABLE}")

    code, err = migrate(capsys, fresh_db_dsn)

    assert code == 1
    assert one_line(err) and f"public.{VERSION_TABLE} is missing" in err
    code, err = migrate(capsys, fresh_db_dsn, "--downgrade")
    assert code == 1 and one_line(err)


def test_unknown_target_revision(fresh_db_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = migrate(capsys, fresh_db_dsn, "--revision", "nope")
    assert code == 1
    assert one_line(err) and "'nope'" in err
