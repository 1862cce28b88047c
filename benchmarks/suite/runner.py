"""The order of a run, the command line (``python -m benchmarks``, ``pgqueue bench``)."""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import logging
import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.suite import chart, db, pgq, profiling, report, targets, workloads
from benchmarks.suite.profiles import PROFILES, Profile
from benchmarks.suite.stats import unavailable
from benchmarks.suite.systems import Pgqueue, System, all_systems

RESULTS = Path(__file__).resolve().parents[1] / "results"
SECTIONS = ("enqueue", "drain", "ceiling", "latency", "backlog", "mixed", "profile")


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


class Run:
    def __init__(self, profile: Profile, sections: tuple[str, ...], systems: list[System]) -> None:
        self.profile = profile
        self.sections = sections
        self.systems = systems
        self.results: dict[str, Any] = {
            "systems": {},
            "peers": [],
            "enqueue": {},
            "drain": {},
            "ceiling": {},
            "latency": {},
        }
        self.started = time.monotonic()

    def step(self, what: str, fn: Callable[[], Any]) -> Any:
        say(f"{what} ...")
        t0 = time.monotonic()
        try:
            value = fn()
        except Exception as exc:  # one failing workload must not sink the report
            logging.getLogger("benchmarks").debug("step failed", exc_info=True)
            value = unavailable(f"failed: {type(exc).__name__}: {exc}")
        say(
            f"{what}: {time.monotonic() - t0:.1f} s (total {time.monotonic() - self.started:.0f} s)"
        )
        return value

    def system(self, system: System, dbs: db.Databases) -> None:
        p, name = self.profile, system.name
        info: dict[str, Any] = {
            "version": _version(name),
            "setups": [
                {"key": s.key, "note": s.note, "source": s.source} for s in system.setups(p)
            ],
        }
        self.results["systems"][name] = info
        if name != "pgqueue":
            self.results["peers"].append(name)
        missing = system.missing()
        if missing:
            info["status"] = missing
            say(f"{name}: {missing}; skipped")
            for section in ("enqueue", "drain", "latency"):
                self.results[section][name] = {}
            return
        info["status"] = "ok"
        dsn = dbs.create(name, migrate=name == "pgqueue")
        self.step(f"{name}: schema", lambda: system.setup_schema(dsn))
        sizes = workloads.peer_profile_sizes(system, p)
        if "enqueue" in self.sections:
            self.results["enqueue"][name] = {
                "single": self.step(
                    f"{name}: single enqueue x {sizes['single']:,}",
                    lambda: workloads.enqueue_single(system, dsn, sizes["single"], p.runs),
                ),
                "bulk": self.step(
                    f"{name}: bulk enqueue of {sizes['bulk']:,}",
                    lambda: workloads.enqueue_bulk(system, dsn, sizes["bulk"], p.runs),
                ),
            }
            if name == "pgqueue":
                self.results["enqueue"]["raw"] = {
                    "insert": self.step(
                        "raw INSERT loop", lambda: pgq.raw_insert(dsn, p.enqueue_single, p.runs)
                    ),
                    "copy": self.step(
                        "raw COPY", lambda: pgq.raw_copy(dsn, p.enqueue_bulk, p.runs)
                    ),
                }
        setups = system.setups(p)
        if "latency" in self.sections and name == "pgqueue":
            self.results["latency_floor"] = self.step(
                "PostgreSQL latency floor",
                lambda: pgq.latency_floor(dsn, sizes["latency"], p.latency_spacing, p.runs),
            )
        if "latency" in self.sections:
            self.results["latency"][name] = {
                s.label: self.step(
                    f"{name}: latency {s.key}",
                    lambda s=s: workloads.latency(
                        system, dsn, s, sizes["latency"], p.latency_spacing, p.runs
                    ),
                )
                for s in setups
                if s.processes == 1
            }
        if "drain" in self.sections:
            window = p.drain_window if name == "pgqueue" else p.peer_drain_window
            system.reset(dsn)
            self.results["drain"][name] = {
                s.key: self.step(
                    f"{name}: drain {s.key}",
                    lambda s=s: workloads.drain(system, dsn, s, p.drain_jobs, window, p.runs),
                )
                for s in setups
            }
        if name == "pgqueue":
            self.pgqueue_only(dsn)
        dbs.drop(dsn)

    def pgqueue_only(self, dsn: str) -> None:
        p = self.profile
        if "ceiling" in self.sections:
            loop = pgq.CeilingLoop()
            loop.reset(dsn)
            self.results["ceiling"] = {
                s.key: self.step(
                    f"ceiling loop {s.key}",
                    lambda s=s: workloads.drain(
                        loop, dsn, s, p.drain_jobs, p.ceiling_window, p.runs
                    ),
                )
                for s in loop.setups(p)
            }
        if "mixed" in self.sections:
            self.results["mixed"] = self.step("mixed", lambda: pgq.mixed(dsn, p))
        if "profile" in self.sections:
            out = self.out_dir
            self.results["profile"] = self.step(
                "profile", lambda: profiling.record(dsn, p, out, self.stamp)
            )
        if "backlog" in self.sections:
            self.results["backlog"] = self.step("backlog", lambda: pgq.backlog(dsn, p))

    def run(self, server: str | None, out_dir: Path, command: str) -> dict[str, Any]:
        self.out_dir = out_dir
        now = dt.datetime.now()
        self.stamp = (
            now.strftime("%Y-%m-%d-%H%M%S")
            if self.profile.name != "default"
            else now.strftime("%Y-%m-%d")
        )
        if self.profile.name != "default":
            self.stamp += f"-{self.profile.name}"
        out_dir.mkdir(parents=True, exist_ok=True)
        with db.bench_server(server) as (maintenance, how):
            machine = db.machine(maintenance, how)
            say(f"server: {how}; profile {self.profile.name}")
            dbs = db.Databases(maintenance)
            try:
                for system in self.systems:
                    self.system(system, dbs)
            finally:
                dbs.drop_all()
        res = self.results
        res["meta"] = {
            "date": now.strftime("%Y-%m-%d %H:%M"),
            "stamp": self.stamp,
            "profile": self.profile.name,
            "sizes": self.profile.as_dict(),
            "machine": machine,
            "command": command,
            "duration_s": time.monotonic() - self.started,
            "loadavg_end": list(os.getloadavg()),
            "sections": list(self.sections),
        }
        res["targets"] = targets.evaluate(res)
        png = out_dir / f"{self.stamp}.png"
        error = chart.draw(res, png)
        res["meta"]["chart_error"] = error
        report.write_json(res, out_dir / f"{self.stamp}.json")
        (out_dir / f"{self.stamp}.md").write_text(report.markdown(res, None if error else png.name))
        return res


