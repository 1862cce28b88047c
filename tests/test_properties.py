"""Properties of the I/O-free core, checked on generated cases (hypothesis).

- cron next-fire, in time zones with and without daylight saving, against a
  brute-force oracle built on croniter's plain wall-clock walk, and against
  croniter itself wherever no offset change is near;
- the backoff: full jitter within [0, min(cap, base * 2 ** (attempt - 1))],
  for every attempt a job can reach;
- JSON: what ``encode_json`` accepts comes back equal, from its text and from
  PostgreSQL's jsonb; what it refuses is a ``TypeError``;
- the claim order, on a real database with the real claim statement: jobs in
  the listed queue order, each queue by ``priority DESC, run_at, id``.

Example counts are bounded by a settings profile (``HYPOTHESIS_PROFILE=thorough``
runs many more); the whole file takes a few seconds.
"""

from __future__ import annotations

import json
import math
import os
import random
import uuid
from datetime import datetime, timedelta, timezone
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from croniter import croniter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pgqueue
from pgqueue._core import MAX_ATTEMPTS, JobSpec, dumps, encode_json
from pgqueue._cron import parse_cron
from pgqueue._sql import query

settings.register_profile(
    "pgqueue",
    max_examples=60,
    deadline=None,  # a shared 2-core machine: no per-example timing
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile("thorough", parent=settings.get_profile("pgqueue"), max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "pgqueue"))

UTC = timezone.utc

# Zones with one-hour, half-hour (Lord Howe) and southern-hemisphere changes, odd
# offsets (Kolkata, Chatham, St John's), and none at all.
ZONES = [
    "UTC", "Europe/Paris", "America/New_York", "Europe/London", "Australia/Lord_Howe",
    "America/Santiago", "Pacific/Chatham", "America/St_Johns", "Asia/Kolkata",
]  # fmt: skip


def _transitions(zone: str) -> list[datetime]:
    """The instants (UTC) where ``zone`` changes offset, 2024-2027, to the minute."""
    tz = ZoneInfo(zone)
    found = []
    t = datetime(2024, 1, 1, tzinfo=UTC)
    step = timedelta(hours=1)
    while t.year < 2028:
        if (t + step).astimezone(tz).utcoffset() != t.astimezone(tz).utcoffset():
            lo, hi = t, t + step
            while hi - lo > timedelta(minutes=1):
                mid = lo + (hi - lo) / 2
                same = mid.astimezone(tz).utcoffset() == lo.astimezone(tz).utcoffset()
                lo, hi = (mid, hi) if same else (lo, mid)
            found.append(hi.replace(second=0, microsecond=0))
        t += step
    return found


TRANSITIONS = {zone: _transitions(zone) for zone in ZONES}

# Fields that fire at least weekly (so the oracle's walk stays short), with the hours
# daylight saving moves (1, 2, 3), intervals and lists.
MINUTES = st.sampled_from(["0", "30", "15,45", "*/20", "0-59/7", "*", "59"])
HOURS = st.sampled_from(["*", "*/2", "1", "2", "3", "1-3", "0", "23", "12", "2,14", "*/5"])
DAYS_OF_WEEK = st.sampled_from(["*", "*", "1-5", "0", "6"])
SECONDS = st.sampled_from([None, None, "0", "30", "*/20"])


@st.composite
def expressions(draw: st.DrawFn) -> str:
    fields = [draw(MINUTES), draw(HOURS), "*", "*", draw(DAYS_OF_WEEK)]
    seconds = draw(SECONDS)
    if seconds is not None and fields[0] != "*":  # keep every-second walks out of the oracle
        fields.insert(0, seconds)
    return " ".join(fields)


@st.composite
def instants(draw: st.DrawFn, zone: str) -> datetime:
    """Near an offset change (most of the time), else anywhere in 2024-2027."""
    if TRANSITIONS[zone] and draw(st.integers(0, 3)):
        at = draw(st.sampled_from(TRANSITIONS[zone]))
        return at + timedelta(seconds=draw(st.integers(-2 * 86_400, 2 * 86_400)))
    base = datetime(2024, 1, 1, tzinfo=UTC)
    return base + timedelta(seconds=draw(st.integers(0, 4 * 365 * 86_400)))


def _gap_instant(wall: datetime, tz: ZoneInfo) -> datetime:
    """The instant a wall-clock time that does not exist is taken to: the change."""
    early = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)  # the later offset
    late = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    t = early.replace(second=0, microsecond=0)
    while t.astimezone(tz).utcoffset() == early.astimezone(tz).utcoffset() and t < late:
        t += timedelta(minutes=1)  # transitions fall on whole minutes
    return t


