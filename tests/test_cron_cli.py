"""``pgqueue cron ...`` against a real database."""

from __future__ import annotations

import json
import subprocess
import sys

import psycopg
import pytest

from pgqueue.cli._base import run


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = run(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_add_list_pause_resume_run_now_remove(
    clean_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = ("--dsn", clean_db)
    add = ["cron", "add", "nightly", "--cron", "30 2 * * *", "--task", "ops.cleanup",
           "--timezone", "Europe/Paris", "--queue", "ops", "--args", "[30]",
           "--kwargs", '{"dry": false}', "--missed", "all"]  # fmt: skip
    code, out, _ = cli(capsys, *add, *dsn)
    assert code == 0 and "schedule nightly added; next run" in out and "02:30:00" in out

    code, out, _ = cli(capsys, "cron", "list", "--json", *dsn)
    assert code == 0
    (listed,) = json.loads(out)
    assert listed["name"] == "nightly" and listed["cron"] == "30 2 * * *"
    assert listed["timezone"] == "Europe/Paris"
    assert (listed["task"], listed["queue"]) == ("ops.cleanup", "ops")
    assert (listed["args"], listed["kwargs"], listed["missed"]) == ([30], {"dry": False}, "all")
    assert listed["enabled"] is True and listed["next_run_at"] and listed["last_run_at"] is None

    code, out, _ = cli(capsys, "cron", "list", *dsn)
    header, line = out.splitlines()
    assert header.split()[:3] == ["name", "expression", "zone"]
    assert line.split()[:4] == ["nightly", "30", "2", "*"] and line.endswith("yes")

    assert cli(capsys, "cron", "pause", "nightly", *dsn)[0] == 0
    code, out, _ = cli(capsys, "cron", "list", *dsn)
    assert out.splitlines()[1].endswith("no")
    code, out, _ = cli(capsys, "cron", "resume", "nightly", *dsn)
    assert code == 0 and "enabled; next run" in out

    code, out, _ = cli(capsys, "cron", "run-now", "nightly", "--json", *dsn)
    assert code == 0
    job = json.loads(out)
    assert job["task"] == "ops.cleanup" and job["meta"]["schedule"] == "nightly"

    assert cli(capsys, "cron", "remove", "nightly", *dsn)[0] == 0
    code, out, _ = cli(capsys, "cron", "list", *dsn)
    assert code == 0 and out.strip() == "no schedules"


def test_add_twice_needs_replace(clean_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["cron", "add", "s", "--task", "t", "--dsn", clean_db]
    assert cli(capsys, *base, "--cron", "@daily")[0] == 0
    code, _, err = cli(capsys, *base, "--cron", "@hourly")
    assert code != 0 and "already exists" in err
    assert cli(capsys, *base, "--cron", "@hourly", "--replace")[0] == 0
    with psycopg.connect(clean_db) as conn:
        row = conn.execute("SELECT cron FROM pgqueue.schedules WHERE name = 's'").fetchone()
    assert row == ("@hourly",)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["cron", "pause", "ghost"], "no schedule named 'ghost'"),
        (["cron", "resume", "ghost"], "no schedule named 'ghost'"),
        (["cron", "remove", "ghost"], "no schedule named 'ghost'"),
        (["cron", "run-now", "ghost"], "no schedule named 'ghost'"),
        (["cron", "add", "x", "--task", "t", "--cron", "99 * * * *"],
         "schedule 'x': invalid cron expression"),
        (["cron", "add", "x", "--task", "t", "--cron", "@daily", "--timezone", "Nowhere/City"],
         "schedule 'x': unknown time zone 'Nowhere/City'"),
        (["cron", "add", "x", "--task", "t", "--cron", "@daily", "--missed", "maybe"],
         "missed must be one of"),
        (["cron", "add", "x", "--task", "t", "--cron", "@daily", "--args", "{}"],
         "--args must be a JSON array"),
    ],
)  # fmt: skip
def test_user_mistakes_are_one_line(
    clean_db: str, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = cli(capsys, *argv, "--dsn", clean_db)
    assert code != 0
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("dsn", ["fresh", "postgresql://x@127.0.0.1:1/none"])
def test_scheduler_without_a_schema_or_a_server_is_one_line(fresh_db_dsn: str, dsn: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pgqueue", "scheduler", "--dsn",
         fresh_db_dsn if dsn == "fresh" else dsn],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1
    if dsn == "fresh":
        assert "pgqueue migrate" in proc.stderr
