"""windows: schedule intervals agree with the wall clock, interval algebra agrees with sets."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reachflow.domain.schedule import TimeRange, WeekSchedule
from reachflow.domain.windows import (
    Interval,
    first_at_or_after,
    intersect,
    local_to_utc,
    merge,
    schedule_intervals,
    shrink_ends,
    subtract,
)
from tests.domain.strategies import (
    instants,
    is_ambiguous,
    wall_is_ambiguous,
    wall_open,
    week_schedules,
    zone_and_instant,
    zones,
)

NY = ZoneInfo("America/New_York")


def every_day(*ranges: tuple[int, int]) -> WeekSchedule:
    return WeekSchedule(days=tuple(tuple(TimeRange(a, b) for a, b in ranges) for _ in range(7)))


def assert_well_formed(ivs: list[Interval], start: datetime, end: datetime) -> None:
    for iv in ivs:
        assert iv.start.utcoffset() == timedelta(0)
        assert start <= iv.start < iv.end <= end
    for a, b in itertools.pairwise(ivs):
        assert a.end < b.start  # sorted, merged: not even touching


def exempt(schedule: WeekSchedule, zone: ZoneInfo, instant: datetime) -> bool:
    """A documented inexactness: a range edge inside a repeated (fall-back) hour is read at its
    first occurrence, so instants in the second occurrence may disagree with the wall clock."""
    if not is_ambiguous(instant, zone):
        return False
    day = instant.astimezone(zone).date()
    return any(
        wall_is_ambiguous(day, m, zone)
        for r in schedule.ranges_on(day.weekday())
        for m in (r.start_minute, r.end_minute)
    )


@settings(max_examples=250, deadline=None)
@given(where=zone_and_instant(), schedule=week_schedules(grid=15))
def test_schedule_intervals_agree_with_the_wall_clock(
    where: tuple[str, datetime], schedule: WeekSchedule
) -> None:
    zone_name, t = where
    zone = ZoneInfo(zone_name)
    start, end = t - timedelta(hours=30), t + timedelta(hours=30)
    ivs = schedule_intervals(schedule, zone, start, end)
    assert_well_formed(ivs, start, end)
    samples = {start + timedelta(minutes=13 * k) for k in range(int(60 * 60 / 13))}
    for iv in ivs:
        for edge in (iv.start, iv.end):
            samples.update({edge - timedelta(minutes=1), edge, edge + timedelta(seconds=30)})
    for s in sorted(samples):
        if not start <= s < end:
            continue
        opened = any(iv.contains(s) for iv in ivs)
        if opened != wall_open(schedule, zone, s):
            assert exempt(schedule, zone, s), (s, s.astimezone(zone), opened)


@settings(max_examples=100, deadline=None)
@given(zone_name=zones, t=instants())
def test_always_open_is_one_interval(zone_name: str, t: datetime) -> None:
    ivs = schedule_intervals(WeekSchedule.always_open(), ZoneInfo(zone_name), t, t + timedelta(2))
    assert ivs == [Interval(t, t + timedelta(2))]


def test_never_open_has_no_interval() -> None:
    t = datetime(2026, 3, 8, tzinfo=UTC)
    assert schedule_intervals(WeekSchedule(days=((),) * 7), NY, t, t + timedelta(7)) == []


def local_day_length(zone: ZoneInfo, day: date) -> timedelta:
    sched = every_day((0, 24 * 60))
    start = local_to_utc(day, 0, zone)
    end = local_to_utc(day, 24 * 60, zone)
    ivs = schedule_intervals(sched, zone, start, end)
    return sum((iv.end - iv.start for iv in ivs), timedelta())


@pytest.mark.parametrize(
    ("zone", "day", "hours"),
    [
        ("America/New_York", date(2026, 3, 8), 23),
        ("America/New_York", date(2026, 11, 1), 25),
        ("America/Chicago", date(2026, 3, 8), 23),
        ("America/Phoenix", date(2026, 3, 8), 24),
        ("Pacific/Honolulu", date(2026, 11, 1), 24),
        ("Europe/London", date(2026, 3, 29), 23),
        ("Europe/London", date(2026, 10, 25), 25),
        ("Australia/Lord_Howe", date(2026, 4, 5), 24.5),
        ("Australia/Lord_Howe", date(2026, 10, 4), 23.5),
    ],
)
def test_dst_days_shorten_or_lengthen(zone: str, day: date, hours: float) -> None:
    assert local_day_length(ZoneInfo(zone), day) == timedelta(hours=hours)


def test_business_hours_follow_the_wall_clock_across_spring_forward() -> None:
    sched = every_day((9 * 60, 17 * 60))
    ivs = schedule_intervals(
        sched, NY, datetime(2026, 3, 7, tzinfo=UTC), datetime(2026, 3, 10, tzinfo=UTC)
    )
    assert [(iv.start.hour, iv.end.hour) for iv in ivs] == [(14, 22), (13, 21), (13, 21)]


def test_start_inside_the_spring_gap_opens_when_the_clock_jumps() -> None:
    # 02:30 does not exist in New York on 2026-03-08; 03:00 EDT is 07:00 UTC.
    assert local_to_utc(date(2026, 3, 8), 150, NY) == datetime(2026, 3, 8, 7, tzinfo=UTC)
    lh = ZoneInfo("Australia/Lord_Howe")
    # 02:00-02:30 does not exist on Lord Howe on 2026-10-04; 02:30 LHDT is 15:30 UTC (+11).
    assert local_to_utc(date(2026, 10, 4), 2 * 60 + 10, lh) == datetime(
        2026, 10, 3, 15, 30, tzinfo=UTC
    )
    sched = every_day((2 * 60 + 10, 2 * 60 + 20))
    day = datetime(2026, 10, 3, 12, tzinfo=UTC)
    ivs = schedule_intervals(sched, lh, day, day + timedelta(hours=6))
    assert ivs == []  # a range wholly inside the gap never opens


def test_range_edge_inside_the_repeated_hour_uses_its_first_occurrence() -> None:
    """Pinned behaviour: 00:00-01:30 on fall-back day closes at the first 01:30 (EDT)."""
    sched = every_day((0, 90))
    start = datetime(2026, 11, 1, 4, tzinfo=UTC)
    (iv,) = schedule_intervals(sched, NY, start, start + timedelta(hours=4))
    assert iv == Interval(start, datetime(2026, 11, 1, 5, 30, tzinfo=UTC))


def test_midnight_end_is_next_days_midnight() -> None:
    assert local_to_utc(date(2026, 11, 1), 24 * 60, NY) == datetime(2026, 11, 2, 5, tzinfo=UTC)


def test_ranges_touching_across_midnight_merge() -> None:
    sched = every_day((0, 60), (23 * 60, 24 * 60))
    start = datetime(2026, 6, 1, tzinfo=UTC)
    ivs = schedule_intervals(sched, ZoneInfo("UTC"), start, start + timedelta(days=2))
    assert ivs == [
        Interval(start, start + timedelta(hours=1)),
        Interval(start + timedelta(hours=23), start + timedelta(hours=25)),
        Interval(start + timedelta(hours=47), start + timedelta(hours=48)),
    ]


# ------------------------------------------------------------------ interval algebra vs sets

T0 = datetime(2026, 3, 8, 6, tzinfo=UTC)
N = 40


def minute(k: int) -> datetime:
    return T0 + timedelta(minutes=k)


@st.composite
def raw_intervals(draw: st.DrawFn) -> list[Interval]:
    out = []
    for _ in range(draw(st.integers(0, 6))):
        a = draw(st.integers(0, N - 1))
        b = draw(st.integers(a + 1, N))
        out.append(Interval(minute(a), minute(b)))
    return out


def as_set(ivs: list[Interval]) -> set[int]:
    return {k for iv in ivs for k in range(N + 2) if iv.start <= minute(k) < iv.end}


def assert_canonical(ivs: list[Interval]) -> None:
    for iv in ivs:
        assert iv.start < iv.end
    for a, b in itertools.pairwise(ivs):
        assert a.end < b.start


@settings(max_examples=200, deadline=None)
@given(raw_intervals())
def test_merge_keeps_the_set_and_canonicalises(ivs: list[Interval]) -> None:
    merged = merge(ivs)
    assert as_set(merged) == as_set(ivs)
    assert_canonical(merged)
    assert merge(merged) == merged


@settings(max_examples=200, deadline=None)
@given(raw_intervals(), raw_intervals())
def test_intersect_is_set_intersection(a: list[Interval], b: list[Interval]) -> None:
    out = intersect(merge(a), merge(b))
    assert as_set(out) == as_set(a) & as_set(b)
    assert_canonical(out)


@settings(max_examples=200, deadline=None)
@given(raw_intervals(), raw_intervals())
def test_subtract_is_set_difference(a: list[Interval], b: list[Interval]) -> None:
    out = subtract(merge(a), merge(b))
    assert as_set(out) == as_set(a) - as_set(b)
    assert out == sorted(out)
    for iv in out:
        assert iv.start < iv.end


@settings(max_examples=200, deadline=None)
@given(raw_intervals(), st.integers(0, 10))
def test_shrink_ends_drops_the_margin(ivs: list[Interval], margin: int) -> None:
    merged = merge(ivs)
    out = shrink_ends(merged, timedelta(minutes=margin))
    inside = as_set(merged)
    expected = {k for k in inside if all(k + j in inside for j in range(margin + 1))}
    assert as_set(out) == expected


@settings(max_examples=200, deadline=None)
@given(raw_intervals(), st.integers(0, N + 1))
def test_first_at_or_after_is_the_minimum(ivs: list[Interval], k: int) -> None:
    merged = merge(ivs)
    later = sorted(m for m in as_set(merged) if m >= k)
    got = first_at_or_after(merged, minute(k))
    assert got == (minute(later[0]) if later else None)


def test_interval_is_half_open() -> None:
    iv = Interval(minute(0), minute(5))
    assert iv.contains(minute(0))
    assert iv.contains(minute(5) - timedelta(microseconds=1))
    assert not iv.contains(minute(5))
