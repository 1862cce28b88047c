"""Summaries: each figure is the median of its runs, with min and max."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

Figure = dict[str, Any]  # {"median", "min", "max", "runs": [...], "unit"} or {"status": ...}


def summarize(values: Sequence[float], unit: str) -> Figure:
    clean = [v for v in values if v is not None and math.isfinite(v)]
    if not clean:
        return unavailable("no run produced a value")
    return {
        "median": statistics.median(clean),
        "min": min(clean),
        "max": max(clean),
        "runs": list(clean),
        "unit": unit,
    }


def unavailable(reason: str) -> Figure:
    """A figure that could not be measured, and why (never a blank in the report)."""
    return {"status": reason}


def median(fig: Figure | None) -> float | None:
    if not fig or "median" not in fig:
        return None
    value = fig["median"]
    return float(value) if value is not None else None


def ratio(a: Figure | float | None, b: Figure | float | None) -> float | None:
    x = a if isinstance(a, float | int) or a is None else median(a)
    y = b if isinstance(b, float | int) or b is None else median(b)
    if x is None or y is None or y == 0:
        return None
    return float(x) / float(y)


def percentile(sorted_ms: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of already sorted values."""
    if not sorted_ms:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_ms)))
    return float(sorted_ms[min(rank, len(sorted_ms)) - 1])


def latency_summary(ms: Sequence[float]) -> dict[str, float]:
    s = sorted(ms)
    return {
        "p50": percentile(s, 50),
        "p95": percentile(s, 95),
        "p99": percentile(s, 99),
        "max": s[-1] if s else math.nan,
        "count": float(len(s)),
    }


def fmt_rate(fig: Figure | None) -> str:
    """``12,345/s (11,900-12,800)`` or the reason it is missing."""
    if not fig:
        return "not measured"
    if "median" not in fig:
        return str(fig.get("status", "not measured"))
    if len(fig.get("runs", [])) > 1:
        return f"{fig['median']:,.0f}/s ({fig['min']:,.0f}-{fig['max']:,.0f})"
    return f"{fig['median']:,.0f}/s"


def fmt_ms(fig: Figure | None) -> str:
    if not fig:
        return "not measured"
    if "median" not in fig:
        return str(fig.get("status", "not measured"))
    if len(fig.get("runs", [])) > 1:
        return f"{fig['median']:.1f} ms ({fig['min']:.1f}-{fig['max']:.1f})"
    return f"{fig['median']:.1f} ms"


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"
