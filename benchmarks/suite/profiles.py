"""Profiles: how big each workload is and how long a worker may run.

``default`` is the issue's workload at the sizes that fit 10 minutes on two
cores; ``quick`` fits 2 minutes; ``tiny`` proves the harness in CI (sizes
chosen for speed, numbers meaningless). Every deviation from the issue's
sizes is listed in ``scaled`` and printed in the report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class Profile:
    name: str
    runs: int = 3  # each figure: median of this many runs, with min and max
    enqueue_single: int = 10_000  # single enqueue calls, each its own transaction
    enqueue_bulk: int = 100_000  # jobs in one enqueue_many
    peer_enqueue_single: int = 10_000
    peer_enqueue_bulk: int = 100_000
    drain_jobs: int = 50_000  # queued before each drain run
    drain_window: float = 5.0  # seconds of work a drain run may take (from its first finish)
    peer_drain_window: float = 3.0
    ceiling_window: float = 3.0
    concurrency_default: int = 10  # pgqueue's default (WorkerConfig.concurrency)
    concurrency_tuned: int = 500
    latency_jobs: int = 500
    latency_spacing: float = 0.010
    peer_latency_jobs: int = 500
    backlog_queued: int = 1_000_000
    backlog_finished: int = 5_000_000
    backlog_reference: int = 10_000  # the small queue the big ones are compared with
    backlog_sample: int = 10_000  # jobs drained per backlog run
    mixed_jobs: int = 20_000
    mixed_concurrency: int = 100
    mixed_trickle_spacing: float = 0.010  # a critical job every 10 ms during the mixed drain
    profile_seconds: float = 5.0
    budget_seconds: float = 600.0
    scaled: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT = Profile(
    name="default",
    scaled=(
        "drain: a run stops 5 s (pgqueue), 3 s (peers) or 3 s (ceiling loop) after its first"
        " finished job if the 50,000 jobs are not done by then (the slow setups: their rate"
        " is steady by then)",
    ),
)

QUICK = replace(
    DEFAULT,
    name="quick",
    runs=1,
    enqueue_single=2_000,
    enqueue_bulk=20_000,
    peer_enqueue_single=1_000,
    peer_enqueue_bulk=20_000,
    drain_jobs=20_000,
    drain_window=2.5,
    peer_drain_window=1.5,
    ceiling_window=1.5,
    latency_jobs=150,
    peer_latency_jobs=100,
    backlog_queued=200_000,
    backlog_finished=300_000,
    backlog_sample=5_000,
    mixed_jobs=5_000,
    profile_seconds=2.0,
    budget_seconds=120.0,
    scaled=("quick profile: one run per figure and every size reduced (see sizes)",),
)

TINY = replace(
    QUICK,
    name="tiny",
    enqueue_single=100,
    enqueue_bulk=1_000,
    peer_enqueue_single=50,
    peer_enqueue_bulk=500,
    drain_jobs=500,
    drain_window=1.0,
    peer_drain_window=1.0,
    ceiling_window=1.0,
    concurrency_tuned=50,
    latency_jobs=20,
    peer_latency_jobs=10,
    backlog_queued=3_000,
    backlog_finished=3_000,
    backlog_reference=300,
    backlog_sample=300,
    mixed_jobs=200,
    profile_seconds=1.0,
    budget_seconds=60.0,
    scaled=("tiny profile: proves the harness works (CI); the numbers mean nothing",),
)

PROFILES = {p.name: p for p in (DEFAULT, QUICK, TINY)}
