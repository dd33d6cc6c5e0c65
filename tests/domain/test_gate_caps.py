"""Frequency caps and the suppression list inside the gate: properties against brute force."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from reachflow.domain.enums import Channel
from reachflow.domain.gate import Cap, Constraint, Gate
from reachflow.domain.schedule import DEFAULT_TCPA_SCHEDULE, WeekSchedule
from tests.domain.strategies import brute_allowed, week_schedules, zones

START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)

caps = st.builds(
    Cap,
    rule=st.just("US-XX-cap"),
    version=st.just("1"),
    max_attempts=st.integers(1, 4),
    window=st.integers(1, 30).map(lambda h: timedelta(hours=h)),
)


@st.composite
def attempt_lists(draw: st.DrawFn) -> tuple[datetime, ...]:
    offsets = draw(st.lists(st.integers(0, 36 * 60), max_size=6))
    return tuple(sorted(START + timedelta(minutes=m) for m in offsets))


def within_cap(cap: Cap, attempts: tuple[datetime, ...], at: datetime) -> bool:
    return sum(1 for a in attempts if a <= at < a + cap.window) < cap.max_attempts


@settings(max_examples=60, deadline=None)
@given(
    cap=caps,
    attempts=attempt_lists(),
    zone=zones,
    schedule=week_schedules(grid=60, max_ranges=2, never_closed=True),
    start=st.integers(24 * 60, 40 * 60),
)
def test_the_gate_answers_the_earliest_instant_inside_windows_and_caps(
    cap: Cap, attempts: tuple[datetime, ...], zone: str, schedule: WeekSchedule, start: int
) -> None:
    constraint = Constraint("tcpaSchedule", "1", zone, schedule, contact_window=True)
    gate = Gate(
        constraints=(constraint,), caps=(cap,), attempts=attempts, horizon=timedelta(days=4)
    )
    now = START + timedelta(minutes=start)
    answer = gate.check(now, Channel.CALL)
    if answer.at is None:
        return
    assert brute_allowed([constraint], timedelta(0), answer.at)
    assert within_cap(cap, attempts, answer.at)
    assert answer.allowed == (answer.at == now)
    # Nothing earlier (minute by minute) satisfies both.
    minute = now
    while minute < answer.at:
        assert not (
            brute_allowed([constraint], timedelta(0), minute) and within_cap(cap, attempts, minute)
        )
        minute += timedelta(minutes=1)


@settings(max_examples=60, deadline=None)
@given(
    cap=caps,
    wanted=st.integers(1, 12),
    gaps=st.lists(st.integers(0, 600), min_size=12, max_size=12),
)
def test_dispatching_whenever_the_gate_allows_never_exceeds_the_cap(
    cap: Cap, wanted: int, gaps: list[int]
) -> None:
    attempts: list[datetime] = []
    t = START
    for i in range(wanted):
        gate = Gate(caps=(cap,), attempts=tuple(attempts))
        answer = gate.check(t, Channel.TEXT)
        assert answer.at is not None
        attempts.append(answer.at)
        t = answer.at + timedelta(minutes=gaps[i])
    for at in attempts:
        in_window = [a for a in attempts if at <= a < at + cap.window]
        assert len(in_window) <= cap.max_attempts


def test_suppression_is_never_skipped_and_names_the_reason() -> None:
    tcpa = Constraint("tcpaSchedule", "d", "America/New_York", DEFAULT_TCPA_SCHEDULE, True)
    gate = Gate(constraints=(tcpa,), suppressed={Channel.TEXT: "opt-out reply: 'STOP'"})
    answer = gate.check(START, Channel.TEXT, needs_tcpa=False)
    assert (answer.allowed, answer.at, answer.suppressed) == (False, None, True)
    assert "STOP" in answer.reason
    assert gate.check(START + timedelta(hours=15), Channel.CALL).allowed


def test_a_cap_on_texts_only_leaves_calls_alone() -> None:
    cap = Cap("US-XX-texts", "1", 1, timedelta(hours=24), frozenset({Channel.TEXT}))
    gate = Gate(caps=(cap,), attempts=(START,))
    assert gate.check(START + timedelta(hours=1), Channel.CALL).allowed
    held = gate.check(START + timedelta(hours=1), Channel.TEXT)
    assert held.at == START + timedelta(hours=24)
    assert held.rules == ("US-XX-texts@1",)
