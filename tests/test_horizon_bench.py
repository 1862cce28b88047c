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
