"""Weekly schedules in Feather's shape: ``{monday: {enabled, timeRanges: [{startHour, ...}]}}``.

A schedule is local wall-clock time; it becomes instants only together with a time zone
(see ``windows``). A day that is missing or disabled is closed. ``endHour`` 24 with
``endMinute`` 0 means midnight at the end of the day.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from reachflow.domain.enums import WEEKDAYS
from reachflow.domain.errors import ProblemCollector


@dataclass(frozen=True, slots=True, order=True)
class TimeRange:
    """A half-open local range [start, end) in minutes after midnight."""

    start_minute: int
    end_minute: int

    def to_json(self) -> dict[str, int]:
        return {
            "startHour": self.start_minute // 60,
            "startMinute": self.start_minute % 60,
            "endHour": self.end_minute // 60,
            "endMinute": self.end_minute % 60,
        }


@dataclass(frozen=True, slots=True)
class WeekSchedule:
    """Open ranges per weekday, Monday = 0."""

    days: tuple[tuple[TimeRange, ...], ...]

    @staticmethod
    def always_open() -> WeekSchedule:
        return WeekSchedule(days=tuple((TimeRange(0, 24 * 60),) for _ in WEEKDAYS))

    def ranges_on(self, weekday: int) -> tuple[TimeRange, ...]:
        return self.days[weekday]

    @property
    def is_never_open(self) -> bool:
        return not any(self.days)

    def to_json(self) -> dict[str, Any]:
        return {
            name: {"enabled": bool(ranges), "timeRanges": [r.to_json() for r in ranges]}
            for name, ranges in zip(WEEKDAYS, self.days, strict=True)
        }


#: Feather's documented TCPA example: Mon-Sat 08:00-21:00, Sunday 13:00-21:00.
DEFAULT_TCPA_SCHEDULE = WeekSchedule(
    days=tuple(
        (TimeRange(13 * 60, 21 * 60),) if name == "sunday" else (TimeRange(8 * 60, 21 * 60),)
        for name in WEEKDAYS
    )
)

_RANGE_KEYS = ("startHour", "startMinute", "endHour", "endMinute")


def parse_week_schedule(raw: object, path: str, problems: ProblemCollector) -> WeekSchedule:
    """Read Feather's weekday JSON; every problem goes to ``problems`` under its field path."""
    if not isinstance(raw, Mapping):
        problems.add(path, "must be an object keyed by weekday")
        return WeekSchedule.always_open()
    for key in raw:
        if key not in WEEKDAYS:
            problems.add(f"{path}.{key}", f"unknown weekday; expected one of {', '.join(WEEKDAYS)}")
    days: list[tuple[TimeRange, ...]] = []
    for name in WEEKDAYS:
        day = raw.get(name)
        days.append(_parse_day(day, f"{path}.{name}", problems) if day is not None else ())
    return WeekSchedule(days=tuple(days))


def _parse_day(day: object, path: str, problems: ProblemCollector) -> tuple[TimeRange, ...]:
    if not isinstance(day, Mapping):
        problems.add(path, "must be an object with 'enabled' and 'timeRanges'")
        return ()
    for key in day:
        if key not in ("enabled", "timeRanges"):
            problems.add(f"{path}.{key}", "unknown field")
    enabled = day.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.add(f"{path}.enabled", "must be a boolean")
        return ()
    ranges_raw = day.get("timeRanges", [])
    if not isinstance(ranges_raw, list):
        problems.add(f"{path}.timeRanges", "must be a list")
        return ()
    ranges = [
        r
        for i, item in enumerate(ranges_raw)
        if (r := _parse_range(item, f"{path}.timeRanges[{i}]", problems)) is not None
    ]
    if enabled and not ranges_raw:
        problems.add(f"{path}.timeRanges", "an enabled day needs at least one time range")
    return tuple(sorted(ranges)) if enabled else ()


def _parse_range(item: object, path: str, problems: ProblemCollector) -> TimeRange | None:
    if not isinstance(item, Mapping):
        problems.add(path, "must be an object {startHour, startMinute, endHour, endMinute}")
        return None
    for key in item:
        if key not in _RANGE_KEYS:
            problems.add(f"{path}.{key}", "unknown field")
    values: dict[str, int] = {}
    for key in _RANGE_KEYS:
        value = item.get(key, 0 if key.endswith("Minute") else None)
        if isinstance(value, bool) or not isinstance(value, int):
            problems.add(f"{path}.{key}", "must be an integer")
            return None
        values[key] = value
    ok = True
    for key in ("startHour", "endHour"):
        if not 0 <= values[key] <= 24:
            problems.add(f"{path}.{key}", "must be between 0 and 24")
            ok = False
    for key in ("startMinute", "endMinute"):
        if not 0 <= values[key] <= 59:
            problems.add(f"{path}.{key}", "must be between 0 and 59")
            ok = False
    if not ok:
        return None
    start = values["startHour"] * 60 + values["startMinute"]
    end = values["endHour"] * 60 + values["endMinute"]
    if start >= 24 * 60:
        problems.add(f"{path}.startHour", "a range must start before 24:00")
        return None
    if end > 24 * 60:
        problems.add(f"{path}.endHour", "a range must end at or before 24:00")
        return None
    if end <= start:
        problems.add(path, "end must be after start")
        return None
    return TimeRange(start, end)


def parse_timezone(raw: object, path: str, problems: ProblemCollector) -> str:
    if not isinstance(raw, str) or not raw:
        problems.add(path, "must be an IANA time zone name such as America/New_York")
        return "UTC"
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        problems.add(path, f"unknown time zone {raw!r}; use an IANA name such as America/New_York")
        return "UTC"
    return raw
