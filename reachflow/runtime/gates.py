"""Build the dispatch gate for one execution from its workflow version and contact."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from reachflow.domain.decider import Lead
from reachflow.domain.errors import ProblemCollector
from reachflow.domain.gate import Constraint, Gate
from reachflow.domain.schedule import parse_week_schedule
from reachflow.store.records import VersionRecord

#: Extra constraints for a contact (the compliance engine plugs in here).
ContactRules = Callable[[VersionRecord, Lead], tuple[tuple[Constraint, ...], tuple[str, ...]]]


def no_contact_rules(
    _version: VersionRecord, _lead: Lead
) -> tuple[tuple[Constraint, ...], tuple[str, ...]]:
    return (), ()


def build_gate(
    version: VersionRecord,
    lead: Lead,
    *,
    margin: timedelta,
    horizon: timedelta,
    contact_rules: ContactRules = no_contact_rules,
) -> Gate:
    constraints: list[Constraint] = []
    if version.workflow_schedule is not None:
        schedule = parse_week_schedule(
            version.workflow_schedule, "workflowSchedule", ProblemCollector()
        )
        constraints.append(
            Constraint(
                rule="workflowSchedule",
                version=f"v{version.version}",
                zone=version.timezone,
                schedule=schedule,
            )
        )
    extra, refusals = contact_rules(version, lead)
    constraints.extend(extra)
    return Gate(constraints=tuple(constraints), margin=margin, horizon=horizon, refusals=refusals)
