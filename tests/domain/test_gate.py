"""Gate.check against a minute-by-minute wall-clock model."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from reachflow.domain.enums import Channel
from reachflow.domain.gate import Constraint, Gate
from reachflow.domain.schedule import DEFAULT_TCPA_SCHEDULE, TimeRange, WeekSchedule
from tests.domain.strategies import (
    applicable,
    brute_allowed,
    constraint_open,
    instants,
    week_schedules,
    zone_and_instant,
    zones,
)

HORIZON_MINUTES = 3 * 24 * 60

channel_sets = st.sampled_from(
    [frozenset({Channel.CALL, Channel.TEXT}), frozenset({Channel.CALL}), frozenset({Channel.TEXT})]
)


@st.composite
def constraints(draw: st.DrawFn, near: datetime) -> Constraint:
    zone = draw(zones)
    closed: frozenset[date] = frozenset()
    if draw(st.integers(0, 3)) == 0:
        closed = frozenset({(near + timedelta(days=draw(st.integers(-1, 2)))).date()})
    return Constraint(
        rule=draw(st.sampled_from(["workflowSchedule", "tcpaSchedule", "US-FL-hours"])),
        version=str(draw(st.integers(1, 3))),
        zone=zone,
        schedule=draw(week_schedules(grid=60, max_ranges=2)),
        contact_window=draw(st.booleans()),
        channels=draw(channel_sets),
        closed_dates=closed,
    )


@st.composite
def gates_and_now(draw: st.DrawFn) -> tuple[Gate, datetime]:
    _, now = draw(zone_and_instant())
    cs = tuple(draw(constraints(now)) for _ in range(draw(st.integers(0, 3))))
    margin = timedelta(minutes=draw(st.sampled_from([0, 1, 15, 30, 60])))
    return Gate(constraints=cs, margin=margin), now


def brute_first_allowed(
    gate: Gate, cs: list[Constraint], now: datetime
) -> tuple[int | None, list[bool]]:
    """Minute-by-minute: the first k in [0, HORIZON) with now + k minutes allowed."""
    margin_minutes = int(gate.margin.total_seconds() // 60)
    total = HORIZON_MINUTES + margin_minutes + 1
    open_ = [all(constraint_open(c, now + timedelta(minutes=k)) for c in cs) for k in range(total)]
    allowed = [all(open_[k : k + margin_minutes + 1]) for k in range(HORIZON_MINUTES)]
    return next((k for k, ok in enumerate(allowed) if ok), None)


@settings(max_examples=80, deadline=None)
@given(gates_and_now(), st.sampled_from(list(Channel)), st.booleans(), st.data())
def test_check_agrees_with_the_wall_clock(
    gate_now: tuple[Gate, datetime], channel: Channel, needs_tcpa: bool, data: st.DataObject
) -> None:
    gate, now = gate_now
    cs = applicable(gate, channel, needs_tcpa)
    answer = gate.check(now, channel, needs_tcpa)
    first = brute_first_allowed(gate, cs, now)

    assert answer.allowed == (first == 0)
    assert answer.allowed == brute_allowed(cs, gate.margin, now)
    if answer.allowed:
        assert answer.at == now
        return
    assert answer.reason
    assert answer.rules
    assert cs  # with nothing applicable the gate always allows
    if first is None:
        # Not open within the model's 3 days: the gate's answer must lie beyond them, or never.
        assert answer.at is None or answer.at >= now + timedelta(minutes=HORIZON_MINUTES)
        return
    assert answer.at == now + timedelta(minutes=first)
    assert gate.check(answer.at, channel, needs_tcpa).allowed
    # Spot-check the gate itself minute by minute before the opening.
    for k in data.draw(st.lists(st.integers(0, first - 1), max_size=5)):
        assert not gate.check(now + timedelta(minutes=k), channel, needs_tcpa).allowed
    assert not gate.check(answer.at - timedelta(minutes=1), channel, needs_tcpa).allowed
    # The rules named as closed now are really closed at now (minus the margin), and the
    # rules named as deciding are still closed the minute before the opening: they set it.
    for c in cs:
        label = f"{c.rule}@{c.version}"
        if not brute_allowed([c], gate.margin, now):
            assert label in answer.closed_now
    closed_before = {
        f"{c.rule}@{c.version}"
        for c in cs
        if not brute_allowed([c], gate.margin, answer.at - timedelta(minutes=1))
    }
    assert set(answer.rules) <= closed_before or not closed_before


NY = "America/New_York"
MONDAY_9_TO_17 = WeekSchedule(days=((TimeRange(540, 1020),), (), (), (), (), (), ()))


def workflow_schedule(schedule: WeekSchedule = MONDAY_9_TO_17, zone: str = NY) -> Constraint:
    return Constraint("workflowSchedule", "1", zone, schedule)


def tcpa(zone: str = "America/Los_Angeles") -> Constraint:
    return Constraint("tcpaSchedule", "2024-01", zone, DEFAULT_TCPA_SCHEDULE, contact_window=True)


def test_no_constraint_allows() -> None:
    now = datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
    answer = Gate().check(now, Channel.CALL)
    assert answer.allowed
    assert answer.at == now
    assert answer.reason


def test_defers_to_the_next_opening_with_a_reason() -> None:
    saturday = datetime(2026, 3, 7, 18, tzinfo=UTC)
    answer = Gate((workflow_schedule(),)).check(saturday, Channel.CALL)
    assert not answer.allowed
    # Monday 2026-03-09 09:00 EDT (after spring forward) is 13:00 UTC.
    assert answer.at == datetime(2026, 3, 9, 13, tzinfo=UTC)
    assert answer.rules == ("workflowSchedule@1",)
    assert answer.zones == (NY,)
    assert "workflowSchedule@1" in answer.reason


def test_intersection_of_workflow_and_contact_windows() -> None:
    # Monday 09:00 EDT = 06:00 PDT; the contact window in LA opens at 08:00 PDT = 15:00 UTC.
    monday_open = datetime(2026, 3, 9, 13, tzinfo=UTC)
    gate = Gate((workflow_schedule(), tcpa()))
    answer = gate.check(monday_open, Channel.CALL)
    assert not answer.allowed
    assert answer.at == datetime(2026, 3, 9, 15, tzinfo=UTC)
    assert answer.rules == ("tcpaSchedule@2024-01",)
    assert answer.zones == ("America/Los_Angeles", NY)


def test_the_rules_named_are_those_that_set_the_opening() -> None:
    # Sunday 2026-03-08 22:00 EDT: the workflow schedule is closed (it opens Monday 09:00 EDT),
    # the LA contact window is open (19:00 PDT) but closed at Monday 09:00 EDT (06:00 PDT). The
    # opening, 08:00 PDT, is the TCPA window's: it is named, workflowSchedule is closed now.
    sunday_night = datetime(2026, 3, 9, 2, tzinfo=UTC)
    answer = Gate((workflow_schedule(), tcpa())).check(sunday_night, Channel.CALL)
    assert answer.at == datetime(2026, 3, 9, 15, tzinfo=UTC)
    assert answer.rules == ("tcpaSchedule@2024-01",)
    assert answer.closed_now == ("workflowSchedule@1",)
    assert "opens when tcpaSchedule@2024-01 opens" in answer.reason


def test_needs_tcpa_false_skips_contact_windows() -> None:
    monday_open = datetime(2026, 3, 9, 13, tzinfo=UTC)
    gate = Gate((workflow_schedule(), tcpa()))
    assert gate.check(monday_open, Channel.CALL, needs_tcpa=False).allowed
    only_contact = Gate((tcpa(),))
    night = datetime(2026, 3, 9, 10, tzinfo=UTC)  # 03:00 PDT
    assert not only_contact.check(night, Channel.TEXT).allowed
    assert only_contact.check(night, Channel.TEXT, needs_tcpa=False).allowed


def test_channel_specific_constraint() -> None:
    text_only = Constraint("textHours", "1", NY, MONDAY_9_TO_17, channels=frozenset({Channel.TEXT}))
    saturday = datetime(2026, 3, 7, 18, tzinfo=UTC)
    gate = Gate((text_only,))
    assert gate.check(saturday, Channel.CALL).allowed
    assert not gate.check(saturday, Channel.TEXT).allowed


def test_margin_refuses_just_before_closing() -> None:
    gate = Gate((workflow_schedule(),), margin=timedelta(minutes=30))
    assert gate.check(datetime(2026, 3, 9, 20, 29, tzinfo=UTC), Channel.CALL).allowed
    late = gate.check(datetime(2026, 3, 9, 20, 30, tzinfo=UTC), Channel.CALL)
    assert not late.allowed
    assert late.at == datetime(2026, 3, 16, 13, tzinfo=UTC)


def test_never_open_within_the_horizon() -> None:
    closed = Constraint("workflowSchedule", "1", NY, WeekSchedule(days=((),) * 7))
    answer = Gate((closed,)).check(datetime(2026, 3, 9, 13, tzinfo=UTC), Channel.CALL)
    assert not answer.allowed
    assert answer.at is None
    assert "never open" in answer.reason


def test_closed_dates_close_the_whole_local_day() -> None:
    holiday = Constraint(
        "workflowSchedule",
        "1",
        NY,
        WeekSchedule.always_open(),
        closed_dates=frozenset({date(2026, 11, 26)}),
    )
    gate = Gate((holiday,))
    # 2026-11-26 00:00 EST = 05:00 UTC; the next day opens at 2026-11-27 05:00 UTC.
    assert gate.check(datetime(2026, 11, 26, 4, 59, tzinfo=UTC), Channel.CALL).allowed
    answer = gate.check(datetime(2026, 11, 26, 5, tzinfo=UTC), Channel.CALL)
    assert answer.at == datetime(2026, 11, 27, 5, tzinfo=UTC)


def test_refusals_refuse_unless_tcpa_is_off() -> None:
    gate = Gate((), refusals=("no evidence of the contact's location",))
    now = datetime(2026, 3, 9, 13, tzinfo=UTC)
    answer = gate.check(now, Channel.CALL)
    assert not answer.allowed
    assert answer.at is None
    assert answer.reason == "no evidence of the contact's location"
    assert gate.check(now, Channel.CALL, needs_tcpa=False).allowed


@settings(max_examples=60, deadline=None)
@given(instants(step_minutes=1), st.sampled_from(list(Channel)))
def test_tcpa_only_gate_with_margin(now: datetime, channel: Channel) -> None:
    gate = Gate(
        (tcpa("Australia/Lord_Howe"), tcpa("Pacific/Honolulu")), margin=timedelta(minutes=5)
    )
    cs = list(gate.constraints)
    answer = gate.check(now, channel)
    assert answer.allowed == brute_allowed(cs, gate.margin, now)
    if not answer.allowed:
        assert answer.at is not None
        assert brute_allowed(cs, gate.margin, answer.at)
        assert not brute_allowed(cs, gate.margin, answer.at - timedelta(minutes=1))
