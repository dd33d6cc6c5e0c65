"""Property tests: the gate built from our constraints never allows an instant that any rule of
any candidate zone forbids, its ``at`` is the earliest allowed instant (checked minute by minute
against an independent oracle), and the rolling caps are never exceeded.

Random schedule boundaries stay at or after 04:00 local: the US switches clocks at 02:00, and
``windows`` reads a boundary inside a repeated (fall-back) hour at its first occurrence.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from reachflow.domain.compliance import (
    ContactLocation,
    HolidaySpec,
    Rule,
    RuleSet,
    cap_allows,
    contact_constraints,
    load_rules,
    locate_contact,
)
from reachflow.domain.compliance.rules import Confidence, FrequencyCap
from reachflow.domain.enums import WEEKDAYS, Channel
from reachflow.domain.gate import Gate
from reachflow.domain.schedule import TimeRange, WeekSchedule

RULES = load_rules()
HORIZON = timedelta(days=2)
HORIZON_DAYS = 3
ZONES = [
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "America/Anchorage",
    "America/Adak",
    "Pacific/Honolulu",
    "America/Indiana/Knox",
    "America/Puerto_Rico",
    "Pacific/Guam",
    "Etc/GMT+6",
    "Asia/Kathmandu",
]
STATES = [*sorted(RULES.jurisdictions - {"US"}), "NY", "CA", "ZZ"]
ZIPS = [
    "10001",
    "33101",
    "32501",
    "75201",
    "79901",
    "02903",
    "35203",
    "70112",
    "19103",
    "39201",
    "84101",
    "06103",
    "73102",
    "21201",
    "96813",
    "99501",
    "89883",
    "46204",
]
PHONES = [
    "+18504321234",
    "+18502221234",
    "+14155550100",
    "+13645551234",
    "+19282831234",
    "+18085550100",
    "+12125550100",
    "+19155550100",
    "+18005551234",
]
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------- strategies


def _dst_edges() -> list[datetime]:
    edges = []
    for year in (2024, 2025, 2026, 2027):
        march = date(year, 3, 1)
        second_sunday = march + timedelta(days=(6 - march.weekday()) % 7 + 7)
        november = date(year, 11, 1)
        first_sunday = november + timedelta(days=(6 - november.weekday()) % 7)
        for day in (second_sunday, first_sunday):
            edges.append(datetime(day.year, day.month, day.day, 7, tzinfo=UTC))
    return edges


instants = st.one_of(
    st.datetimes(
        min_value=datetime(2024, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive
        max_value=datetime(2027, 12, 31),  # noqa: DTZ001
        timezones=st.just(UTC),
    ),
    st.builds(
        lambda edge, minutes: edge + timedelta(minutes=minutes),
        st.sampled_from(_dst_edges()),
        st.integers(-48 * 60, 24 * 60),
    ),
)

random_locations = st.builds(
    lambda zones, states: ContactLocation(tuple(sorted(zones)), tuple(sorted(states)), ("test",)),
    st.sets(st.sampled_from(ZONES), min_size=1, max_size=3),
    st.sets(st.sampled_from(STATES), max_size=3),
)
evidence_locations = st.builds(
    locate_contact,
    st.sampled_from([*PHONES, None]),
    st.sampled_from([*ZIPS, None]),
    st.sampled_from([None, "TX", "FL", "Kentucky"]),
).filter(lambda loc: loc.known)
locations = st.one_of(random_locations, evidence_locations)


@st.composite
def schedules(draw: st.DrawFn, *, min_hour: int = 4) -> WeekSchedule:
    days = []
    for _ in WEEKDAYS:
        ranges = []
        for _ in range(draw(st.integers(0, 2))):
            start = draw(st.integers(min_hour * 60, 23 * 60))
            end = draw(st.integers(start + 1, 24 * 60))
            ranges.append(TimeRange(start, end))
        days.append(tuple(sorted(ranges)))
    return WeekSchedule(days=tuple(days))


@st.composite
def rule_sets(draw: st.DrawFn) -> RuleSet:
    rules = []
    for i in range(draw(st.integers(1, 4))):
        holidays = draw(st.sets(st.sampled_from(["01-01", "06-14", "11-03", "good_friday"])))
        rules.append(
            Rule(
                id=f"R{i}",
                version="1",
                jurisdiction=draw(st.sampled_from(["US", "FL", "TX", "ZZ"])),
                channels=frozenset(draw(st.sets(st.sampled_from(list(Channel)), min_size=1))),
                window=draw(schedules()),
                citation="test",
                source="test",
                confidence=Confidence.HIGH,
                fixed_zone=draw(st.sampled_from([None, "Etc/GMT+6", "Etc/GMT-3"])),
                holidays=HolidaySpec(add=tuple(sorted(holidays))) if holidays else None,
                consent_waives=draw(st.booleans()),
            )
        )
    return RuleSet(version="random", rules=tuple(rules))


# ------------------------------------------------------------------------------- oracle


class Oracle:
    """Reads every rule in every zone directly from wall-clock time: no intervals involved."""

    def __init__(
        self,
        rules: RuleSet,
        location: ContactLocation,
        tcpa: WeekSchedule,
        consent: frozenset[Channel],
        channel: Channel,
        now: datetime,
    ) -> None:
        day = now.astimezone(UTC).date()
        first, last = day - timedelta(days=2), day + timedelta(days=HORIZON_DAYS + 2)
        self.checks: list[tuple[ZoneInfo, WeekSchedule, frozenset[date]]] = [
            (ZoneInfo(z), tcpa, frozenset()) for z in location.zones
        ]
        for rule in rules.rules:
            binds = rule.jurisdiction == "US" or rule.jurisdiction in location.states
            waived = rule.consent_waives and channel in consent
            if not binds or waived or channel not in rule.channels or rule.window is None:
                continue
            if not rule.in_force(first, last):
                continue
            zones = ([rule.fixed_zone] if rule.fixed_zone else []) + (
                list(location.zones) if rule.local else []
            )
            closed = rule.closed_dates(first, last)
            self.checks += [(ZoneInfo(z), rule.window, closed) for z in zones]

    def allows(self, instant: datetime) -> bool:
        for zone, schedule, closed in self.checks:
            wall = instant.astimezone(zone)
            if wall.date() in closed:
                return False
            minute = wall.hour * 60 + wall.minute
            if not any(
                r.start_minute <= minute < r.end_minute for r in schedule.ranges_on(wall.weekday())
            ):
                return False
        return True

    def first_allowed(self, start: datetime, until: datetime) -> datetime | None:
        """Earliest allowed instant in [start, until): ``start`` or a whole UTC minute."""
        if self.allows(start):
            return start
        minute = start.replace(second=0, microsecond=0) + timedelta(minutes=1)
        while minute < until:
            if self.allows(minute):
                return minute
            minute += timedelta(minutes=1)
        return None


def _assert_gate_matches_oracle(
    rules: RuleSet,
    location: ContactLocation,
    tcpa: WeekSchedule | None,
    consent: frozenset[Channel],
    channel: Channel,
    now: datetime,
) -> None:
    constraints, refusals = contact_constraints(
        rules, location, tcpa, consent, now, horizon_days=HORIZON_DAYS
    )
    assert refusals == ()
    answer = Gate(constraints=constraints, horizon=HORIZON).check(now, channel)
    effective_tcpa = tcpa if tcpa is not None else _default_tcpa()
    oracle = Oracle(rules, location, effective_tcpa, consent, channel, now)
    if answer.allowed:
        assert answer.at == now
        assert oracle.allows(now)
    expected = oracle.first_allowed(now, now + HORIZON)
    assert answer.at == expected, (answer, expected)


def _default_tcpa() -> WeekSchedule:
    from reachflow.domain.schedule import DEFAULT_TCPA_SCHEDULE

    return DEFAULT_TCPA_SCHEDULE


# ------------------------------------------------------------------------------- tests


@SETTINGS
@given(
    location=locations,
    now=instants,
    channel=st.sampled_from(list(Channel)),
    consent=st.frozensets(st.sampled_from(list(Channel))),
    tcpa=st.one_of(st.none(), schedules(min_hour=4)),
)
def test_packaged_rules_gate_is_safe_and_earliest(
    location: ContactLocation,
    now: datetime,
    channel: Channel,
    consent: frozenset[Channel],
    tcpa: WeekSchedule | None,
) -> None:
    _assert_gate_matches_oracle(RULES, location, tcpa, consent, channel, now)


@SETTINGS
@given(
    rules=rule_sets(),
    location=random_locations,
    now=instants,
    channel=st.sampled_from(list(Channel)),
    consent=st.frozensets(st.sampled_from(list(Channel))),
)
def test_random_rule_sets_gate_is_safe_and_earliest(
    rules: RuleSet,
    location: ContactLocation,
    now: datetime,
    channel: Channel,
    consent: frozenset[Channel],
) -> None:
    _assert_gate_matches_oracle(rules, location, WeekSchedule.always_open(), consent, channel, now)


@settings(max_examples=60, deadline=None)
@given(
    start=instants,
    gaps=st.lists(st.integers(0, 12 * 60), min_size=1, max_size=25),
    states=st.sets(st.sampled_from(["FL", "OK", "MD", "ME", "NY"]), min_size=1),
    channel=st.sampled_from(list(Channel)),
)
def test_caps_are_never_exceeded_and_release_exactly(
    start: datetime, gaps: Sequence[int], states: set[str], channel: Channel
) -> None:
    attempts: list[datetime] = []
    now = start
    for gap in gaps:
        now += timedelta(minutes=gap)
        decision = cap_allows(RULES, states, channel, attempts, now)
        if decision.allowed:
            assert decision.next_allowed is None
            attempts.append(now)
            continue
        assert decision.next_allowed is not None
        assert decision.next_allowed > now
        assert cap_allows(RULES, states, channel, attempts, decision.next_allowed).allowed
        just_before = decision.next_allowed - timedelta(microseconds=1)
        assert not cap_allows(RULES, states, channel, attempts, just_before).allowed
    for rule in RULES.applicable(states, date(2024, 1, 1), date(2028, 1, 1)):
        cap: FrequencyCap | None = rule.cap
        if cap is None or channel not in rule.channels:
            continue
        for a in attempts:
            window = [b for b in attempts if a <= b < a + cap.window]
            assert len(window) <= cap.max_attempts


@settings(max_examples=30, deadline=None)
@given(location=locations, now=instants)
def test_every_constraint_is_a_contact_window_in_a_candidate_or_fixed_zone(
    location: ContactLocation, now: datetime
) -> None:
    constraints, _ = contact_constraints(RULES, location, None, frozenset(), now)
    fixed = {r.fixed_zone for r in RULES.rules if r.fixed_zone}
    assert all(c.contact_window for c in constraints)
    assert {c.zone for c in constraints} <= set(location.zones) | fixed
    assume(location.zones)
    tcpa_zones = {c.zone for c in constraints if c.rule == "tcpaSchedule"}
    fed_zones = {c.zone for c in constraints if c.rule == "US-FED-64.1200c1-hours"}
    assert tcpa_zones == fed_zones == set(location.zones)
