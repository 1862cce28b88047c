"""What the CLI prints: numbers as numbers, stored text never as terminal commands."""

from __future__ import annotations

import json
import re
from typing import Any

import psycopg
import pytest

import pgqueue
from pgqueue.cli._base import run

# An OSC sequence (sets the terminal's title), a CSI one (clears the screen), a
# bell, C1 CSI, and a right-to-left override.
HOSTILE = "t\x1b]0;pwned\x07\x1b[2J\x9b31m\u202eevil"


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = run(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def execute(dsn: str, statement: str, params: Any = None) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(statement, params)


def test_stats_oldest_waiting_is_a_number(
    clean_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    execute(
        clean_db,
        "INSERT INTO pgqueue.jobs (queue, task, run_at)"
        " VALUES ('q', 't', now() - interval '90.123456 seconds')",
    )

    code, out, _ = cli(capsys, "stats", "--json", "--dsn", clean_db)

    assert code == 0
    (row,) = json.loads(out)
    assert isinstance(row["oldest_waiting_seconds"], float)
    assert 90 < row["oldest_waiting_seconds"] < 120
    code, out, _ = cli(capsys, "stats", "--dsn", clean_db)
    assert code == 0
    # One decimal (the seconds grow while the test runs: no exact value).
    assert re.search(r" (9\d|1[01]\d)\.\d ", out) and "90.12" not in out


def no_control_characters(text: str) -> bool:
    unsafe = [c for c in text if (ord(c) < 32 and c != "\n") or 0x7F <= ord(c) <= 0x9F]
    return not unsafe and "\u202e" not in text


def test_escape_sequences_are_shown_escaped(
    clean_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pgqueue.App(clean_db) as app:
        job = app.task_ref(HOSTILE, queue=HOSTILE).enqueue("x\x1b[31m")
    execute(
        clean_db,
        "UPDATE pgqueue.jobs SET status = 'dead', last_error = %(e)s,"
        " errors = jsonb_build_array(jsonb_build_object('attempt', 1, 'at', now(),"
        "   'error', %(e)s::text, 'traceback', %(e)s::text || E'\\n' || %(e)s::text))",
        {"e": HOSTILE},
    )
    outputs = [
        cli(capsys, "jobs", "list", "--dsn", clean_db),
        cli(capsys, "jobs", "show", str(job.id), "--dsn", clean_db),
        cli(capsys, "dead", "list", "--dsn", clean_db),
        cli(capsys, "queue", "pause", HOSTILE, "--dsn", clean_db),
        cli(capsys, "queue", "list", "--dsn", clean_db),
        cli(capsys, "stats", "--dsn", clean_db),
        cli(capsys, "enqueue", HOSTILE, "--dsn", clean_db),
        cli(capsys, "cron", "add", "s", "--cron", "@daily", "--task", HOSTILE, "--dsn", clean_db),
        cli(capsys, "cron", "list", "--dsn", clean_db),
        cli(capsys, "jobs", "list", "--status", HOSTILE, "--dsn", clean_db),  # an error line
    ]
    for _code, out, err in outputs:
        assert no_control_characters(out + err), out + err
    shown = outputs[1][1]
    assert "\\x1b]0;pwned\\x07" in shown and "\\u202e" in shown
    assert outputs[-1][0] != 0 and "\\x1b" in outputs[-1][2]
    # JSON output is JSON: its escapes are already inert.
    code, out, _ = cli(capsys, "jobs", "show", str(job.id), "--json", "--dsn", clean_db)
    assert code == 0 and json.loads(out)["task"] == HOSTILE and no_control_characters(out)
