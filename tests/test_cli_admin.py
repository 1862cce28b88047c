"""The CLI against a real database: migrate, enqueue, jobs, retry, cancel, dead, stats."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import psycopg
import pytest

from pgqueue.cli._base import run


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = run(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_enqueue_list_show(clean_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["enqueue", "app.tasks.charge", "--args", "[1, 2]", "--kwargs", '{"c": "EUR"}']
    code, out, _ = cli(capsys, *argv, "--queue", "billing", "--json", "--dsn", clean_db)
    assert code == 0
    job = json.loads(out)
    assert (job["task"], job["args"], job["kwargs"], job["queue"]) == (
        "app.tasks.charge", [1, 2], {"c": "EUR"}, "billing")  # fmt: skip
    code, out, _ = cli(capsys, "jobs", "list", "--queue", "billing", "--json", "--dsn", clean_db)
    assert code == 0 and [j["id"] for j in json.loads(out)] == [job["id"]]
    code, out, _ = cli(capsys, "jobs", "list", "--dsn", clean_db)
    assert code == 0 and "app.tasks.charge" in out
    code, out, _ = cli(capsys, "jobs", "show", str(job["id"]), "--dsn", clean_db)
    assert code == 0 and "billing" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["jobs", "show", "999999"], "no job with id 999999"),
        (["jobs", "list", "--limit", "-1"], "limit must be >= 0"),
        (["jobs", "list", "--status", "lost"], "unknown status"),
        (["enqueue", "t", "--args", "{"], "--args is not valid JSON"),
        (["enqueue", "t", "--args", "{}"], "--args must be a JSON array"),
        (["enqueue", "t", "--priority", "99999"], "priority"),
    ],
)
def test_user_mistakes_are_one_line(
    clean_db: str, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = cli(capsys, *argv, "--dsn", clean_db)
    assert code != 0
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_unreachable_dsn_names_host_and_port(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "stats", "--dsn", "postgresql://x@127.0.0.1:1/none")
    assert code == 1
    assert "127.0.0.1:1" in err and err.count("\n") == 1


def _set_status(dsn: str, status: str, *ids: int) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "UPDATE pgqueue.jobs SET status = %s, attempts = max_attempts, finished_at = now()"
            " WHERE id = ANY(%s)",
            (status, list(ids)),
        )


def _status(dsn: str, job_id: int) -> Any:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT status FROM pgqueue.jobs WHERE id = %s", (job_id,)).fetchone()
        return row[0] if row else None


def test_retry_cancel_dead_replay_stats(clean_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    ids = []
    for i in range(4):
        _, out, _ = cli(capsys, "enqueue", "t.a" if i < 3 else "t.b", "--json", "--dsn", clean_db)
        ids.append(json.loads(out)["id"])
    _set_status(clean_db, "dead", ids[0], ids[1], ids[3])
    code, out, _ = cli(capsys, "dead", "list", "--json", "--dsn", clean_db)
    assert sorted(j["id"] for j in json.loads(out)) == sorted([ids[0], ids[1], ids[3]])
    code, out, _ = cli(capsys, "dead", "replay", "--task", "t.a", "--batch-size", "1",
                       "--dsn", clean_db)  # fmt: skip
    assert code == 0 and "replayed 2" in out
    assert _status(clean_db, ids[0]) == "queued" and _status(clean_db, ids[3]) == "dead"
    code, out, _ = cli(capsys, "retry", str(ids[3]), "--dsn", clean_db)
    assert code == 0 and _status(clean_db, ids[3]) == "queued"
    code, out, _ = cli(capsys, "retry", str(ids[3]), "--dsn", clean_db)
    assert code == 1 and "not retryable" in out
    code, out, _ = cli(capsys, "cancel", str(ids[2]), "--dsn", clean_db)
    assert code == 0 and _status(clean_db, ids[2]) == "cancelled"
    code, out, _ = cli(capsys, "stats", "--json", "--dsn", clean_db)
    stats = {r["queue"]: r for r in json.loads(out)}
    assert stats["default"]["queued"] == 3


def test_console_script_migrate(db_dsn: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pgqueue", "migrate", "--dsn", db_dsn],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "revision" in proc.stdout


def test_a_database_without_the_schema_is_one_line(
    fresh_db_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "jobs", "list", "--dsn", fresh_db_dsn)
    assert code == 1
    assert "pgqueue migrate" in err and err.count("\n") == 1
