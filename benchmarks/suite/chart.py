"""The PNG: drain and enqueue throughput, and idle latency, per system and setup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.suite.stats import median

COLORS = {
    "pgqueue": "#1f77b4",
    "ceiling": "#7f7f7f",
    "procrastinate": "#ff7f0e",
    "pgqueuer": "#2ca02c",
}


def draw(results: dict[str, Any], path: Path) -> str | None:
    """Write the chart; returns why not when it cannot (matplotlib missing)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib not installed (pip install -e '.[bench]')"
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.5))
    _drain(axes[0], results)
    _enqueue(axes[1], results)
    _latency(axes[2], results)
    meta = results.get("meta", {})
    fig.suptitle(
        f"pgqueue benchmarks {meta.get('date', '')} - profile {meta.get('profile', '')},"
        f" {meta.get('machine', {}).get('cores', '?')} cores"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def _bars(ax: Any, labels: list[str], values: list[float], colors: list[str]) -> None:
    ax.bar(range(len(values)), values, color=colors)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=50, ha="right", fontsize=8)
    for i, v in enumerate(values):
        ax.annotate(f"{v:,.0f}", (i, v), ha="center", va="bottom", fontsize=7)


def _drain(ax: Any, results: dict[str, Any]) -> None:
    labels, values, colors = [], [], []
    groups = [("ceiling", results.get("ceiling", {})), *results.get("drain", {}).items()]
    for name, figs in groups:
        for key, fig in figs.items():
            value = median(fig)
            if value is not None:
                labels.append(f"{name} {key}")
                values.append(value)
                colors.append(COLORS.get(name, "#9467bd"))
    _bars(ax, labels, values, colors)
    ax.set_title("drain: no-op jobs/s (median of runs)")
    ax.set_ylabel("jobs/s")


def _enqueue(ax: Any, results: dict[str, Any]) -> None:
    labels, values, colors = [], [], []
    for name, figs in results.get("enqueue", {}).items():
        for key, fig in figs.items():
            value = median(fig)
            if value is not None:
                labels.append(f"{name} {key}")
                values.append(value)
                colors.append(COLORS.get(name, "#7f7f7f"))
    _bars(ax, labels, values, colors)
    ax.set_yscale("log")
    ax.set_title("enqueue: jobs/s (log scale)")


def _latency(ax: Any, results: dict[str, Any]) -> None:
    rows = []
    for name, figs in results.get("latency", {}).items():
        for key, fig in figs.items():
            if isinstance(fig, dict) and "p50" in fig:
                rows.append(
                    (f"{name} {key}", [median(fig.get(q)) or 0.0 for q in ("p50", "p95", "p99")])
                )
    width = 0.27
    for j, q in enumerate(("p50", "p95", "p99")):
        ax.bar(
            [i + (j - 1) * width for i in range(len(rows))], [r[1][j] for r in rows], width, label=q
        )
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([r[0] for r in rows], rotation=50, ha="right", fontsize=8)
    ax.set_title("idle latency: enqueue to start, ms")
    ax.set_ylabel("ms")
    ax.legend()
