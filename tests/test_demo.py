"""``pgqueue demo``: every kind of outcome, then a summary."""

from __future__ import annotations

import io

from pgqueue._demo import DEMO_QUEUE, run_demo


def test_demo_runs_to_completion_and_summarises(clean_db: str) -> None:
    out = io.StringIO()
    assert run_demo(clean_db, out=out) == 0
    text = out.getvalue()
    assert f"enqueued 33 jobs on queue {DEMO_QUEUE!r}" in text
    assert "finished" in text  # progress lines
    lines = {
        line.split()[0]: line.split()[1:] for line in text.splitlines() if line.startswith("  ")
    }
    # task: jobs, succeeded, dead, retries
    assert lines["demo.charge_card"] == ["6", "6", "0", "6"]  # order n fails n % 3 times
    assert lines["demo.import_row"] == ["5", "4", "1", "0"]  # one Discard: dead, no retry
    assert lines["demo.fetch_page"] == ["6", "6", "0", "0"]  # async
    assert lines["demo.send_reminder"] == ["4", "4", "0", "0"]  # delayed
    assert lines["total"] == ["33", "32", "1", "6"]
