"""The workflows benchmark (``python -m benchmarks.flows``) end to end, tiny.

Proves the three measurements run on the real canvas (a chord drained by a
burst worker, a chain handed off by an idle worker, flows enqueued in one call)
and that the report has every figure; nothing is timed here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import flows  # noqa: E402


def test_quick_run_reports_every_measurement(pg_dsn: str, tmp_path: Path) -> None:
    args = ["--quick", "--dsn", pg_dsn, "--out", str(tmp_path), "--jobs", "60", "--chain", "8"]
    assert flows.main(args) == 0
    (result,) = tmp_path.glob("*-flows-quick.json")
    (table,) = tmp_path.glob("*-flows-quick.md")
    report = json.loads(result.read_text())
    chord, chain, enqueue = report["chord"], report["chain"], report["enqueue"]
    assert chord["all_succeeded"] and chord["jobs"] == 60
    assert chord["ratio"] > 0 and len(chord["chord_span_s"]) == len(chord["plain_span_s"]) == 1
    assert chain["all_succeeded"] and chain["steps"] == 8
    assert 0 <= chain["p50_ms"] <= chain["p95_ms"] <= chain["p99_ms"] <= chain["max_ms"]
    for form in ("enqueue_many", "chord", "group"):
        assert enqueue[form]["per_s"] > 0
    assert set(report["met"]) == {"chord", "handoff", "enqueue"}
    text = table.read_text()
    assert "| chord of 60 + callback" in text and "8-step chain" in text
