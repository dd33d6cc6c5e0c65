"""Warnings of a valid definition: properties of ``never_in_window`` and the cap warning."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from reachflow.domain.compliance.rules import load_rules
from reachflow.domain.definition_warnings import definition_warnings
from reachflow.domain.enums import Channel
from reachflow.domain.graph import ActionConfig, Graph, Node, NodeKind, RetryRule
from reachflow.domain.schedule import WeekSchedule
from tests.domain.strategies import week_schedules

NOW = datetime(2026, 3, 9, 14, 0, tzinfo=UTC)
RULES = load_rules()
#: Local minutes inside the federal calling hours (8:00-21:00), away from their edges.
FEDERAL = (8 * 60 + 1, 21 * 60 - 1)


def one_step(needs_tcpa: bool, retries: tuple[RetryRule, ...] = ()) -> Graph:
    config = ActionConfig(Channel.CALL, "a", needs_tcpa=needs_tcpa, retries=retries)
    return Graph("s", {"s": Node("s", NodeKind.ACTION, config)}, ())


def codes(graph: Graph, schedule: WeekSchedule | None) -> set[str]:
    return {
        w.code
        for w in definition_warnings(
            graph,
            paths={"s": "definition.steps[0]"},
            timezone="America/New_York",
            workflow_schedule=schedule,
            tcpa_schedule=None,
            rules=RULES,
            now=NOW,
        )
    }


def overlaps_federal_hours(schedule: WeekSchedule) -> bool:
    low, high = FEDERAL
    return any(r.start_minute < high and r.end_minute > low for day in schedule.days for r in day)


@given(week_schedules(grid=30))
def test_a_step_warns_it_never_runs_exactly_when_its_hours_miss_the_federal_ones(
    schedule: WeekSchedule,
) -> None:
    warned = "never_in_window" in codes(one_step(True), schedule)
    if overlaps_federal_hours(schedule):
        assert not warned
    if schedule.is_never_open:
        assert warned
    # Without the TCPA check only the schedule itself can close a step.
    assert ("never_in_window" in codes(one_step(False), schedule)) == schedule.is_never_open


@given(st.integers(1, 86400), st.integers(1, 10))
def test_retries_warn_when_they_would_pass_a_cap(delay: int, retries: int) -> None:
    graph = one_step(True, (RetryRule("NO_ANSWER", delay, retries),))
    caps = [r.cap for r in RULES.rules if r.cap is not None and Channel.CALL in r.channels]
    passes = any(
        1 + min(retries, int(cap.window.total_seconds()) // delay) > cap.max_attempts
        for cap in caps
    )
    assert ("retries_beyond_caps" in codes(graph, None)) == passes
    if retries >= 3 and delay <= 3600:  # Florida: 3 calls in 24 hours
        assert passes