def oracle_next(expr: str, zone: str, after: datetime) -> datetime:
    """The README's rules, by brute force over croniter's naive wall-clock walk."""
    tz = ZoneInfo(zone)
    interval = expr.split()[1 if len(expr.split()) == 5 else 2].startswith("*")
    six = len(expr.split()) == 6
    wall = after.astimezone(tz).replace(tzinfo=None) - timedelta(hours=3)
    walk = croniter(expr, wall, second_at_beginning=six)
    best: datetime | None = None
    while True:
        w = walk.get_next(datetime)
        first = w.replace(tzinfo=tz, fold=0).astimezone(UTC)
        second = w.replace(tzinfo=tz, fold=1).astimezone(UTC)
        if first == second:
            candidates = [first]
        elif first < second:  # happens twice
            candidates = [first, second] if interval else [first]
        else:  # does not exist
            candidates = [] if interval else [_gap_instant(w, tz)]
        for c in candidates:
            if c > after and (best is None or c < best):
                best = c
        if best is not None and w.replace(tzinfo=tz, fold=0) > best + timedelta(hours=3):
            return best


def _offset_steady(zone: str, start: datetime, end: datetime) -> bool:
    tz = ZoneInfo(zone)
    lo, hi = start - timedelta(days=1), end + timedelta(days=1)
    return not any(lo <= t <= hi for t in TRANSITIONS[zone]) and (
        lo.astimezone(tz).utcoffset() == hi.astimezone(tz).utcoffset()
    )


@given(data=st.data(), zone=st.sampled_from(ZONES), expr=expressions())
def test_cron_next_fire_follows_the_dst_rules(data: st.DataObject, zone: str, expr: str) -> None:
    cron = parse_cron(expr, zone)
    after = data.draw(instants(zone))
    nxt = cron.next_after(after)
    assert nxt > after
    assert nxt == oracle_next(expr, zone, after), (expr, zone, after)
    assert cron.prev_before(nxt) <= after  # nothing fires in between
    if _offset_steady(zone, after, nxt):
        # Far from any change, croniter's own zone-aware walk agrees.
        aware = croniter(expr, after.astimezone(ZoneInfo(zone)),
                         second_at_beginning=len(expr.split()) == 6)  # fmt: skip
        assert nxt == aware.get_next(datetime).astimezone(UTC)


@given(zone=st.sampled_from(ZONES), expr=expressions(), data=st.data())
def test_cron_fires_are_increasing_and_each_is_the_next(
    zone: str, expr: str, data: st.DataObject
) -> None:
    cron = parse_cron(expr, zone)
    start = data.draw(instants(zone))
    fires = list(cron.fires(start, start + timedelta(hours=30)))
    assert all(a < b for a, b in pairwise(fires))
    for previous, fire in zip([start, *fires], fires, strict=False):
        assert cron.next_after(previous) == fire


# -- backoff ---------------------------------------------------------------------------


@given(
    base=st.floats(0, 1e6, allow_nan=False),
    cap=st.floats(0, 1e9, allow_nan=False),
    attempt=st.integers(1, MAX_ATTEMPTS),
    seed=st.integers(0, 2**32 - 1),
)
def test_backoff_is_full_jitter_under_the_cap(
    base: float, cap: float, attempt: int, seed: int
) -> None:
    policy = pgqueue.RetryPolicy(base=base, cap=cap)
    delay = policy.delay(attempt, random.Random(seed))  # regression: no OverflowError past 1024
    exponent = attempt - 1
    ceiling = min(cap, base * 2.0**exponent) if exponent < 1024 else (cap if base else 0.0)
    assert 0.0 <= delay <= ceiling and math.isfinite(delay)


@given(bad=st.sampled_from([math.inf, -math.inf, math.nan, -1.0]))
def test_backoff_refuses_what_is_no_duration(bad: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        pgqueue.RetryPolicy(base=bad)
    with pytest.raises(ValueError, match="finite"):
        pgqueue.RetryPolicy(cap=bad)


# -- JSON ------------------------------------------------------------------------------

TEXT = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=20)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False,
                                                                 allow_infinity=False) | TEXT
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)


