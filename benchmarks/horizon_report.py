"""The pinned-horizon report (``benchmarks/horizon.py``): the phase table and the verdicts.

Targets of the issue, per form (an idle transaction holding an XID; four
REPEATABLE READ readers): at a fixed offered rate, every offered job
completed with the backlog under 1,000 while pinned, and the claim p99 at
most 10x the clean phase's; at maximum throughput (``--topup``), the pinned
phase's completion rate at least 80% of the clean phase's.
"""

from __future__ import annotations

from typing import Any

from benchmarks.load import cell, machine_line, mb, verdict, write

BACKLOG_LIMIT = 1_000
P99_FACTOR = 10.0
MAX_RATE_SHARE = 0.8
FULL = {"clean": 60.0, "pinned": 600.0, "recovery": 60.0}  # the sizes


def _phase(form: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in form["phases"] if p["phase"] == name)


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    topup = report["settings"].get("topup")
    for form in report["forms"]:
        clean, pinned = _phase(form, "clean"), _phase(form, "pinned")
        f = form["form"]
        if topup:
            share = (pinned["completed_per_s"] / clean["completed_per_s"]
                     if clean["completed_per_s"] else None)  # fmt: skip
            # A queue that ran dry was not the worker's limit: the producer's top-up
            # count (over jobs_claim_idx, dead entries included) could not keep it full.
            dry = pinned["backlog_last"] < topup / 2
            value = None if share is None else f"{share:.0%}"
            if dry:
                value = f"{value}; producer-bound (the queue ran dry)"
            met = None if share is None or dry else share >= MAX_RATE_SHARE
            out.append({"target": f"{f}: pinned rate at maximum throughput >= 80% of clean",
                        "value": value, "met": met})  # fmt: skip
            continue
        out.append({"target": f"{f}: every offered job completed", "value":
                    f"{form['completed']:,} of {form['offered']:,}",
                    "met": form["all_completed"]})  # fmt: skip
        out.append({"target": f"{f}: pinned backlog under {BACKLOG_LIMIT:,}",
                    "value": pinned["backlog_max"],
                    "met": pinned["backlog_max"] < BACKLOG_LIMIT})  # fmt: skip
        a, b = clean["claim_p99_ms"], pinned["claim_p99_ms"]
        ratio = b / a if a and b is not None else None
        out.append({"target": f"{f}: pinned claim p99 <= 10x clean",
                    "value": None if ratio is None else f"{b} vs {a} ms ({ratio:.1f}x)",
                    "met": None if ratio is None else ratio <= P99_FACTOR})  # fmt: skip
    return out


def _buf(p: dict[str, Any], side: str) -> str:
    buffers = p[f"buffers_{side}"]
    return "" if buffers is None else f"{buffers} ({p[f'rows_{side}']} jobs)"


def _where_time_goes(report: dict[str, Any]) -> list[str]:
    """CPU per completed job (server, worker, harness with its producer) and the
    statements that took the server's time, per phase (pg_stat_statements)."""
    lines = ["CPU per completed job (ms): the server's processes, the worker process, and"
             " this harness (the producer thread runs in it).", "",
             "| form | phase | server | worker | harness |", "|---|---|---|---|---|"]  # fmt: skip
    tables: list[str] = []
    for form in report["forms"]:
        for p in form["phases"]:
            lines.append(
                f"| {p['form']} | {p['phase']} | {cell(p.get('server_cpu_ms_per_job'))}"
                f" | {cell(p.get('worker_cpu_ms_per_job'))}"
                f" | {cell(p.get('harness_cpu_ms_per_job'))} |"
            )
            if p.get("statements"):
                tables += [f"Statements, {p['form']} {p['phase']} (pg_stat_statements):", "",
                           "| statement | calls | total ms | mean ms | buffers/call |",
                           "|---|---|---|---|---|"]  # fmt: skip
                tables += [
                    f"| `{st['query'].replace('|', '/')}` | {st['calls']} | {st['total_ms']}"
                    f" | {st['mean_ms']} | {st['buffers_per_call']} |"
                    for st in p["statements"]
                ]
                tables.append("")
    return [*lines, "", *tables]


def markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    offered = (f"a producer keeping ~{s['topup']:,} jobs waiting (maximum throughput)"
               if s.get("topup") else f"offered {s['rate']:.0f} jobs/s")  # fmt: skip
    lines = ["# Pinned horizon", ""]
    reduced = {k: s[k] for k in FULL if s[k] != FULL[k]}
    if reduced:
        lines += [f"**Reduced size** (phases {s['clean']:.0f}/{s['pinned']:.0f}/"
                  f"{s['recovery']:.0f} s; the issue's: 60/600/60 s)."
                  " Figures from such runs are not the headline.", ""]  # fmt: skip
    machine = report.get("machine")
    lines += [
        f"{offered.capitalize()} (batches of 128, 256-byte payloads), one worker"
        f" at concurrency {s['concurrency']}; phases {s['clean']:.0f}/{s['pinned']:.0f}/"
        f"{s['recovery']:.0f} s"
        + (f"; {machine_line(machine)}" if machine else ".")
        + " Buffers: shared buffers of the candidate scan of one claim of 32"
        " (EXPLAIN (ANALYZE, BUFFERS), rolled back), from the front of jobs_claim_idx"
        " and from the worker's bound.",
        "",
        "| form | phase | offered/s | completed/s | claim p50 ms | claim p99 ms | backlog last/max"
        " | table MB | claim idx MB | n_dead_tup | buffers from front | buffers bounded |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for form in report["forms"]:
        for p in form["phases"]:
            lines.append(
                f"| {p['form']} | {p['phase']} | {p['offered_per_s']} | {p['completed_per_s']}"
                f" | {cell(p['claim_p50_ms'])} | {cell(p['claim_p99_ms'])}"
                f" | {p['backlog_last']}/{p['backlog_max']} | {mb(p['table_bytes'])}"
                f" | {mb(p['claim_index_bytes'])} | {p['n_dead_tup']}"
                f" | {_buf(p, 'front')} | {_buf(p, 'bounded')} |"
            )
    lines += ["", *_where_time_goes(report)]
    for form in report["forms"]:
        lines.append(
            f"- {form['form']}: offered {form['offered']}, completed {form['completed']}"
            f" ({'all' if form['all_completed'] else 'NOT all'})."
        )
    if report.get("targets"):
        lines += ["", "| target | value | verdict |", "|---|---|---|"]
        for t in report["targets"]:
            lines.append(f"| {t['target']} | {cell(t['value'])} | {verdict(t['met'])} |")
    return "\n".join(lines) + "\n"


def save(report: dict[str, Any], out: Any, *, quick: bool, tag: str = "") -> None:
    """``<date>-horizon[-tag].json`` and ``.md`` (``-quick`` for ``--quick``)."""
    report["targets"] = targets(report)
    write("horizon", report, markdown, out, tag or ("quick" if quick else ""))
