"""The PNG of a load workload's time series (overload, soak): one panel per measure."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

LABELS = {
    "completed_per_s": "completed jobs/s",
    "backlog": "backlog (jobs)",
    "pickup_p99_ms": "pickup p99 (ms)",
    "table_mb": "pgqueue.jobs (MB)",
    "claim_index_mb": "jobs_claim_idx (MB)",
    "indexes_mb": "all indexes (MB)",
    "n_dead_tup": "dead tuples",
}


def draw(out: Path, name: str, points: list[dict[str, Any]], title: str) -> str | None:
    """``<date>-<name>.png`` in ``out`` from ``points`` (dicts with ``t`` in seconds and
    the measures of LABELS they have); its file name, or None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    keys = [k for k in LABELS if points and k in points[0]]
    if not keys:
        return None
    fig, axes = plt.subplots(len(keys), 1, figsize=(10, 2.3 * len(keys)), sharex=True)
    axes = [axes] if len(keys) == 1 else list(axes)
    ts = [p["t"] for p in points]
    for ax, key in zip(axes, keys, strict=True):
        ax.plot(ts, [p.get(key) for p in points], linewidth=1)
        ax.set_ylabel(LABELS[key], fontsize=8)
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
        phases = [(p["t"], p["phase"]) for i, p in enumerate(points)
                  if "phase" in p and (i == 0 or points[i - 1]["phase"] != p["phase"])]  # fmt: skip
        for t, _phase in phases[1:]:
            ax.axvline(t, color="grey", linestyle="--", linewidth=0.8)
        if ax is axes[0]:
            for t, phase in phases:
                ax.annotate(phase, (t, 0), fontsize=7, xytext=(2, 2), textcoords="offset points")
    axes[-1].set_xlabel("seconds")
    fig.suptitle(title)
    fig.tight_layout()
    path = out / f"{date.today().isoformat()}-{name}.png"
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name
