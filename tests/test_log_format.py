"""``pgqueue worker --log-format json``: the key=value lines' fields, one JSON object per line."""

from __future__ import annotations

import json
import logging
import re
import shlex
import subprocess
import sys
from typing import Any

from test_worker_app import prepare_tables, worker_process

import pgqueue
from pgqueue.worker import JsonFormatter
from pgqueue.worker._log import kv

TEXT_LINE = re.compile(r"^\S+ \S+ (?P<level>[A-Z]+) (?P<logger>\S+) (?P<rest>event=.*)$")


def enqueue_some(dsn: str) -> list[int]:
    with pgqueue.App(dsn) as app:
        jobs = [app.task_ref("t.record").enqueue(i) for i in range(2)]
        jobs.append(app.task_ref("t.missing").enqueue())  # no such task: dead
    return [j.id for j in jobs]


def run_burst(dsn: str, *args: str) -> str:
    with worker_process(dsn, "--burst", "--log-level", "debug", *args) as worker:
        assert worker.wait(60) == 0, worker.output()
        return worker.output()


def text_fields(rest: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in shlex.split(rest))


def test_json_lines_carry_the_text_lines_fields(clean_db: str) -> None:
    prepare_tables(clean_db)
    enqueue_some(clean_db)
    text = run_burst(clean_db)
    ids = enqueue_some(clean_db)
    out = run_burst(clean_db, "--log-format", "json", "--processes", "2")  # forked children too

    records = [json.loads(line) for line in out.splitlines() if line.strip()]  # every line
    assert all({"time", "level", "logger"} <= r.keys() for r in records)
    by_event: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_event.setdefault(r.get("event", ""), []).append(r)
    assert by_event["supervisor_start"] and len({r["pid"] for r in by_event["worker_start"]}) == 2
    success = [r for r in by_event["success"] if r["job"] in ids]
    assert sorted(r["job"] for r in success) == ids[:2]
    assert success[0]["task"] == "t.record" and success[0]["level"] == "INFO"
    assert isinstance(success[0]["attempt"], int) and isinstance(success[0]["duration"], float)
    (dead,) = [r for r in by_event["dead"] if r["job"] == ids[2]]
    assert dead["level"] == "ERROR" and "t.missing" in dead["error"]

    # The same events in text mode have exactly these fields.
    text_events: dict[str, set[str]] = {}
    for line in text.splitlines():
        m = TEXT_LINE.match(line)
        if m:
            fields = text_fields(m["rest"])
            text_events.setdefault(fields["event"], set(fields))
    common = text_events.keys() & by_event.keys()
    assert {"success", "dead", "start", "claim", "worker_start", "worker_stop"} <= common
    for event in common:
        assert set(by_event[event][0]) - {"time", "level", "logger"} == text_events[event], event


def test_formatter_keeps_other_records_and_tracebacks() -> None:
    fmt = JsonFormatter()
    plain = logging.LogRecord("x", logging.WARNING, __file__, 1, "hello %s", ("you",), None)
    assert json.loads(fmt.format(plain))["message"] == "hello you"
    try:
        raise ValueError("boom")
    except ValueError:
        rec = logging.LogRecord("pgqueue.worker", logging.ERROR, __file__, 1,
                                kv("oops", job=1, ratio=0.123456, note='a "b"'), None,
                                sys.exc_info())  # fmt: skip
    out = json.loads(fmt.format(rec))
    assert out["event"] == "oops" and out["job"] == 1 and out["ratio"] == 0.1235
    assert out["note"] == 'a "b"' and "ValueError: boom" in out["exc"]


def test_bad_log_format_is_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pgqueue", "worker", "x:app", "--log-format", "xml"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].endswith("--log-format must be one of: text, json")
    assert "Traceback" not in proc.stderr
