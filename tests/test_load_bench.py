"""The load workloads (steady state, overload, soak, single async enqueue) end to end, tiny.

Proves that each runs, lands in its JSON and Markdown report with a verdict per
target, and that a peer which cannot run here (the ``bench`` extra is not
installed in CI; Celery also needs ``redis-server``) says so instead of
failing; nothing is timed or compared.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import enqueue_async, overload, soak, steady  # noqa: E402

pytestmark = pytest.mark.slow


def report(out: Path, name: str) -> tuple[dict[str, Any], str]:
    (result,) = out.glob(f"*-{name}-quick.json")
    (table,) = out.glob(f"*-{name}-quick.md")
    return json.loads(result.read_text()), table.read_text()


def test_steady_state_reports_every_figure_and_missing_peers_say_so(
    pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = steady.missing
    monkeypatch.setattr(steady, "missing", lambda name: real(name) if name == "pgqueue"
                        else "not installed (bench extra)")  # fmt: skip
    args = ["--quick", "--dsn", pg_dsn, "--out", str(tmp_path), "--warmup", "1",
            "--measure", "2", "--concurrency", "4", "--systems", "pgqueue,pgqueuer,celery"]
    assert steady.main(args) == 0
    result, table = report(tmp_path, "steady")
    ours, *peers = result["runs"]
    assert ours["status"] == "ok", ours
    assert ours["completed"] > 0 and ours["rate"] > 0
    for key in ("pickup_p50_ms", "pickup_p95_ms", "pickup_p99_ms", "worker_cpu_ms_per_job",
                "producer_cpu_ms_per_job"):  # fmt: skip
        assert ours[key] is not None and ours[key] >= 0, key
    assert [p["status"] for p in peers] == ["not installed (bench extra)"] * 2
    assert "| celery | 4 | | | | | | | | not installed" in table
    assert len(result["targets"]) == 3 and "| target | value | verdict |" in table


def test_overload_drains_and_says_how_long_it_took(pg_dsn: str, tmp_path: Path) -> None:
    args = ["--quick", "--dsn", pg_dsn, "--out", str(tmp_path), "--max-rate", "600",
            "--before", "1", "--overload", "2", "--base", "200", "--concurrency", "4"]
    assert overload.main(args) == 0
    result, table = report(tmp_path, "overload")
    assert result["drained"] and result["drain_seconds"] is not None
    phases = {p["phase"] for p in result["series"]}
    assert phases == {"before", "overload", "after"}
    assert all(p["backlog"] >= 0 for p in result["series"])
    assert "no collapse" in table and "backlog gone" in table


def test_soak_samples_sizes_and_compares_first_and_last_window(
    pg_dsn: str, tmp_path: Path
) -> None:
    args = ["--quick", "--dsn", pg_dsn, "--out", str(tmp_path), "--duration", "4",
            "--every", "1", "--warmup", "1", "--concurrency", "4"]
    assert soak.main(args) == 0
    result, table = report(tmp_path, "soak")
    assert len(result["series"]) >= 2
    assert result["first"]["completed"] > 0 and result["last"]["completed"] > 0
    for point in result["series"]:
        assert point["table_mb"] > 0 and point["claim_index_mb"] > 0
    assert "claim index bounded" in table


def test_async_enqueue_reports_cpu_and_rate(
    pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchmarks.suite.peers.pgqueuer_peer import PgQueuerPeer

    monkeypatch.setattr(PgQueuerPeer, "missing", lambda self: "not installed (bench extra)")
    args = ["--quick", "--dsn", pg_dsn, "--out", str(tmp_path), "--jobs", "50"]
    assert enqueue_async.main(args) == 0
    result, table = report(tmp_path, "enqueue-async")
    ours = result["results"]["pgqueue"]
    assert ours["cpu_ms_per_job"] > 0 and ours["rate"] > 0
    assert result["results"]["pgqueuer (asyncpg)"]["status"].startswith("not installed")
    assert "| pgqueuer (psycopg) |  |  | not installed" in table
    assert result["targets"][0]["met"] is None
