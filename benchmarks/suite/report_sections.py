"""The report's detailed sections: systems, each workload, the profile, the sizes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.suite.report_profile import profile_section
from benchmarks.suite.stats import fmt_ms, fmt_rate, fmt_ratio, ratio

Table = Callable[[list[str], list[list[str]]], list[str]]


def sections(results: dict[str, Any], table: Table) -> list[str]:
    out: list[str] = []
    for part in (
        _systems,
        _enqueue,
        _drain,
        _ceiling,
        _latency,
        _backlog,
        _mixed,
        profile_section,
        _sizes,
    ):
        out += part(results, table)
    return out


def _status(results: dict[str, Any], name: str) -> str | None:
    status = results.get("systems", {}).get(name, {}).get("status", "not run")
    return None if status == "ok" else str(status)


def _systems(results: dict[str, Any], table: Table) -> list[str]:
    rows = []
    for name, info in results.get("systems", {}).items():
        setups = "; ".join(
            f"{s['key']}: {s['note']} [{s['source']}]"
            for s in info.get("setups", [])
            if s["key"].endswith("/1p")
        )
        rows.append([name, info.get("version") or "-", info.get("status", "-"), setups or "-"])
    lines = [
        "## Systems",
        "",
        "Each system runs in a database of its own, with its documented schema setup "
        "(adapter docstrings in `benchmarks/suite/peers/`). `default` is what you get "
        "without configuring anything; `tuned` is the best setting its documentation "
        "offers for short jobs. `Np` is the number of worker processes (peers: N worker "
        "processes; pgqueue: its own `processes=N` supervisor).",
        "",
    ]
    return lines + table(
        ["system", "version", "status", "setups (1 process; 2p is the same x2)"], rows
    )


def _enqueue(results: dict[str, Any], table: Table) -> list[str]:
    enq = results.get("enqueue", {})
    raw = enq.get("raw", {})
    rows = []
    for name, figs in enq.items():
        if name == "raw":
            continue
        status = _status(results, name)
        if status:
            rows.append([name, status, status, "", ""])
            continue
        rows.append(
            [
                name,
                f"{fmt_rate(figs.get('single'))} ({figs.get('single', {}).get('jobs', 0):,} calls)",
                f"{fmt_rate(figs.get('bulk'))} ({figs.get('bulk', {}).get('jobs', 0):,} jobs)",
                fmt_ratio(ratio(figs.get("single"), raw.get("insert"))),
                fmt_ratio(ratio(figs.get("bulk"), raw.get("copy"))),
            ]
        )
    rows.append(
        [
            "raw psycopg",
            f"{fmt_rate(raw.get('insert'))} (INSERT + commit each)",
            f"{fmt_rate(raw.get('copy'))} (COPY)",
            "1.00x",
            "1.00x",
        ]
    )
    return [
        "## Enqueue",
        "",
        "Single: one call per job, each its own transaction, connection already open. "
        "Bulk: one call of the system's batch API (pgqueue `enqueue_many`, procrastinate "
        "`batch_defer`, PgQueuer `enqueue` with lists). The raw rows are pgqueue's table "
        "written with plain psycopg.",
        "",
        *table(["system", "single", "bulk", "single / raw INSERT", "bulk / raw COPY"], rows),
    ]


def _drain(results: dict[str, Any], table: Table) -> list[str]:
    drain = results.get("drain", {})
    rows = []
    for name in results.get("systems", {}):
        status = _status(results, name)
        figs = drain.get(name, {})
        for label in ("default", "tuned"):
            if status:
                rows.append([name, label, status, status])
                continue
            rows.append(
                [name, label, fmt_rate(figs.get(f"{label}/1p")), fmt_rate(figs.get(f"{label}/2p"))]
            )
    p = results.get("meta", {}).get("sizes", {})
    return [
        "## Drain",
        "",
        f"{p.get('drain_jobs', 0):,} no-op jobs queued before each run. A run ends when "
        f"the queue is empty or {p.get('drain_window')} s (pgqueue), "
        f"{p.get('peer_drain_window')} s (peers) or {p.get('ceiling_window')} s (ceiling "
        "loop) after the first job finished. The rate is the jobs recorded finished "
        "over the span from the first start to the last finish, by the server's clock "
        "(each worker's warm-up counts, process start-up does not; what a worker writes "
        "after it is told to stop is not counted).",
        "",
        *table(["system", "setup", "1 process", "2 processes"], rows),
        *_killed(drain),
    ]


def _killed(drain: dict[str, Any]) -> list[str]:
    notes = []
    for name, figs in drain.items():
        for key, fig in figs.items():
            n = sum(1 for r in fig.get("detail", []) if r.get("killed_after_grace"))
            if n:
                notes.append(f"- {name} {key}: in {n} run(s) a worker did not stop within "
                             "15 s of SIGTERM and was killed.")  # fmt: skip
    return [*notes, ""] if notes else []


def _ceiling(results: dict[str, Any], table: Table) -> list[str]:
    ceiling, ours = results.get("ceiling", {}), results.get("drain", {}).get("pgqueue", {})
    rows = []
    for key, fig in ceiling.items():
        loops = [w for r in fig.get("detail", []) for w in r.get("workers", [])]
        trips = sum(w.get("round_trips", 0) for w in loops) or 1
        claim = sum(w.get("claim_s", 0.0) for w in loops) / trips * 1000
        done = sum(w.get("complete_s", 0.0) for w in loops) / trips * 1000
        batch = sum(w.get("jobs", 0) for w in loops) / trips
        rows.append(
            [
                key,
                fmt_rate(fig),
                fmt_rate(ours.get(key)),
                fmt_ratio(ratio(ours.get(key), fig)),
                f"{batch:,.0f} jobs: claim {claim:.2f} ms + complete {done:.2f} ms",
            ]
        )
    return [
        "## PostgreSQL ceiling",
        "",
        "A plain psycopg loop per process: pgqueue's own `claim` (batch = the worker's "
        "concurrency) then `complete` for the whole batch, on one connection, nothing in "
        "between. Same jobs, same table, same batch sizes, no framework.",
        "",
        *table(
            [
                "setup",
                "ceiling loop",
                "pgqueue worker",
                "pgqueue / ceiling",
                "per round trip (mean)",
            ],
            rows,
        ),
    ]


def _latency(results: dict[str, Any], table: Table) -> list[str]:
    rows = []
    for name in results.get("systems", {}):
        status = _status(results, name)
        for key, fig in results.get("latency", {}).get(name, {}).items():
            if status or not isinstance(fig, dict) or "p50" not in fig:
                reason = status or (fig.get("status") if isinstance(fig, dict) else "")
                rows.append([name, key, str(reason), "", "", "", ""])
                continue
            rows.append(
                [
                    name,
                    key,
                    fmt_ms(fig["p50"]),
                    fmt_ms(fig["p95"]),
                    fmt_ms(fig["p99"]),
                    fmt_ms(fig["max"]),
                    f"{fig['jobs']}",
                ]
            )
        if status and not results.get("latency", {}).get(name):
            rows.append([name, "-", status, "", "", "", ""])
    floor = results.get("latency_floor")
    if isinstance(floor, dict) and "p50" in floor:
        rows.append(
            ["PostgreSQL floor", "LISTEN loop", fmt_ms(floor["p50"]), fmt_ms(floor["p95"]),
             fmt_ms(floor["p99"]), fmt_ms(floor["max"]), f"{floor['jobs']}"]
        )  # fmt: skip
    return [
        "## Idle latency",
        "",
        "An idle, warmed-up worker; jobs enqueued one at a time, 10 ms apart; the wait is "
        "the claim transaction's time minus the enqueue transaction's (server clock). "
        "Each percentile: median over runs (min-max). The PostgreSQL floor: the same "
        "INSERT and NOTIFY in one autocommit statement, answered at once by a plain "
        "LISTEN loop with a SELECT (its transaction's time minus the insert's): what "
        "any queue on this server and machine pays, before any framework.",
        "",
        *table(["system", "setup", "p50", "p95", "p99", "max", "jobs per run"], rows),
    ]


def _backlog(results: dict[str, Any], table: Table) -> list[str]:
    backlog = results.get("backlog", {})
    if not backlog:
        return []
    ref = backlog.get("reference")
    rows = []
    for case in ("reference", "queued", "finished"):
        fig = backlog.get(case, {})
        ex = fig.get("claim_explain", {})
        rows.append(
            [
                case,
                f"{fig.get('queued', 0):,}",
                f"{fig.get('finished_rows', 0):,}",
                fmt_rate(fig),
                fmt_ratio(ratio(fig, ref)),
                f"{ex.get('execution_ms') or 0:.2f} ms, {ex.get('shared_hit') or 0:,} buffers",
                f"{fig.get('fill_s', 0):.1f} s",
            ]
        )
    return [
        "## Backlog",
        "",
        f"pgqueue, {backlog.get('setup')}; each run drains {backlog.get('sample', 0):,} "
        "jobs. The claim walks `jobs_claim_idx`, a partial index holding only waiting "
        "jobs, so finished rows should not slow it and a deep queue only by O(log n). "
        "`EXPLAIN ANALYZE` of one claim of a full batch at each size, rolled back.",
        "",
        *table(
            [
                "case",
                "queued",
                "finished rows",
                "drain rate",
                "vs reference",
                "one claim (EXPLAIN)",
                "fill time",
            ],
            rows,
        ),
    ]


def _mixed(results: dict[str, Any], table: Table) -> list[str]:
    mixed = results.get("mixed", {})
    if not mixed:
        return []
    if "status" in mixed:
        return ["## Mixed", "", str(mixed["status"]), ""]
    rows = [
        [
            "critical: one every 10 ms while the backlog drains (from its enqueue)",
            *(f"{mixed['critical_wait'].get(q, 0):.1f} ms" for q in ("p50", "p95", "p99")),
            f"{mixed['critical_wait'].get('count', 0):.0f}",
        ]
    ]
    for q, w in mixed.get("backlog_wait_by_queue", {}).items():
        rows.append(
            [
                f"{q}: backlog (from the first claim)",
                *(f"{w.get(k, 0):.1f} ms" for k in ("p50", "p95", "p99")),
                f"{w.get('count', 0):.0f}",
            ]
        )
    return [
        "## Mixed",
        "",
        "Four queues, taken in this order by one worker process (concurrency "
        f"{mixed['concurrency']}): critical, high, default, low, priorities 30/20/10/0. "
        f"A backlog of {mixed['jobs']:,} jobs in the three lower queues, 80% no-op and 20% "
        "sleeping 50 ms, keeps the worker saturated while a critical no-op job arrives "
        f"every 10 ms ({mixed['trickle_jobs']} in all): its wait is the highest "
        f"priority's. Throughput of the whole mix **{mixed['throughput']:,.0f} jobs/s**.",
        "",
        *table(["jobs", "p50 wait", "p95 wait", "p99 wait", "count"], rows),
    ]


def _sizes(results: dict[str, Any], table: Table) -> list[str]:
    meta = results.get("meta", {})
    sizes = meta.get("sizes", {})
    lines = ["## Sizes", "", f"Profile `{meta.get('profile')}`:", ""]
    lines += [
        f"- {k}: {v:,}" if isinstance(v, int) else f"- {k}: {v}"
        for k, v in sizes.items()
        if k not in ("name", "scaled")
    ]
    if sizes.get("scaled"):
        lines += ["", "Smaller than the issue asks, to fit the time budget:", ""]
        lines += [f"- {s}" for s in sizes["scaled"]]
    return [*lines, ""]
