"""Shared hypothesis strategies and brute-force models for the pure-core tests.

The models here read wall clocks directly (``instant.astimezone(zone)``) and never call
``reachflow.domain.windows``, so they are an independent oracle for windows and the gate.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from reachflow.domain.enums import Channel
from reachflow.domain.gate import Constraint, Gate
from reachflow.domain.schedule import TimeRange, WeekSchedule

ZONES = (
    "UTC",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
    "Europe/London",
    "Australia/Lord_Howe",
)

#: Local dates of 2026 DST transitions in the zones above (US, UK, Lord Howe Island).
DST_DATES = (
    date(2026, 3, 8),
    date(2026, 11, 1),
    date(2026, 3, 29),
    date(2026, 10, 25),
    date(2026, 4, 5),
    date(2026, 10, 4),
)

zones = st.sampled_from(ZONES)


@st.composite
def instants(draw: st.DrawFn, *, step_minutes: int = 1) -> datetime:
    """Aware UTC instants on a minute grid, mostly within two days of a DST transition."""
    if draw(st.integers(0, 3)) == 0:
        base = datetime(2026, 1, 1, tzinfo=UTC)
        span = 365 * 24 * 60
    else:
        day = draw(st.sampled_from(DST_DATES))
        base = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(days=2)
        span = 4 * 24 * 60
    minutes = draw(st.integers(0, span // step_minutes)) * step_minutes
    return base + timedelta(minutes=minutes)


@cache
def transitions(zone_name: str, year: int = 2026) -> tuple[datetime, ...]:
    """UTC instants in ``year`` where the zone's UTC offset changes (minute precision)."""
    zone = ZoneInfo(zone_name)
    out = []
    t = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    step = timedelta(hours=1)
    while t < end:
        if t.astimezone(zone).utcoffset() != (t + step).astimezone(zone).utcoffset():
            lo, hi = t, t + step
            while hi - lo > timedelta(minutes=1):
                mid = lo + (hi - lo) / 2
                if mid.astimezone(zone).utcoffset() == lo.astimezone(zone).utcoffset():
                    lo = mid
                else:
                    hi = mid
            out.append(hi.replace(second=0, microsecond=0))
        t += step
    return tuple(out)


@st.composite
def zone_and_instant(draw: st.DrawFn, *, step_minutes: int = 1) -> tuple[str, datetime]:
    """A zone and a minute-grid instant, often within hours of one of the zone's DST changes."""
    name = draw(zones)
    changes = transitions(name)
    if changes and draw(st.booleans()):
        around = draw(st.sampled_from(changes))
        offset = draw(st.integers(-8 * 60 // step_minutes, 8 * 60 // step_minutes))
        return name, around + timedelta(minutes=offset * step_minutes)
    return name, draw(instants(step_minutes=step_minutes))


@st.composite
def day_ranges(draw: st.DrawFn, *, grid: int, max_ranges: int = 3) -> tuple[TimeRange, ...]:
    slots = 24 * 60 // grid
    out = []
    for _ in range(draw(st.integers(0, max_ranges))):
        start = draw(st.integers(0, slots - 1))
        end = draw(st.integers(start + 1, slots))
        out.append(TimeRange(start * grid, end * grid))
    return tuple(sorted(out))


@st.composite
def week_schedules(
    draw: st.DrawFn, *, grid: int = 15, max_ranges: int = 3, never_closed: bool = False
) -> WeekSchedule:
    days = tuple(draw(day_ranges(grid=grid, max_ranges=max_ranges)) for _ in range(7))
    if never_closed and not any(days):
        days = (
            (TimeRange(9 * 60, 17 * 60),),
            *days[1:],
        )
    return WeekSchedule(days=days)


def is_ambiguous(instant: datetime, zone: ZoneInfo) -> bool:
    """Whether the local wall time of ``instant`` occurs twice (a fall-back hour)."""
    local = instant.astimezone(zone)
    other = local.replace(fold=1 - local.fold)
    return other.utcoffset() != local.utcoffset()


def wall_is_ambiguous(day: date, minute_of_day: int, zone: ZoneInfo) -> bool:
    if minute_of_day >= 24 * 60:
        return False
    wall = datetime.combine(day, time(minute_of_day // 60, minute_of_day % 60), tzinfo=zone)
    return wall.replace(fold=0).utcoffset() != wall.replace(fold=1).utcoffset() and (
        wall.replace(fold=0).astimezone(UTC).astimezone(zone).replace(tzinfo=None)
        == wall.replace(tzinfo=None)
    )


def wall_open(schedule: WeekSchedule, zone: ZoneInfo, instant: datetime) -> bool:
    """The wall-clock model: is the local time of ``instant`` inside a range of its weekday?"""
    local = instant.astimezone(zone)
    minute = local.hour * 60 + local.minute + (local.second + local.microsecond / 1e6) / 60
    return any(r.start_minute <= minute < r.end_minute for r in schedule.ranges_on(local.weekday()))


def constraint_open(c: Constraint, instant: datetime) -> bool:
    zone = ZoneInfo(c.zone)
    if instant.astimezone(zone).date() in c.closed_dates:
        return False
    return wall_open(c.schedule, zone, instant)


def applicable(gate: Gate, channel: Channel, needs_tcpa: bool) -> list[Constraint]:
    return [
        c
        for c in gate.constraints
        if channel in c.channels and (needs_tcpa or not c.contact_window)
    ]


def brute_allowed(constraints: Sequence[Constraint], margin: timedelta, instant: datetime) -> bool:
    """Open at ``instant`` and still open ``margin`` later (sampled per minute, ends included).

    Exact when every window boundary lies on the minute grid and closed gaps last a minute or more.
    """
    samples = [instant + timedelta(minutes=k) for k in range(int(margin.total_seconds() // 60))]
    samples.append(instant + margin)
    return all(constraint_open(c, t) for c in constraints for t in samples)