def same_json(a: Any, b: Any) -> bool:
    """Equal as JSON: a number may come back as an int or a float of the same value
    (jsonb keeps numbers as decimals: 1e16 reads back as 10000000000000000)."""
    if isinstance(a, float | int) and not isinstance(a, bool):
        return isinstance(b, float | int) and not isinstance(b, bool) and float(a) == float(b)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(same_json, a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(
            same_json(v, b[k]) for k, v in a.items()
        )
    return type(a) is type(b) and a == b


@given(args=st.lists(JSON, max_size=4), kwargs=st.dictionaries(TEXT, JSON, max_size=4),
       meta=st.dictionaries(TEXT, JSON, max_size=3))  # fmt: skip
def test_encoded_arguments_decode_to_themselves(
    args: list[Any], kwargs: dict[str, Any], meta: dict[str, Any]
) -> None:
    spec = JobSpec("t.any", args=tuple(args), kwargs=kwargs, meta=meta)
    a, k, m = encode_json(spec)
    assert json.loads(a) == args and json.loads(k) == kwargs and json.loads(m) == meta


@given(value=JSON, poison=st.sampled_from([math.nan, math.inf, {1, 2}, b"x", object()]))
def test_a_non_json_value_anywhere_is_a_type_error(value: Any, poison: Any) -> None:
    with pytest.raises(TypeError):
        dumps([value, {"deep": [poison]}], "the argument")


@given(keys=st.lists(st.integers(-3, 3) | st.sampled_from(["0", "1", "-1", "x"]), max_size=5))
def test_keys_that_json_would_merge_are_refused(keys: list[Any]) -> None:
    value = {key: i for i, key in enumerate(keys)}
    if len({str(k) for k in value}) == len(value):
        assert json.loads(dumps(value, "v")) == {str(k): v for k, v in value.items()}
    else:
        with pytest.raises(TypeError, match="two keys"):
            dumps(value, "v")


@pytest.fixture(scope="module")
def roundtrip_db(pg_dsn: str) -> Any:
    from pgqueue._testdb import migrated_database

    with migrated_database(pg_dsn) as dsn:
        yield dsn


@settings(max_examples=40)
@given(args=st.lists(JSON, max_size=3), kwargs=st.dictionaries(TEXT, JSON, max_size=3),
       result=JSON)  # fmt: skip
def test_arguments_and_results_survive_jsonb(
    roundtrip_db: str, args: list[Any], kwargs: dict[str, Any], result: Any
) -> None:
    """Through PostgreSQL as the worker reads them (``args::text``) and as
    ``get_job`` does (psycopg's jsonb loader), and a result as the completer stores it."""
    spec = JobSpec("t.any", args=tuple(args), kwargs=kwargs)
    a, k, _ = encode_json(spec)
    with psycopg.connect(roundtrip_db) as conn:
        row = conn.execute(
            "SELECT %s::jsonb::text, %s::jsonb::text, %s::jsonb, %s::jsonb",
            (a, k, dumps(result, "result"), a),
        ).fetchone()
        conn.rollback()
    assert row is not None
    assert same_json(args, json.loads(row[0])) and same_json(kwargs, json.loads(row[1]))
    assert same_json(result, row[2]) and same_json(args, row[3])


# -- the claim order -------------------------------------------------------------------

QUEUES = ["a", "b", "c"]
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

JOBS = st.lists(
    st.tuples(
        st.sampled_from(QUEUES),
        st.integers(-3, 3),  # priority
        st.integers(-50, 5),  # run_at, seconds from now: a few are not due yet
    ),
    min_size=1,
    max_size=40,
)


@given(jobs=JOBS, order=st.permutations(QUEUES), listed=st.integers(1, 3),
       batches=st.lists(st.integers(1, 12), min_size=1, max_size=8))  # fmt: skip
def test_the_claim_takes_jobs_in_queue_then_priority_run_at_id_order(
    roundtrip_db: str, jobs: list[tuple[str, int, int]], order: list[str], listed: int,
    batches: list[int],
) -> None:  # fmt: skip
    queues = order[:listed]
    with psycopg.connect(roundtrip_db, autocommit=True) as conn:
        conn.execute("TRUNCATE pgqueue.jobs RESTART IDENTITY")
        # run_at relative to the database's clock (the claim compares with now()).
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO pgqueue.jobs (queue, task, priority, run_at)"
                " VALUES (%s, 't', %s, now() + make_interval(secs => %s))",
                [(q, p, s) for q, p, s in jobs],
            )
        rows = conn.execute(
            "SELECT id, queue, priority, run_at FROM pgqueue.jobs WHERE run_at <= now()"
        ).fetchall()
        expected = [
            r[0] for r in sorted(
                (r for r in rows if r[1] in queues),
                key=lambda r: (queues.index(r[1]), -r[2], r[3], r[0]),
            )
        ]  # fmt: skip
        taken: list[int] = []
        for limit in batches:
            params = {"queues": queues, "limit": limit, "lease": 30, "worker_id": "w",
                      "token": str(uuid.uuid4())}  # fmt: skip
            claimed = [r[0] for r in conn.execute(query("claim"), params).fetchall()]
            # One claim takes the next `limit` jobs of that order (in any row order).
            assert sorted(claimed) == sorted(expected[len(taken) : len(taken) + limit])
            taken += sorted(claimed, key=expected.index)
    assert taken == expected[: len(taken)]
