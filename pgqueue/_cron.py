"""Cron expressions, time zones and missed-window policies: pure functions, no I/O.

Expressions
    Five fields, ``minute hour day-of-month month day-of-week``, or six with a
    LEADING seconds field, ``second minute hour day-of-month month day-of-week``
    (the Quartz / Spring / node-cron order). Aliases: ``@yearly`` ``@annually``
    ``@monthly`` ``@weekly`` ``@daily`` ``@midnight`` ``@hourly``. ``H`` picks a
    stable pseudo-random value per schedule name (``H 9 * * *``). croniter
    computes the fires, on wall-clock times of the schedule's IANA zone.

Daylight saving (the Vixie cron rules)
    A schedule whose hour field starts with ``*`` (``*``, ``*/2``) follows
    elapsed time: it fires at every instant whose local time matches, so a
    repeated hour fires in both passes and a skipped hour simply has no fires.
    Any other schedule follows the wall clock: a local time that does not exist
    (spring forward) fires once, at the transition; a local time that happens
    twice (fall back) fires once, at its first occurrence.

Missed-window policies (``plan``)
    A fire at most ``grace`` seconds late is on time and always enqueued.
    Older due fires were missed; the policy decides what they become:

    ``skip``    nothing; next_run_at moves to the next future fire.
    ``latest``  the most recent missed fire, once, unless an on-time fire
                is enqueued anyway.
    ``all``     every missed fire, the most recent ``max_catchup`` of them.

All instants in and out are timezone-aware; results are in UTC.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterError, croniter

from pgqueue._errors import ScheduleError

UTC = timezone.utc
MISSED_POLICIES = ("skip", "latest", "all")
MAX_CATCHUP_LIMIT = 100_000
# Fires enqueued per schedule per tick, at most; the rest go to the next tick.
MAX_FIRES_PER_TICK = 1000

_ALIASES = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
            "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
            "@hourly": "0 * * * *"}  # fmt: skip
_HASHED = re.compile(r"(?<![a-z])h", re.IGNORECASE)  # an `H` field, not `thu`
_TICK = timedelta(microseconds=1)
_NORMAL, _AMBIGUOUS, _GAP = 0, 1, 2


class Cron:
    """A validated expression in a zone; ``next_after``/``prev_before`` walk its fires.

    Instances are immutable and safe to share between threads (each thread
    gets its own croniter cursor). Build them with :func:`parse_cron`.
    """

    __slots__ = ("_cursors", "_expr", "_hash_id", "_seconds", "expr", "interval", "timezone",
                 "tz")  # fmt: skip

    def __init__(self, expr: str, tz_name: str, hash_id: str | None = None) -> None:
        self.expr = expr
        self.timezone = tz_name
        self.tz = ZoneInfo(tz_name)
        self._hash_id = hash_id
        self._expr = _ALIASES.get(expr.strip().lower()) or " ".join(expr.split())
        self._seconds = len(self._expr.split()) == 6
        self._cursors = threading.local()
        # Parses (raises croniter's errors) and tells the hour field apart.
        hour_field = self._cursor().expressions[1]
        self.interval: bool = str(hour_field).startswith("*")

    def __repr__(self) -> str:
        return f"Cron({self.expr!r}, {self.timezone!r})"

    # -- wall-clock cursor (naive local times) ---------------------------------

    def _cursor(self) -> croniter:
        cursor: croniter | None = getattr(self._cursors, "cursor", None)
        if cursor is None:
            cursor = croniter(self._expr, datetime(2000, 1, 1), hash_id=self._hash_id,
                              second_at_beginning=self._seconds)
            self._cursors.cursor = cursor
        return cursor

    def _wall_next(self, wall: datetime) -> datetime:
        """The first matching local time strictly after ``wall`` (naive)."""
        cursor = self._cursor()
        cursor.set_current(wall, force=True)
        found: datetime = cursor.get_next(datetime)
        return found

    def _wall_prev(self, wall: datetime) -> datetime:
        """The last matching local time strictly before ``wall`` (naive)."""
        cursor = self._cursor()
        cursor.set_current(wall, force=True)
        found: datetime = cursor.get_prev(datetime)
        return found

    # -- local time <-> instants -------------------------------------------------

    def _local(self, t: datetime) -> tuple[datetime, int]:
        loc = t.astimezone(self.tz)
        return loc.replace(tzinfo=None), loc.fold

    def _resolve(self, wall: datetime) -> tuple[int, datetime, datetime]:
        """(kind, first, second) instants of a local time: equal when normal;
        for a gap, ``first`` is the transition and ``second`` is unused."""
        a = wall.replace(tzinfo=self.tz, fold=0).astimezone(UTC)
        b = wall.replace(tzinfo=self.tz, fold=1).astimezone(UTC)
        if a == b:
            return _NORMAL, a, a
        if a < b:
            return _AMBIGUOUS, a, b
        return _GAP, self._transition(b, a), a

    def _transition(self, lo: datetime, hi: datetime) -> datetime:
        """The first instant in (lo, hi] whose UTC offset differs from lo's (to the second)."""
        before = lo.astimezone(self.tz).utcoffset()
        low, high = 0, int((hi - lo).total_seconds())
        while high - low > 1:
            mid = (low + high) // 2
            if (lo + timedelta(seconds=mid)).astimezone(self.tz).utcoffset() == before:
                low = mid
            else:
                high = mid
        return lo + timedelta(seconds=high)

    def _window(self, wall: datetime) -> tuple[datetime, datetime]:
        """The repeated local-time range [start, end) holding the ambiguous ``wall``."""
        _, first, second = self._resolve(wall.replace(microsecond=0))  # transitions: whole s
        start = self._local(self._transition(first, second))[0]
        return start, start + (second - first)

    def _pass(self, wall: datetime, fold: int) -> datetime:
        """The instant of an ambiguous local time in the first (0) or second (1) pass."""
        _, first, second = self._resolve(wall)
        return second if fold else first

    def _fixed(self, wall: datetime) -> datetime:
        """The one instant a wall-clock schedule fires for a matching local time."""
        return self._resolve(wall)[1]

    # -- public walk ---------------------------------------------------------------

    def next_after(self, t: datetime) -> datetime:
        """The first fire strictly after the instant ``t``."""
        wall, fold = self._local(t)
        kind = self._resolve(wall)[0]
        if not self.interval:
            if kind == _AMBIGUOUS and fold == 1:  # the repeat: its first pass is over
                wall = self._window(wall)[1] - _TICK
            u = self._fixed(c := self._wall_next(wall))
            while u <= t:
                u = self._fixed(c := self._wall_next(c))
            return u
        if kind == _AMBIGUOUS:
            start, end = self._window(wall)
            c = self._wall_next(wall)
            if c < end:
                return self._pass(c, fold)
            if fold == 0:  # leaving the first pass: the repeat comes next
                again = self._wall_next(start - _TICK)
                if again < end:
                    return self._resolve(again)[2]
            return self._elapsed_from(c, forward=True)
        return self._elapsed_from(self._wall_next(wall), forward=True)

    def prev_before(self, t: datetime) -> datetime:
        """The last fire strictly before the instant ``t``."""
        wall, fold = self._local(t)
        kind = self._resolve(wall)[0]
        if not self.interval:
            if kind == _AMBIGUOUS and fold == 1:
                wall = self._window(wall)[1]
            u = self._fixed(c := self._wall_prev(wall))
            while u >= t:
                u = self._fixed(c := self._wall_prev(c))
            return u
        if kind == _AMBIGUOUS:
            start, end = self._window(wall)
            c = self._wall_prev(wall)
            if c >= start:
                return self._pass(c, fold)
            if fold == 1:  # leaving the repeat backwards: the first pass comes next
                again = self._wall_prev(end)
                if again >= start:
                    return self._resolve(again)[1]
            return self._elapsed_from(c, forward=False)
        return self._elapsed_from(self._wall_prev(wall), forward=False)

    def _elapsed_from(self, wall: datetime, *, forward: bool) -> datetime:
        """Elapsed-time rule, from a matching local time outside the current window."""
        while True:
            kind, first, second = self._resolve(wall)
            if kind == _NORMAL:
                return first
            if kind == _AMBIGUOUS:
                return first if forward else second
            wall = self._wall_next(wall) if forward else self._wall_prev(wall)

    def fires(self, after: datetime, until: datetime) -> Iterator[datetime]:
        """Fires in (after, until], in order."""
        u = self.next_after(after)
        while u <= until:
            yield u
            u = self.next_after(u)