def parse(argv: list[str] | None, prog: str = "python -m benchmarks") -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="pgqueue benchmarks: pgqueue, PostgreSQL's ceiling and the peers, in one run.",
    )
    parser.add_argument("--profile", choices=sorted(PROFILES), default="default")
    parser.add_argument("--quick", action="store_true", help="the quick profile (< 2 minutes)")
    parser.add_argument(
        "--dsn",
        help="server (maintenance database) to create databases on; "
        "else $PGQUEUE_BENCH_DSN, the local server, or a throwaway cluster",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--no-peers", action="store_true", help="pgqueue and the ceiling only")
    parser.add_argument("--systems", help="comma-separated: pgqueue,procrastinate,pgqueuer")
    parser.add_argument("--only", help=f"comma-separated sections of: {','.join(SECTIONS)}")
    parser.add_argument("--runs", type=int, help="runs per figure (default: the profile's)")
    return parser.parse_args(argv)


def main(
    argv: list[str] | None = None, *, prog: str = "python -m benchmarks", peers: bool = True
) -> int:
    args = parse(argv, prog)
    profile = PROFILES["quick" if args.quick else args.profile]
    if args.runs:
        profile = replace(profile, runs=args.runs)
    sections = tuple(s.strip() for s in args.only.split(",")) if args.only else SECTIONS
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        print(f"error: unknown section(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    known = all_systems() if peers and not args.no_peers else [Pgqueue()]
    names = [n.strip() for n in args.systems.split(",")] if args.systems else None
    if names and set(names) - {s.name for s in known}:
        print(
            f"error: unknown system(s): {', '.join(set(names) - {s.name for s in known})}",
            file=sys.stderr,
        )
        return 2
    systems = [s for s in known if names is None or s.name in names]
    shown = argv if argv is not None else sys.argv[1:]
    command = " ".join([prog, *(shlex.quote(a) for a in shown)])
    run = Run(profile, sections, systems)
    results = run.run(args.dsn, args.out, command)
    print(report.console(results))
    print(f"\nresults: {args.out / (results['meta']['stamp'] + '.md')}")
    return 0
