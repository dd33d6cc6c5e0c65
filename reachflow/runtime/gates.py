"""The workflow's own schedules, read from its version (the contact's rules live in compliance)."""

from __future__ import annotations

from reachflow.domain.errors import ProblemCollector
from reachflow.domain.gate import Constraint
from reachflow.domain.schedule import WeekSchedule, parse_week_schedule
from reachflow.store.records import VersionRecord


def workflow_constraints(version: VersionRecord) -> tuple[Constraint, ...]:
    """The workflow schedule (business hours in the workflow's zone), when it has one."""
    if version.workflow_schedule is None:
        return ()
    schedule = parse_week_schedule(
        version.workflow_schedule, "workflowSchedule", ProblemCollector()
    )
    return (
        Constraint(
            rule="workflowSchedule",
            version=f"v{version.version}",
            zone=version.timezone,
            schedule=schedule,
        ),
    )


def tcpa_schedule(version: VersionRecord) -> WeekSchedule | None:
    """The workflow's ``tcpaSchedule`` (None: the documented default applies)."""
    if version.tcpa_schedule is None:
        return None
    return parse_week_schedule(version.tcpa_schedule, "tcpaSchedule", ProblemCollector())
