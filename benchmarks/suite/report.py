"""The results JSON, the Markdown report and the console table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.suite.stats import fmt_ms, fmt_rate, fmt_ratio, median, ratio


def write_json(results: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(results, indent=1, default=str) + "\n")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return [*out, ""]


def _better(fig: Any, than: Any, *, lower: bool = False) -> bool:
    """Has ``fig`` a median, and a better one than ``than`` (if it has one)?"""
    a, b = median(fig), median(than)
    if a is None:
        return False
    return b is None or (a < b if lower else a > b)


def _best(figs: dict[str, Any], processes: int | None = None) -> tuple[str, Any]:
    best: tuple[str, Any] = ("", None)
    for key, fig in figs.items():
        if processes is not None and not key.endswith(f"/{processes}p"):
            continue
        if _better(fig, best[1]):
            best = (key, fig)
    return best


def _peer_status(results: dict[str, Any], name: str) -> str | None:
    status = results.get("systems", {}).get(name, {}).get("status")
    return None if status == "ok" else str(status)


def _best_peer(results: dict[str, Any], section: str, pick: Any) -> tuple[str, Any]:
    best: tuple[str, Any] = ("", None)
    reasons = []
    for name in results.get("peers", []):
        status = _peer_status(results, name)
        if status:
            reasons.append(f"{name}: {status}")
            continue
        key, fig = pick(results.get(section, {}).get(name, {}))
        if _better(fig, best[1]):
            best = (f"{name} {key}".strip(), fig)
    if best[1] is None:
        return ("; ".join(reasons) or "no peer ran this workload", None)
    return best


def headline(results: dict[str, Any]) -> list[list[str]]:
    """Rows: workload | pgqueue | best peer | pgqueue/peer | vs PostgreSQL/raw."""
    enq, drain = results.get("enqueue", {}), results.get("drain", {})
    raw, ours = enq.get("raw", {}), enq.get("pgqueue", {})
    rows = []
    for key, label, raw_key, raw_label in (
        ("single", "single enqueue", "insert", "raw INSERT"),
        ("bulk", "enqueue_many", "copy", "raw COPY"),
    ):
        name, peer = _best_peer(results, "enqueue", lambda f, k=key: (k, f.get(k)))
        rows.append(
            [
                label,
                fmt_rate(ours.get(key)),
                f"{name}: {fmt_rate(peer)}" if peer else name,
                fmt_ratio(ratio(ours.get(key), peer)),
                f"{fmt_ratio(ratio(ours.get(key), raw.get(raw_key)))} of {raw_label}",
            ]
        )
    for processes in (1, 2):
        key, fig = _best(drain.get("pgqueue", {}), processes)
        name, peer = _best_peer(results, "drain", lambda f, p=processes: _best(f, p))
        ceiling = results.get("ceiling", {}).get(key)
        rows.append(
            [
                f"drain, {processes} process{'es' if processes > 1 else ''} ({key})",
                fmt_rate(fig),
                f"{name}: {fmt_rate(peer)}" if peer else name,
                fmt_ratio(ratio(fig, peer)),
                f"{fmt_ratio(ratio(fig, ceiling))} of the ceiling loop",
            ]
        )
    for q in ("p50", "p99"):
        lat = results.get("latency", {})
        ours_l = min(
            (
                (k, v.get(q))
                for k, v in lat.get("pgqueue", {}).items()
                if isinstance(v, dict) and median(v.get(q)) is not None
            ),
            key=lambda kv: median(kv[1]) or 0,
            default=("", None),
        )
        best_p: tuple[str, Any] = ("", None)
        for name in results.get("peers", []):
            for k, v in lat.get(name, {}).items():
                fig = v.get(q) if isinstance(v, dict) else None
                if _better(fig, best_p[1], lower=True):
                    best_p = (f"{name} {k}", fig)
        rows.append(
            [
                f"idle latency {q} ({ours_l[0]})",
                fmt_ms(ours_l[1]),
                f"{best_p[0]}: {fmt_ms(best_p[1])}" if best_p[1] else "no peer measured",
                fmt_ratio(ratio(ours_l[1], best_p[1])),
                "",
            ]
        )
    backlog = results.get("backlog", {})
    for case, what in (("queued", "queued"), ("finished", "finished rows")):
        fig = backlog.get(case, {})
        size = fig.get("queued") if case == "queued" else fig.get("finished_rows")
        rows.append(
            [
                f"backlog, {size or 0:,} {what}",
                fmt_rate(fig),
                "pgqueue only",
                "",
                f"{fmt_ratio(ratio(fig, backlog.get('reference')))} of the rate at "
                f"{backlog.get('reference', {}).get('queued', 0):,} queued",
            ]
        )
    mixed = results.get("mixed", {})
    if mixed.get("throughput"):
        wait = mixed.get("critical_wait", {})
        rows.append(
            [
                "mixed (4 queues, 20% 50 ms)",
                f"{mixed['throughput']:,.0f}/s",
                "pgqueue only",
                "",
                f"critical p99 wait {wait.get('p99', 0):.1f} ms",
            ]
        )
    return rows


HEAD = ["workload", "pgqueue", "best peer (its best setup)", "pgqueue / peer", "vs baseline"]


def console(results: dict[str, Any]) -> str:
    rows = [HEAD, *headline(results)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEAD))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    lines += [
        f"[{'met' if t['met'] else 'MISSED' if t['met'] is False else 'n/a'}] {t['name']}:"
        f" {t['summary']}"
        for t in results.get("targets", [])
    ]
    return "\n".join(lines)


def markdown(results: dict[str, Any], chart: str | None) -> str:
    from benchmarks.suite.report_sections import sections

    meta = results["meta"]
    m = meta["machine"]
    lines = [
        f"# pgqueue benchmarks, {meta['date']}",
        "",
        f"Profile **{meta['profile']}**, {meta['duration_s']:.0f} s in all, run with "
        f"`{meta['command']}`.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}; "
        f"Python {m['python']}, psycopg {m['psycopg']}; PostgreSQL {m['postgresql']} "
        f"({m['server']}; "
        + ", ".join(f"{k}={v}" for k, v in m["settings"].items() if v)
        + f"). Load average at start {m['loadavg_start'][0]:.2f}, at end "
        f"{meta.get('loadavg_end', [0])[0]:.2f}: other work on the machine makes every "
        "figure noisier, which is why each is a median of runs with its min and max.",
        "",
        "## Headline",
        "",
        *_table(HEAD, headline(results)),
        "## Targets",
        "",
    ]
    for t in results.get("targets", []):
        mark = "met" if t["met"] else "**missed**" if t["met"] is False else "not measured"
        lines.append(f"- {mark}: {t['name']}: {t['summary']}")
    lines.append("")
    lines += sections(results, _table)
    if chart:
        lines += ["## Chart", "", f"![throughput and latency]({chart})", ""]
    elif meta.get("chart_error"):
        lines += ["## Chart", "", f"No chart: {meta['chart_error']}.", ""]
    return "\n".join(lines)
