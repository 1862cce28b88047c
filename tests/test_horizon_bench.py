"""The pinned-horizon benchmark (``python -m benchmarks.horizon``) end to end, tiny.

Proves the workload runs both forms and reports every phase figure, and that
every job offered while the horizon was pinned completed; nothing is timed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import horizon  # noqa: E402


def test_quick_run_reports_every_phase_and_completes_every_offered_job(
    pg_dsn: str, tmp_path: Path
) -> None:
    args = ["--quick", "--dsn", pg_dsn, "--out", str(tmp_path),
            "--clean", "1.5", "--pinned", "2.5", "--recovery", "1.5"]  # fmt: skip
    assert horizon.main(args) == 0
    (result,) = tmp_path.glob("*-horizon-quick.json")
    (table,) = tmp_path.glob("*-horizon-quick.md")
    report = json.loads(result.read_text())
    assert [f["form"] for f in report["forms"]] == ["xid", "rr"]
    for form in report["forms"]:
        assert form["offered"] > 0 and form["all_completed"], form
        assert form["completed"] == form["offered"]
        assert [p["phase"] for p in form["phases"]] == ["clean", "pinned", "recovery"]
        for phase in form["phases"]:
            assert set(horizon.PHASE_KEYS) <= set(phase), phase
            assert phase["table_bytes"] > 0 and phase["claim_index_bytes"] > 0
            assert phase["buffers_front"] is not None
    assert "| xid | pinned |" in table.read_text()
    assert "| rr | pinned |" in table.read_text()


def test_maximum_throughput_form_tops_the_queue_up_and_judges_the_pinned_rate(
    pg_dsn: str, tmp_path: Path
) -> None:
    args = ["--quick", "--dsn", pg_dsn, "--out", str(tmp_path), "--topup", "300",
            "--forms", "xid", "--clean", "1.5", "--pinned", "2", "--recovery", "1.5",
            "--tag", "max"]  # fmt: skip
    assert horizon.main(args) == 0
    (result,) = tmp_path.glob("*-horizon-max.json")
    report = json.loads(result.read_text())
    (form,) = report["forms"]
    assert form["all_completed"] and form["offered"] > 0
    assert max(p["backlog_max"] for p in form["phases"]) > 0  # the producer kept a queue
    (target,) = report["targets"]
    assert "maximum throughput" in target["target"] and target["value"] is not None
