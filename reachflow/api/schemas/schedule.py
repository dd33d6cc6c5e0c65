"""Weekly schedules in Feather's shape (``domain/schedule.py``), for both surfaces."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from reachflow.api.schemas.common import Body

Hour = Annotated[int, Field(ge=0, le=24)]
Minute = Annotated[int, Field(ge=0, le=59)]


class TimeRange(Body):
    """Local wall-clock ``[start, end)``; ``endHour: 24, endMinute: 0`` is midnight."""

    startHour: Hour
    startMinute: Minute = 0
    endHour: Hour
    endMinute: Minute = 0


class DaySchedule(Body):
    enabled: bool = True
    timeRanges: list[TimeRange] = Field(
        default_factory=list, description="An enabled day needs at least one range"
    )


class WeekSchedule(Body):
    """Missing or disabled days are closed; a schedule with no enabled day is refused."""

    monday: DaySchedule | None = None
    tuesday: DaySchedule | None = None
    wednesday: DaySchedule | None = None
    thursday: DaySchedule | None = None
    friday: DaySchedule | None = None
    saturday: DaySchedule | None = None
    sunday: DaySchedule | None = None
