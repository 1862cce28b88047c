"""The report's profile section: where a drained job's time goes, worker and server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Table = Callable[[list[str], list[list[str]]], list[str]]


def budget(results: dict[str, Any], table: Table) -> list[str]:
    """Per job, in microseconds: the worker's Python, and the server's two statements."""
    prof = results.get("profile", {})
    jobs = prof.get("jobs") or 0
    if not jobs:
        return []
    rows = []
    fn = prof.get("functions")
    if fn and prof.get("tool") == "py-spy":
        rows.append(["worker: Python holding the GIL (py-spy)",
                     f"{fn['samples_seconds'] / jobs * 1e6:.1f} us"])  # fmt: skip
    for s in prof.get("server", {}).get("statements", []):
        text = str(s["query"])
        for needle, label in (
            ("-- Lease up", "server: claim (pg_stat_statements)"),
            ("-- Record finished", "server: complete (pg_stat_statements)"),
        ):
            if text.startswith(needle):
                rows.append([label, f"{s['total_ms'] / jobs * 1e3:.1f} us"])
    ceiling = results.get("ceiling", {}).get("tuned/1p", {})
    loops = [w for r in ceiling.get("detail", []) for w in r.get("workers", [])]
    done = sum(w.get("jobs", 0) for w in loops)
    if done:
        claim = sum(w.get("claim_s", 0.0) for w in loops) / done * 1e6
        complete = sum(w.get("complete_s", 0.0) for w in loops) / done * 1e6
        rows.append(["claim round trip, ceiling loop tuned/1p (client clock)", f"{claim:.1f} us"])
        rows.append(["complete round trip, ceiling loop tuned/1p", f"{complete:.1f} us"])
    if not rows:
        return []
    cores = results.get("meta", {}).get("machine", {}).get("cores") or "?"
    return ["", f"Where a drained job's time goes ({cores} cores shared by the worker, "
            "PostgreSQL and everything else on the machine):", "",
            *table(["per job", "time"], rows)]  # fmt: skip


def profile_section(results: dict[str, Any], table: Table) -> list[str]:
    prof = results.get("profile", {})
    if not prof:
        return []
    lines = [
        "## Profile",
        "",
        f"Workload: {prof.get('workload')}; "
        f"{prof.get('rate_under_profiler') or 0:,.0f} jobs/s under the profiler.",
    ]
    if prof.get("fallback_reason"):
        lines.append(f"Fallback: {prof['fallback_reason']}.")
    fn = prof.get("functions")
    if not fn:
        lines += ["", "No worker profile: neither py-spy nor pyinstrument could record "
                  "(pip install -e '.[bench]'); the server's side follows."]  # fmt: skip
    if fn:
        drain_s = prof.get("drain_seconds") or 0.0
        if prof["tool"] == "py-spy":
            what = ("py-spy attached to the warm worker; samples of the thread holding the "
                    "GIL, i.e. Python CPU, every thread")  # fmt: skip
        else:
            what = "pyinstrument, main thread only, start-up included"
        gil = (f" Python held the GIL {fn['samples_seconds']:.2f} s of the "
               f"{drain_s:.2f} s drain ({fn['samples_seconds'] / drain_s:.0%})."
               if drain_s else "")  # fmt: skip
        lines += [
            "",
            f"Worker ({what}; file `{prof['file']}`, open it in speedscope.app).{gil}",
            "",
            "By area (self time): " + ", ".join(f"{k} {v:.0%}" for k, v in fn["areas"].items()),
            "",
        ]
        lines += table(
            ["function (self time)", "share"],
            [[f"`{f['function']}`", f"{f['share']:.1%}"] for f in fn["self"][:12]],
        )
        lines += table(
            ["function (inclusive time)", "share"],
            [[f"`{f['function']}`", f"{f['share']:.1%}"] for f in fn["inclusive"][:12]],
        )
    lines += budget(results, table)
    lines += _plans(prof.get("explain", {}))
    server = prof.get("server", {})
    lines += ["", f"Server: {server.get('source')}.", ""]
    per = server.get("per_job", {})
    lines += table(
        ["per job", "value"], [[k.replace("_", " "), f"{v:,.2f}"] for k, v in per.items()]
    )
    if server.get("hot_update_ratio") is not None:
        lines += [f"HOT updates: {server['hot_update_ratio']:.0%} of row updates.", ""]
    if server.get("statements"):
        lines += table(
            ["statement", "calls", "total ms", "mean ms"],
            [
                [
                    f"`{s['query']}`",
                    f"{s['calls']:,}",
                    f"{s['total_ms']:,.0f}",
                    f"{s['mean_ms']:.3f}",
                ]
                for s in server["statements"]
            ],
        )
    return lines


def _plans(explain: dict[str, Any]) -> list[str]:
    if not explain.get("claim"):
        return []
    out = ["", f"The two statements with {explain['queued']:,} jobs queued, one batch of "
           f"{explain['batch']} (`EXPLAIN (ANALYZE, BUFFERS, WAL)`, rolled back):", ""]  # fmt: skip
    for name in ("claim", "complete"):
        plan = explain.get(name, [])
        last = plan[-1] if plan else ""
        out += [f"<details><summary>{name}: {last.strip()}</summary>", "", "```",
                *plan, "```", "", "</details>", ""]  # fmt: skip
    return out
