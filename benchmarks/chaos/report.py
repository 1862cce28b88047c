"""The run's report: JSON (everything) and Markdown (figures per scenario, the verdict)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCENARIO_TEXT = {
    "sigkill": "SIGKILL of whole workers (supervisor and children) and of single "
               "supervisor children",
    "restart": "PostgreSQL stopped (`immediate`: a crash, recovery from WAL; `fast`: clean) "
               "and started",
    "terminate": "`pg_terminate_backend` storm on pgqueue's sessions (application_name)",
    "exhaustion": "every connection slot taken by another client, pgqueue's sessions terminated",
    "read_only": "`default_transaction_read_only = on` + reload (a failover looks like this), "
                 "then off",
    "partition": "a worker in its own network namespace: link degraded, then cut; lease lapses, "
                 "another worker takes the job over; link back, the zombie finishes late",
}  # fmt: skip


def write(result: dict[str, Any], out: Path, name: str) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    js = out / f"{name}.json"
    md = out / f"{name}.md"
    js.write_text(json.dumps(result, indent=1, default=str) + "\n")
    md.write_text(markdown(result))
    return md, js


def _mark(ok: bool) -> str:
    return "pass" if ok else "**FAIL**"


def _recoveries(faults: list[dict[str, Any]]) -> list[float]:
    return [f["recovery"]["recovery_s"] for f in faults if f["recovery"]["recovery_s"] is not None]


def summary(result: dict[str, Any]) -> str:
    c = result["checks"]
    rec = _recoveries(result["faults"])
    return (
        f"jobs {result['plan']['jobs']}: lost {c['lost']['lost']}, transactional duplicates "
        f"{c['transactional_duplicates']['duplicated']}, at-least-once duplicates "
        f"{c['at_least_once_duplicates']['extra_effects']} "
        f"({c['at_least_once_duplicates']['unexplained']} unexplained), attempts undercount "
        f"{c['attempts_undercount']['jobs']}, faults {len(result['faults'])} "
        f"(recovery max {max(rec, default=0):.2f} s, bound {c['recovery']['bound_s']} s, "
        f"{c['recovery']['within_bound']} within), cron fires {c['cron']['fires']} "
        f"doubled {c['cron']['doubled']} missing {c['cron']['missing']}, zombie completions "
        f"refused {c['fencing'].get('refused', '-')}/{c['fencing'].get('zombie_completions', '-')}"
    )


def markdown(result: dict[str, Any]) -> str:
    c = result["checks"]
    plan = result["plan"]
    failed = ", ".join(result["verdict"]["failed"])
    verdict = "PASS" if result["verdict"]["ok"] else f"FAIL: {failed}"
    lines = [
        f"# Chaos run, {result['started']}",
        "",
        f"`{result['command']}`, {result['seconds']} s. **Verdict: {verdict}.**",
        "",
        f"{plan['jobs']:,} jobs (half at least once, half transactional, each half sync and "
        "async tasks) drained by "
        f"{plan['workers']} `pgqueue worker` commands x {plan['processes']} processes x "
        f"concurrency {plan['concurrency']}; lease {plan['lease']} s, rescuer every "
        f"{plan['rescue']} s (recovery bound {c['recovery']['bound_s']} s); PostgreSQL "
        f"{result['server'].get('server_version')} of the harness's own, fsync "
        f"{result['server'].get('fsync')}, synchronous_commit "
        f"{result['server'].get('synchronous_commit')}; {result['server'].get('deadlocks')} "
        "deadlocks in the run's database (`pg_stat_database`). Four `pgqueue scheduler` processes "
        f"ran a per-second schedule throughout, one killed every 2-5 s "
        f"({c['cron']['scheduler_kills']} kills). The machine (2 cores) was shared with other "
        "work: recovery times are upper bounds of what an idle machine shows.",
        "",
        "## Checks",
        "",
        "| check | figure | target | result |",
        "|---|---|---|---|",
        f"| jobs lost | {c['lost']['lost']} (not succeeded {c['lost']['not_succeeded']}, "
        f"ids missing {c['lost']['produced_ids_missing']}, sequence numbers missing "
        f"{c['lost']['sequence_numbers_missing']}) | 0 | {_mark(c['lost']['ok'])} |",
        f"| transactional effects duplicated | {c['transactional_duplicates']['duplicated']} of "
        f"{c['transactional_duplicates']['jobs']:,} jobs "
        f"({c['transactional_duplicates']['jobs_with_more_than_one_attempt']} ran more than one "
        f"attempt; without effect {c['transactional_duplicates']['succeeded_without_effect']}) "
        f"| 0 | {_mark(c['transactional_duplicates']['ok'])} |",
        f"| at-least-once effects duplicated | {c['at_least_once_duplicates']['extra_effects']} "
        f"extra effects on {c['at_least_once_duplicates']['jobs_with_duplicate_effects']} jobs, "
        f"{c['at_least_once_duplicates']['explained']} explained by the attempt's error "
        f"({_reasons(c['at_least_once_duplicates']['explained_by'])}) | every one explained | "
        f"{_mark(c['at_least_once_duplicates']['ok'])} |",
        f"| attempts undercounting executions | {c['attempts_undercount']['jobs']} | 0 | "
        f"{_mark(c['attempts_undercount']['ok'])} |",
        f"| faults recovered within lease + rescuer interval | "
        f"{c['recovery']['within_bound']} of {c['recovery']['faults']} "
        f"(max {max(_recoveries(result['faults']), default=0):.2f} s) | all, <= "
        f"{c['recovery']['bound_s']} s | {_mark(c['recovery']['ok'])} |",
        f"| cron fires doubled / missing | {c['cron']['doubled']} / {c['cron']['missing']} of "
        f"{c['cron']['fires']} fires | 0 / 0 | {_mark(c['cron']['ok'])} |",
        f"| zombie completions refused | {_fencing(c['fencing'])} | every one | "
        f"{_mark(c['fencing']['ok'])} |",
        f"| clock: only the database's clock decides | "
        f"{len(c['clock']['unargued'])} unargued wall-clock reads, "
        f"{len(c['clock']['required_now_fragments_missing'])} now() fragments missing | 0 / 0 "
        f"| {_mark(c['clock']['ok'])} |",
        "",
        "## Scenarios",
        "",
        "| scenario | what | faults | recovery (s): median / max | figures |",
        "|---|---|---|---|---|",
    ]
    for name, text in SCENARIO_TEXT.items():
        faults = [f for f in result["faults"] if f["scenario"] == name]
        if name not in result["scenarios"]:
            lines.append(f"| {name} | {text} | not run | | |")
            continue
        rec = sorted(_recoveries(faults))
        spread = f"{rec[len(rec) // 2]:.2f} / {rec[-1]:.2f}" if rec else "-"
        figures = ", ".join(f"{k} {v}" for k, v in result["scenarios"][name].items() if k != "jobs")
        bad = sum(1 for f in faults if not f["recovery"]["ok"])
        lines.append(f"| {name} | {text} | {len(faults)}{f' ({bad} over the bound)' if bad else ''}"
                     f" | {spread} | {figures} |")  # fmt: skip
    lines += [
        "",
        "Recovery: for a killed worker (and the partitioned one), from the kill (the cut) to",
        "the last rescue of a job it held, read from the jobs' `errors`; for a server fault,",
        "from the moment the server is whole again to the later of the first job completion",
        "and the moment the running set holds no lapsed lease any more (sampled every 0.1 s).",
        "",
        "## Faults",
        "",
        "| # | scenario | kind | at (s into the run) | recovery (s) | detail |",
        "|---|---|---|---|---|---|",
    ]
    t0 = min((f["at"] for f in result["faults"]), default=0)
    for n, f in enumerate(result["faults"], 1):
        r = f["recovery"]
        detail = ", ".join(f"{k} {v}" for k, v in r.items() if k not in ("recovery_s", "ok"))
        lines.append(f"| {n} | {f['scenario']} | {f['kind']} | {f['at'] - t0:.1f} | "
                     f"{r['recovery_s'] if r['recovery_s'] is not None else '-'}"
                     f"{'' if r['ok'] else ' **over**'} | {detail} |")  # fmt: skip
    fence = c["fencing"]
    if fence.get("cases"):
        lines += ["", "## Fencing (the partitioned worker)", "",
                  "| job | task | recorded by | attempts | effects (attempts) |"
                  " zombie finished after the takeover (s) | refused |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for k in fence["cases"]:
            lines.append(f"| {k['job']} | {k['task']} | {k['recorded_by']} | {k['attempts']} | "
                         f"{k['effect_attempts']} | {k['zombie_finished_after_takeover_s']} | "
                         f"{_mark(k['refused'])} |")  # fmt: skip
    lines += ["", "## Clock skew", "",
              "Only the database's clock decides leases, `run_at` and cron fires (checked on "
              "every run by `benchmarks/chaos/clock.py`). The wall-clock reads in `pgqueue/`:", ""]
    for f in c["clock"]["python_wall_clock_reads"]:
        lines.append(f"- `{f['where']}`: {f['why_harmless'] or '**not argued**'}")
    lines += ["", "Timestamp parameters of the SQL, and where their values come from:", ""]
    seen = set()
    for f in c["clock"]["sql_timestamp_parameters"]:
        if f["param"] not in seen:
            seen.add(f["param"])
            lines.append(f"- `{f['param']}`: {f['source'] or '**not argued**'}")
    lines += ["", "## Timeline", "", "| phase | seconds | jobs finished meanwhile |",
              "|---|---|---|"]
    lines += [f"| {t['scenario']} | {t['seconds']} | {t.get('jobs_finished', '-'):,} |"
              for t in result["timeline"]]
    lines += ["", f"Producer: {result['producer']}; drain after the last scenario "
              f"{result['drain_after_last_scenario_s']} s; worker exit codes "
              f"{result['worker_exit_codes']}.", ""]  # fmt: skip
    return "\n".join(lines)


def _reasons(by: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(by.items(), key=lambda kv: -kv[1])) or "none"


def _fencing(f: dict[str, Any]) -> str:
    if "skipped" in f:
        return f"not run: {f['skipped']}"
    return f"{f['refused']} of {f['zombie_completions']}"