@functools.lru_cache(maxsize=4096)
def _validated(expr: str, tz_name: str, hash_id: str | None) -> Cron:
    cron = Cron(expr, tz_name, hash_id)
    cron.next_after(datetime(2000, 1, 1, tzinfo=UTC))  # one that never fires fails here
    return cron


def parse_cron(expr: str, timezone: str = "UTC", *, name: str = "?") -> Cron:
    """Validate ``expr`` in zone ``timezone``; ``ScheduleError`` naming schedule ``name``."""
    if not isinstance(expr, str) or not expr.strip():
        raise ScheduleError(f"schedule {name!r}: empty cron expression")
    fields = expr.split()
    if fields[0].startswith("@"):
        if len(fields) != 1 or fields[0].lower() not in _ALIASES:
            raise ScheduleError(f"schedule {name!r}: unknown cron alias {expr!r}")
        expr = fields[0].lower()
    elif len(fields) not in (5, 6):
        raise ScheduleError(
            f"schedule {name!r}: cron expression {expr!r} has {len(fields)} fields;"
            " expected 5 (minute hour day month weekday) or 6 (second first)"
        )
    if not isinstance(timezone, str) or not timezone:
        raise ScheduleError(f"schedule {name!r}: empty time zone")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"schedule {name!r}: unknown time zone {timezone!r}") from None
    hash_id = name if not expr.startswith("@") and _HASHED.search(expr) else None
    try:
        return _validated(expr, timezone, hash_id)
    except (CroniterBadCronError, CroniterBadDateError, CroniterError, ValueError,
            KeyError, IndexError, TypeError) as exc:  # fmt: skip
        raise ScheduleError(f"schedule {name!r}: invalid cron expression {expr!r}: {exc}") from None


