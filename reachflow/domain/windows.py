"""Calling windows as sets of UTC instants.

A window is built from local wall-clock schedules in one or more time zones, intersected, and
asked for ``next_allowed(instant)``. All arithmetic is on aware UTC datetimes; local times are
converted through ``zoneinfo`` per calendar day, so DST transitions shorten or lengthen the
day exactly as the wall clock does. A local start inside a spring-forward gap opens at the
first instant after the gap.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from reachflow.domain.schedule import WeekSchedule


@dataclass(frozen=True, slots=True, order=True)
class Interval:
    """Half-open [start, end) of aware UTC instants."""

    start: datetime
    end: datetime

    def contains(self, instant: datetime) -> bool:
        return self.start <= instant < self.end


def local_to_utc(day: date, minute_of_day: int, zone: ZoneInfo) -> datetime:
    """The UTC instant of a local wall time; 24:00 is the next day's midnight."""
    if minute_of_day >= 24 * 60:
        return local_to_utc(day + timedelta(days=1), minute_of_day - 24 * 60, zone)
    wall = datetime.combine(day, time(minute_of_day // 60, minute_of_day % 60), tzinfo=zone)
    instant = wall.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) != wall.replace(tzinfo=None):
        # The wall time does not exist (spring forward): open when the clock jumps.
        instant = _gap_end(wall, zone)
    return instant


def _gap_end(wall: datetime, zone: ZoneInfo) -> datetime:
    """First instant whose local time is at or after ``wall`` (wall lies inside a DST gap)."""
    before = wall.replace(fold=0).astimezone(UTC)
    after = wall.replace(fold=1).astimezone(UTC)
    low, high = min(before, after), max(before, after)
    # The transition lies in [low, high]; walk to it in minutes (gaps are at most a few hours).
    candidate = low
    while candidate <= high:
        if candidate.astimezone(zone).replace(tzinfo=None) >= wall.replace(tzinfo=None):
            return candidate
        candidate += timedelta(minutes=1)
    return high


def schedule_intervals(
    schedule: WeekSchedule, zone: ZoneInfo, start: datetime, end: datetime
) -> list[Interval]:
    """Open intervals of ``schedule`` read in ``zone`` that overlap [start, end), merged."""
    first = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date() + timedelta(days=1)
    out: list[Interval] = []
    day = first
    while day <= last:
        for r in schedule.ranges_on(day.weekday()):
            lo = local_to_utc(day, r.start_minute, zone)
            hi = local_to_utc(day, r.end_minute, zone)
            if hi > lo and hi > start and lo < end:
                out.append(Interval(max(lo, start), min(hi, end)))
        day += timedelta(days=1)
    return merge(out)


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for iv in sorted(intervals):
        if out and iv.start <= out[-1].end:
            if iv.end > out[-1].end:
                out[-1] = Interval(out[-1].start, iv.end)
        else:
            out.append(iv)
    return out


def intersect(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo = max(a[i].start, b[j].start)
        hi = min(a[i].end, b[j].end)
        if lo < hi:
            out.append(Interval(lo, hi))
        if a[i].end < b[j].end:
            i += 1
        else:
            j += 1
    return out


def subtract(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    """Instants of ``a`` that are not in ``b`` (both merged and sorted)."""
    out: list[Interval] = []
    for iv in a:
        pieces = [iv]
        for cut in b:
            next_pieces: list[Interval] = []
            for p in pieces:
                if cut.end <= p.start or cut.start >= p.end:
                    next_pieces.append(p)
                    continue
                if cut.start > p.start:
                    next_pieces.append(Interval(p.start, cut.start))
                if cut.end < p.end:
                    next_pieces.append(Interval(cut.end, p.end))
            pieces = next_pieces
        out.extend(pieces)
    return out


def shrink_ends(intervals: Sequence[Interval], margin: timedelta) -> list[Interval]:
    """Drop the last ``margin`` of each interval: nothing starts just before a window shuts."""
    return [Interval(iv.start, iv.end - margin) for iv in intervals if iv.end - margin > iv.start]


def first_at_or_after(intervals: Sequence[Interval], instant: datetime) -> datetime | None:
    for iv in intervals:
        if iv.end > instant:
            return max(iv.start, instant)
    return None
