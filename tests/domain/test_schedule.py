"""parse_week_schedule: every problem names its field path; to_json round-trips."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings

from reachflow.domain.enums import WEEKDAYS
from reachflow.domain.errors import FieldError, ProblemCollector, ValidationFailed
from reachflow.domain.schedule import (
    DEFAULT_TCPA_SCHEDULE,
    TimeRange,
    WeekSchedule,
    parse_timezone,
    parse_week_schedule,
)
from tests.domain.strategies import week_schedules

PATH = "workflowSchedule"


def rng(sh: int, sm: int, eh: int, em: int) -> dict[str, int]:
    return {"startHour": sh, "startMinute": sm, "endHour": eh, "endMinute": em}


def parse(raw: object) -> tuple[WeekSchedule, list[FieldError]]:
    problems = ProblemCollector()
    schedule = parse_week_schedule(raw, PATH, problems)
    return schedule, problems.problems


def fields(raw: object) -> list[str]:
    return [p.field for p in parse(raw)[1]]


def test_parses_feather_example() -> None:
    raw = {
        "monday": {"enabled": True, "timeRanges": [rng(9, 0, 17, 0)]},
        "tuesday": {"enabled": True, "timeRanges": [rng(13, 30, 15, 0), rng(9, 0, 12, 0)]},
    }
    schedule, problems = parse(raw)
    assert problems == []
    assert schedule.ranges_on(0) == (TimeRange(540, 1020),)
    # Ranges come back sorted; missing days are closed.
    assert schedule.ranges_on(1) == (TimeRange(540, 720), TimeRange(810, 900))
    assert all(schedule.ranges_on(d) == () for d in range(2, 7))
    assert not schedule.is_never_open


@pytest.mark.parametrize(
    ("range_", "field", "text"),
    [
        (rng(9, 0, 25, 0), "timeRanges[0].endHour", "between 0 and 24"),
        (rng(-1, 0, 10, 0), "timeRanges[0].startHour", "between 0 and 24"),
        (rng(9, 60, 10, 0), "timeRanges[0].startMinute", "between 0 and 59"),
        (rng(9, 0, 10, -5), "timeRanges[0].endMinute", "between 0 and 59"),
        (rng(24, 0, 24, 0), "timeRanges[0].startHour", "start before 24:00"),
        (rng(9, 0, 24, 30), "timeRanges[0].endHour", "at or before 24:00"),
        (rng(9, 0, 9, 0), "timeRanges[0]", "end must be after start"),
        (rng(17, 0, 9, 0), "timeRanges[0]", "end must be after start"),
        ({"startHour": "9", "endHour": 17}, "timeRanges[0].startHour", "integer"),
        ({"startHour": True, "endHour": 17}, "timeRanges[0].startHour", "integer"),
        ({"startHour": 9}, "timeRanges[0].endHour", "integer"),
        ({**rng(9, 0, 17, 0), "endSecond": 1}, "timeRanges[0].endSecond", "unknown field"),
        ("9-17", "timeRanges[0]", "must be an object"),
    ],
)
def test_range_problems_name_the_field(range_: object, field: str, text: str) -> None:
    _, problems = parse({"monday": {"enabled": True, "timeRanges": [range_]}})
    assert [p.field for p in problems] == [f"{PATH}.monday.{field}"]
    assert text in problems[0].message


def test_second_range_is_indexed() -> None:
    raw = {"friday": {"enabled": True, "timeRanges": [rng(9, 0, 12, 0), rng(13, 0, 12, 0)]}}
    assert fields(raw) == [f"{PATH}.friday.timeRanges[1]"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"funday": {"enabled": True, "timeRanges": [rng(9, 0, 17, 0)]}}, [f"{PATH}.funday"]),
        ({"Monday": {"enabled": True}}, [f"{PATH}.Monday"]),
        ({"monday": {"enabled": "yes"}}, [f"{PATH}.monday.enabled"]),
        ({"monday": {"enabled": True, "timeRanges": {}}}, [f"{PATH}.monday.timeRanges"]),
        ({"monday": {"enabled": True, "timeRanges": []}}, [f"{PATH}.monday.timeRanges"]),
        ({"monday": {"enabled": True}}, [f"{PATH}.monday.timeRanges"]),
        ({"monday": {"open": True, "timeRanges": [rng(9, 0, 10, 0)]}}, [f"{PATH}.monday.open"]),
        ({"monday": "9-17"}, [f"{PATH}.monday"]),
        ([], [PATH]),
        ("always", [PATH]),
    ],
)
def test_day_problems_name_the_field(raw: object, expected: list[str]) -> None:
    assert fields(raw) == expected


def test_unknown_weekday_message_lists_weekdays() -> None:
    _, problems = parse({"funday": {"enabled": False}})
    assert "unknown weekday" in problems[0].message
    assert "monday" in problems[0].message


def test_every_problem_is_collected() -> None:
    raw = {
        "funday": {},
        "monday": {"enabled": True, "timeRanges": [rng(9, 0, 8, 0), rng(9, 0, 25, 0)]},
        "sunday": {"enabled": 1},
    }
    assert fields(raw) == [
        f"{PATH}.funday",
        f"{PATH}.monday.timeRanges[0]",
        f"{PATH}.monday.timeRanges[1].endHour",
        f"{PATH}.sunday.enabled",
    ]
    problems = ProblemCollector()
    parse_week_schedule(raw, PATH, problems)
    with pytest.raises(ValidationFailed) as info:
        problems.raise_if_any()
    assert info.value.field == f"{PATH}.funday"
    assert len(info.value.errors) == 4


def test_end_at_midnight_is_allowed() -> None:
    schedule, problems = parse({"saturday": {"enabled": True, "timeRanges": [rng(20, 0, 24, 0)]}})
    assert problems == []
    assert schedule.ranges_on(5) == (TimeRange(20 * 60, 24 * 60),)
    assert schedule.to_json()["saturday"]["timeRanges"] == [rng(20, 0, 24, 0)]


def test_minutes_default_to_zero() -> None:
    schedule, problems = parse(
        {"monday": {"enabled": True, "timeRanges": [{"startHour": 9, "endHour": 17}]}}
    )
    assert problems == []
    assert schedule.ranges_on(0) == (TimeRange(540, 1020),)


def test_disabled_day_is_closed_even_with_ranges() -> None:
    schedule, problems = parse({"monday": {"enabled": False, "timeRanges": [rng(9, 0, 17, 0)]}})
    assert problems == []
    assert schedule.ranges_on(0) == ()
    assert schedule.is_never_open


def test_enabled_defaults_to_true() -> None:
    schedule, problems = parse({"monday": {"timeRanges": [rng(9, 0, 17, 0)]}})
    assert problems == []
    assert schedule.ranges_on(0) == (TimeRange(540, 1020),)


def test_not_an_object_is_always_open_with_a_problem() -> None:
    schedule, problems = parse(None)
    assert [p.field for p in problems] == [PATH]
    assert schedule == WeekSchedule.always_open()


def test_to_json_shape() -> None:
    out = DEFAULT_TCPA_SCHEDULE.to_json()
    assert list(out) == list(WEEKDAYS)
    assert out["sunday"] == {"enabled": True, "timeRanges": [rng(13, 0, 21, 0)]}
    assert out["monday"] == {"enabled": True, "timeRanges": [rng(8, 0, 21, 0)]}
    closed = WeekSchedule(days=((),) * 7).to_json()
    assert closed["monday"] == {"enabled": False, "timeRanges": []}


@settings(max_examples=150, deadline=None)
@given(week_schedules(grid=1, max_ranges=4))
def test_to_json_round_trip(schedule: WeekSchedule) -> None:
    again, problems = parse(schedule.to_json())
    assert problems == []
    assert again == schedule


def test_always_open() -> None:
    schedule = WeekSchedule.always_open()
    assert all(schedule.ranges_on(d) == (TimeRange(0, 1440),) for d in range(7))
    assert not schedule.is_never_open


@pytest.mark.parametrize("raw", ["America/New_York", "Australia/Lord_Howe", "UTC"])
def test_parse_timezone_accepts_iana_names(raw: str) -> None:
    problems = ProblemCollector()
    assert parse_timezone(raw, "timezone", problems) == raw
    assert problems.problems == []


@pytest.mark.parametrize("raw", ["Mars/Olympus", "", None, 5, "../etc/passwd"])
def test_parse_timezone_rejects_others(raw: Any) -> None:
    problems = ProblemCollector()
    assert parse_timezone(raw, "timezone", problems) == "UTC"
    assert [p.field for p in problems.problems] == ["timezone"]