def check_policy(name: str, missed: str, max_catchup: int, grace_seconds: float) -> None:
    if missed not in MISSED_POLICIES:
        raise ScheduleError(
            f"schedule {name!r}: missed must be one of {', '.join(MISSED_POLICIES)}, not {missed!r}"
        )
    if not 1 <= max_catchup <= MAX_CATCHUP_LIMIT:
        raise ScheduleError(f"schedule {name!r}: max_catchup must be within 1..{MAX_CATCHUP_LIMIT}")
    if not grace_seconds >= 0:
        raise ScheduleError(f"schedule {name!r}: grace_seconds must be >= 0")


@dataclass(frozen=True)
class Plan:
    """What one tick does for one due schedule."""

    fires: tuple[datetime, ...]  # to enqueue, oldest first
    next_run_at: datetime  # the first fire left for later
    dropped: bool = False  # the policy dropped some missed fires


def plan(
    cron: Cron,
    next_run_at: datetime,
    now: datetime,
    *,
    missed: str = "latest",
    max_catchup: int = 10,
    grace: float = 60.0,
    limit: int = MAX_FIRES_PER_TICK,
) -> Plan:
    """The fires to enqueue at ``now`` for a schedule due at ``next_run_at``.

    ``next_run_at`` counts as a fire. Work is bounded by the fires enqueued
    (plus ``max_catchup`` steps back), not by the length of an outage.
    """
    if next_run_at > now:
        return Plan((), next_run_at)
    cutoff = now - timedelta(seconds=grace)
    caught_up: list[datetime] = []
    dropped = False
    if next_run_at < cutoff:  # fires in [next_run_at, cutoff) were missed
        keep = {"skip": 0, "latest": 1, "all": max_catchup}[missed]
        edge = cutoff
        while len(caught_up) < keep:
            edge = cron.prev_before(edge)
            if edge < next_run_at:
                break
            caught_up.append(edge)
        caught_up.reverse()
        if not caught_up or caught_up[0] != next_run_at:
            dropped = True
        first = cron.next_after(cutoff - _TICK)
    else:
        first = next_run_at
    on_time: list[datetime] = []
    u = first
    while u <= now and len(on_time) <= limit:
        on_time.append(u)
        u = cron.next_after(u)
    if missed == "latest" and on_time and caught_up:
        caught_up, dropped = [], True
    fires = caught_up + on_time
    if len(fires) > limit:
        return Plan(tuple(fires[:limit]), fires[limit], dropped)
    return Plan(tuple(fires), u, dropped)
