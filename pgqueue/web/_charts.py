"""Server-rendered SVG charts: per-minute bars and lines over the last hour.

No JavaScript and no library: a chart is a few dozen SVG elements, readable in
light and dark (colours come from the page's CSS variables), with a text
summary for screen readers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from html import escape
from typing import Any

WIDTH, HEIGHT = 600, 140
PAD_LEFT, PAD_BOTTOM, PAD_TOP = 44, 18, 8
MINUTES = 60


def _slots(rows: Sequence[dict[str, Any]], now: datetime) -> list[dict[str, Any] | None]:
    """The last hour as 60 minute slots (None: nothing finished that minute)."""
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=MINUTES - 1)
    by_minute = {row["minute"]: row for row in rows}
    return [by_minute.get(start + timedelta(minutes=i)) for i in range(MINUTES)]


def _nice(top: float) -> float:
    """A round axis maximum at or above ``top``."""
    if top <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(top))) - 1)
    for step in (1, 2, 5, 10):
        if top <= step * magnitude:
            return float(step * magnitude)
    return float(10 * magnitude)


def _frame(title: str, top: float, unit: str, body: str, summary: str) -> str:
    plot_h = HEIGHT - PAD_BOTTOM - PAD_TOP
    grid = []
    for frac in (0.0, 0.5, 1.0):
        y = PAD_TOP + plot_h * (1 - frac)
        label = f"{top * frac:g}{unit}"
        grid.append(f'<line class="grid" x1="{PAD_LEFT}" x2="{WIDTH}" y1="{y:.1f}" y2="{y:.1f}"/>'
                    f'<text class="axis" x="{PAD_LEFT - 4}" y="{y + 4:.1f}" '
                    f'text-anchor="end">{label}</text>')  # fmt: skip
    axis = (f'<text class="axis" x="{PAD_LEFT}" y="{HEIGHT - 2}">-60 min</text>'
            f'<text class="axis" x="{WIDTH}" y="{HEIGHT - 2}" '
            'text-anchor="end">now</text>')  # fmt: skip
    return (f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
            f'aria-label="{escape(title)}: {escape(summary)}" preserveAspectRatio="none">'
            f"<title>{escape(title)}</title>{''.join(grid)}{axis}{body}</svg>")  # fmt: skip


def throughput_svg(rows: Sequence[dict[str, Any]], now: datetime) -> str:
    """Stacked bars per minute: succeeded, and failed (dead) on top."""
    slots = _slots(rows, now)
    totals = [(int(s["succeeded"]), int(s["failed"])) if s else (0, 0) for s in slots]
    top = _nice(max((a + b for a, b in totals), default=0))
    plot_h = HEIGHT - PAD_BOTTOM - PAD_TOP
    slot_w = (WIDTH - PAD_LEFT) / MINUTES
    bars = []
    for i, (ok, bad) in enumerate(totals):
        x = PAD_LEFT + i * slot_w
        h_ok = plot_h * ok / top
        h_bad = plot_h * bad / top
        base = PAD_TOP + plot_h
        if ok:
            bars.append(f'<rect class="ok" x="{x:.1f}" y="{base - h_ok:.1f}" '
                        f'width="{slot_w * 0.8:.1f}" height="{h_ok:.1f}"/>')  # fmt: skip
        if bad:
            bars.append(f'<rect class="bad" x="{x:.1f}" y="{base - h_ok - h_bad:.1f}" '
                        f'width="{slot_w * 0.8:.1f}" height="{h_bad:.1f}"/>')  # fmt: skip
    ok_total = sum(a for a, _ in totals)
    bad_total = sum(b for _, b in totals)
    summary = f"{ok_total} succeeded and {bad_total} failed in the last hour"
    return _frame("Finished per minute", top, "", "".join(bars), summary)


def latency_svg(rows: Sequence[dict[str, Any]], now: datetime) -> str:
    """Pickup latency per minute (started_at - run_at): median and p95 lines."""
    slots = _slots(rows, now)
    p50 = [float(s["latency_p50"]) if s and s["latency_p50"] is not None else None
           for s in slots]  # fmt: skip
    p95 = [float(s["latency_p95"]) if s and s["latency_p95"] is not None else None
           for s in slots]  # fmt: skip
    top = _nice(max((v for v in p95 if v is not None), default=0))
    plot_h = HEIGHT - PAD_BOTTOM - PAD_TOP
    slot_w = (WIDTH - PAD_LEFT) / MINUTES

    def line(values: list[float | None], css: str) -> str:
        points = [f"{PAD_LEFT + (i + 0.4) * slot_w:.1f},{PAD_TOP + plot_h * (1 - v / top):.1f}"
                  for i, v in enumerate(values) if v is not None]  # fmt: skip
        if not points:
            return ""
        dots = "".join(f'<circle class="{css}" cx="{p.split(",")[0]}" cy="{p.split(",")[1]}" '
                       'r="2"/>' for p in points)  # fmt: skip
        return f'<polyline class="{css}" fill="none" points="{" ".join(points)}"/>{dots}'

    seen = [v for v in p95 if v is not None]
    summary = f"worst p95 {max(seen):.3g}s" if seen else "no jobs finished in the last hour"
    return _frame("Pickup latency (s)", top, "s", line(p95, "p95") + line(p50, "p50"), summary)
