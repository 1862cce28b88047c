"""The benchmark harness (``make bench``) end to end, at a tiny size.

Proves that every workload runs and lands in the JSON and Markdown report;
nothing is timed or compared here. The peers (the ``bench`` extra) are not
needed: a missing peer must read "not installed" in the report, never a blank.
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

from benchmarks.suite import runner  # noqa: E402
from benchmarks.suite.peers.pgqueuer_peer import PgQueuerPeer  # noqa: E402
from benchmarks.suite.peers.procrastinate_peer import ProcrastinatePeer  # noqa: E402

PEERS = ("procrastinate", "pgqueuer")


def run_tiny(pg_dsn: str, out: Path, *args: str) -> tuple[dict[str, Any], str]:
    code = runner.main(["--profile", "tiny", "--dsn", pg_dsn, "--out", str(out), *args])
    assert code == 0
    (result,) = out.glob("*-tiny.json")
    (report,) = out.glob("*-tiny.md")
    return json.loads(result.read_text()), report.read_text()


def has_median(fig: Any) -> bool:
    return isinstance(fig, dict) and isinstance(fig.get("median"), float)


def test_every_workload_runs_and_missing_peers_say_so(
    pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As CI sees it: the bench extra is not installed.
    for peer in (ProcrastinatePeer, PgQueuerPeer):
        monkeypatch.setattr(peer, "missing", lambda self: "not installed (bench extra)")
    results, report = run_tiny(pg_dsn, tmp_path)

    enqueue = results["enqueue"]
    for fig in (enqueue["pgqueue"]["single"], enqueue["pgqueue"]["bulk"],
                enqueue["raw"]["insert"], enqueue["raw"]["copy"]):  # fmt: skip
        assert has_median(fig)
    keys = {"default/1p", "tuned/1p", "default/2p", "tuned/2p"}
    assert set(results["drain"]["pgqueue"]) == keys
    assert all(has_median(f) for f in results["drain"]["pgqueue"].values())
    assert set(results["ceiling"]) == keys
    assert all(has_median(f) for f in results["ceiling"].values())
    for fig in results["latency"]["pgqueue"].values():
        assert all(has_median(fig[q]) for q in ("p50", "p95", "p99"))
    for case in ("reference", "queued", "finished"):
        assert has_median(results["backlog"][case])
    assert results["mixed"]["throughput"] > 0
    assert results["mixed"]["critical_wait"]["count"] >= 0
    assert results["profile"]["jobs"] > 0
    assert "per_job" in results["profile"]["server"]

    for name in PEERS:
        assert results["systems"][name]["status"].startswith("not installed")
        assert f"| {name} | - | not installed" in report
        assert f"| {name} | not installed" in report  # enqueue and drain rows
    peer_targets = [t for t in results["targets"] if "peer" in t["name"]]
    assert peer_targets and all(t["met"] is None for t in peer_targets)
    assert "procrastinate: not installed" in report  # the headline's best-peer column
    sections = ("Headline", "Targets", "Drain", "PostgreSQL ceiling", "Idle latency", "Backlog",
                "Mixed", "Profile", "Sizes")  # fmt: skip
    for section in sections:
        assert f"## {section}" in report
    assert ("## Chart" in report) and (
        (tmp_path / f"{results['meta']['stamp']}.png").exists() or "No chart:" in report
    )


def test_peers_run_the_same_workloads(pg_dsn: str, tmp_path: Path) -> None:
    for module in ("procrastinate", "pgqueuer", "asyncpg"):
        pytest.importorskip(module, reason="the bench extra is not installed")
    results, _ = run_tiny(pg_dsn, tmp_path, "--systems", ",".join(PEERS), "--only", "enqueue,drain")
    for name in PEERS:
        assert results["systems"][name]["status"] == "ok"
        assert has_median(results["enqueue"][name]["single"])
        assert has_median(results["enqueue"][name]["bulk"])
        drain = results["drain"][name]
        assert set(drain) == {"default/1p", "tuned/1p", "default/2p", "tuned/2p"}
        assert all(has_median(f) for f in drain.values()), drain
