"""Table tests: contact constraints through the real dispatch gate, caps and explain."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from reachflow.domain.compliance import (
    NO_LOCATION,
    ContactLocation,
    NoEvidencePolicy,
    cap_allows,
    contact_constraints,
    explain,
    load_rules,
    locate_contact,
    next_allowed,
)
from reachflow.domain.enums import Channel
from reachflow.domain.gate import Gate, GateAnswer
from reachflow.domain.schedule import WeekSchedule

RULES = load_rules()
OPEN = WeekSchedule.always_open()
CALL, TEXT = Channel.CALL, Channel.TEXT
T0 = datetime(2026, 6, 10, 14, tzinfo=UTC)


def local(zone: str, y: int, m: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=ZoneInfo(zone))


def check(
    location: ContactLocation,
    now: datetime,
    channel: Channel = CALL,
    *,
    tcpa: WeekSchedule | None = OPEN,
    consent: frozenset[Channel] = frozenset(),
) -> GateAnswer:
    constraints, refusals = contact_constraints(RULES, location, tcpa, consent, now)
    return Gate(constraints=constraints, refusals=refusals).check(now, channel)


def allowed(location: ContactLocation, now: datetime, channel: Channel = CALL) -> bool:
    return check(location, now, channel).allowed


def next_at(location: ContactLocation, now: datetime, channel: Channel = CALL) -> datetime | None:
    return check(location, now, channel).at


NY, CHI, DEN = "America/New_York", "America/Chicago", "America/Denver"
MIAMI = locate_contact("+13055550100", "33101", "FL")
HARTFORD = locate_contact(None, "06103")
DALLAS = locate_contact(None, "75201")
PROVIDENCE = locate_contact(None, "02903")
BIRMINGHAM = locate_contact(None, "35203")
NEW_ORLEANS = locate_contact(None, "70112")
PHILADELPHIA = locate_contact(None, "19103")
JACKSON = locate_contact(None, "39201")
PENSACOLA = locate_contact("+18504321234")
TALLAHASSEE = locate_contact("+18502221234")


def test_florida_8_to_20() -> None:
    assert allowed(MIAMI, local(NY, 2026, 6, 10, 19, 59))
    answer = check(MIAMI, local(NY, 2026, 6, 10, 20))
    assert not answer.allowed
    assert answer.at == local(NY, 2026, 6, 11, 8)
    assert "US-FL-501.616-hours-cap@1" in answer.rules
    assert next_at(PENSACOLA, local(CHI, 2026, 6, 10, 20, 30)) == local(CHI, 2026, 6, 11, 8)


def test_connecticut_9_to_20() -> None:
    assert next_at(HARTFORD, local(NY, 2026, 6, 10, 8, 59)) == local(NY, 2026, 6, 10, 9)
    assert allowed(HARTFORD, local(NY, 2026, 6, 10, 19, 59))
    assert next_at(HARTFORD, local(NY, 2026, 6, 10, 20)) == local(NY, 2026, 6, 11, 9)


def test_texas_sunday_opens_at_noon() -> None:
    sunday = local(CHI, 2026, 6, 14, 10)
    assert next_at(DALLAS, sunday) == local(CHI, 2026, 6, 14, 12)
    assert next_at(DALLAS, sunday, TEXT) == local(CHI, 2026, 6, 14, 12)
    # Feather's default TCPA schedule opens Sunday at 13:00, later than the statute.
    assert check(DALLAS, sunday, tcpa=None).at == local(CHI, 2026, 6, 14, 13)
    assert next_at(DALLAS, local(CHI, 2026, 6, 13, 8, 30)) == local(CHI, 2026, 6, 13, 9)
    # A contact known only as "TX" may be in El Paso (Mountain): noon MDT is 13:00 CDT.
    texas = locate_contact(None, None, "TX")
    assert next_at(texas, sunday) == local(DEN, 2026, 6, 14, 12)


def test_texas_texts_only_after_sb_140() -> None:
    sunday_before = local(CHI, 2025, 6, 1, 10)
    assert allowed(DALLAS, sunday_before, TEXT)
    assert not allowed(DALLAS, sunday_before, CALL)


def test_rhode_island_weekdays_saturday_sunday_holidays() -> None:
    assert next_at(PROVIDENCE, local(NY, 2026, 6, 13, 9, 59)) == local(NY, 2026, 6, 13, 10)
    assert allowed(PROVIDENCE, local(NY, 2026, 6, 13, 16, 59))
    assert next_at(PROVIDENCE, local(NY, 2026, 6, 13, 17)) == local(NY, 2026, 6, 15, 9)
    assert next_at(PROVIDENCE, local(NY, 2026, 6, 10, 18)) == local(NY, 2026, 6, 11, 9)
    # Victory Day, Monday 10 Aug 2026.
    assert next_at(PROVIDENCE, local(NY, 2026, 8, 10, 12)) == local(NY, 2026, 8, 11, 9)


@pytest.mark.parametrize("location", [BIRMINGHAM, NEW_ORLEANS])
def test_alabama_and_louisiana_close_sundays(location: ContactLocation) -> None:
    assert next_at(location, local(CHI, 2026, 6, 14, 12)) == local(CHI, 2026, 6, 15, 8)
    assert next_at(location, local(CHI, 2026, 6, 13, 20)) == local(CHI, 2026, 6, 15, 8)
    # Memorial Day, Monday 25 May 2026.
    assert next_at(location, local(CHI, 2026, 5, 25, 10)) == local(CHI, 2026, 5, 26, 8)


def test_state_specific_holidays() -> None:
    # Alabama: Confederate Memorial Day; Louisiana: Mardi Gras.
    assert next_at(BIRMINGHAM, local(CHI, 2026, 4, 27, 10)) == local(CHI, 2026, 4, 28, 8)
    assert next_at(NEW_ORLEANS, local(CHI, 2026, 2, 17, 10)) == local(CHI, 2026, 2, 18, 8)
    assert allowed(BIRMINGHAM, local(CHI, 2026, 2, 17, 10))


def test_pennsylvania_holidays() -> None:
    assert next_at(PHILADELPHIA, local(NY, 2026, 4, 3, 10)) == local(NY, 2026, 4, 4, 8)
    assert next_at(PHILADELPHIA, local(NY, 2026, 11, 3, 10)) == local(NY, 2026, 11, 4, 8)
    assert next_at(PHILADELPHIA, local(NY, 2027, 6, 14, 10)) == local(NY, 2027, 6, 15, 8)
    assert allowed(PHILADELPHIA, local(NY, 2026, 4, 2, 20, 59))


def test_mississippi_reads_cst_literally() -> None:
    # Summer: 08:00 CST is 09:00 CDT; 20:00 local still closes.
    assert next_at(JACKSON, local(CHI, 2026, 6, 10, 8, 30)) == local(CHI, 2026, 6, 10, 9)
    assert allowed(JACKSON, local(CHI, 2026, 6, 10, 19, 59))
    assert not allowed(JACKSON, local(CHI, 2026, 6, 10, 20))
    # Winter: CST is the local time.
    assert allowed(JACKSON, local(CHI, 2026, 1, 14, 8))
    assert next_at(JACKSON, local(CHI, 2026, 1, 17, 20)) == local(CHI, 2026, 1, 19, 8)


def test_split_area_code_850() -> None:
    instant = local(NY, 2026, 6, 10, 8, 30)  # 07:30 in Pensacola
    assert allowed(TALLAHASSEE, instant)
    assert next_at(PENSACOLA, instant) == local(CHI, 2026, 6, 10, 8)


def test_zip_and_area_code_disagree_intersection_of_both_zones() -> None:
    both = locate_contact("+14155550100", "10001")
    assert next_at(both, local(NY, 2026, 6, 10, 10, 59)) == local(NY, 2026, 6, 10, 11)
    assert allowed(both, local(NY, 2026, 6, 10, 20, 59))
    assert next_at(both, local(NY, 2026, 6, 10, 21)) == local(NY, 2026, 6, 11, 11)
    hawaii = locate_contact("+18085550100", "10001")  # research §3: 14:00-21:00 EDT
    assert next_at(hawaii, local(NY, 2026, 6, 10, 9)) == local(NY, 2026, 6, 10, 14)


def test_consent_waives_only_rules_that_say_so() -> None:
    salt_lake = locate_contact(None, "84101")
    sunday = local(DEN, 2026, 6, 14, 10)
    assert not check(salt_lake, sunday).allowed
    assert check(salt_lake, sunday, consent=frozenset({CALL})).allowed
    assert not check(salt_lake, sunday, TEXT, consent=frozenset({CALL})).allowed
    # The federal 8-21 rule holds even with consent.
    assert not check(salt_lake, local(DEN, 2026, 6, 15, 7), consent=frozenset({CALL})).allowed


def test_tcpa_schedule_in_every_zone_and_skipped_without_tcpa() -> None:
    constraints, refusals = contact_constraints(
        RULES, locate_contact("+14155550100", "10001"), None, frozenset(), local(NY, 2026, 6, 10, 9)
    )
    assert refusals == ()
    tcpa = [c for c in constraints if c.rule == "tcpaSchedule"]
    assert {c.zone for c in tcpa} == {NY, "America/Los_Angeles"}
    assert all(c.contact_window for c in constraints)
    gate = Gate(constraints=constraints)
    assert gate.check(local(NY, 2026, 6, 10, 3), CALL, needs_tcpa=False).allowed


def test_no_location_refuses_or_uses_every_zone() -> None:
    unknown = locate_contact(None)
    constraints, refusals = contact_constraints(RULES, unknown, None, frozenset(), T0)
    assert (constraints, refusals) == ((), (NO_LOCATION,))
    answer = check(unknown, local(NY, 2026, 6, 10, 12))
    assert (answer.allowed, answer.at, answer.reason) == (False, None, NO_LOCATION)
    anywhere = locate_contact(None, policy=NoEvidencePolicy.ALL_US_ZONES)
    answer = check(anywhere, local(NY, 2026, 6, 10, 12))
    assert answer.at is not None
    assert answer.at - local(NY, 2026, 6, 10, 12) < timedelta(days=1)


def test_date_range_form_and_bad_input() -> None:
    by_range, _ = contact_constraints(
        RULES,
        PHILADELPHIA,
        None,
        frozenset(),
        (date(2026, 4, 1), date(2026, 4, 5)),
    )
    pa = [c for c in by_range if c.rule.startswith("US-PA")]
    assert pa
    assert pa[0].closed_dates == {date(2026, 4, 3)}
    with pytest.raises(ValueError, match="aware"):
        contact_constraints(RULES, PHILADELPHIA, None, frozenset(), datetime(2026, 4, 1))  # noqa: DTZ001


# ------------------------------------------------------------------------------- caps


@pytest.mark.parametrize("state", ["FL", "OK", "MD"])
def test_three_per_rolling_24_hours(state: str) -> None:
    attempts = [T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2)]
    now = T0 + timedelta(hours=3)
    assert cap_allows(RULES, [state], CALL, attempts[:2], now).allowed
    decision = cap_allows(RULES, [state], TEXT, attempts, now)
    assert not decision.allowed
    assert decision.next_allowed == T0 + timedelta(hours=24)
    assert decision.rule_id is not None
    assert f"-{state}-" in decision.rule_id
    assert cap_allows(RULES, [state], CALL, attempts, T0 + timedelta(hours=24)).allowed
    assert not cap_allows(
        RULES, [state], CALL, attempts, T0 + timedelta(hours=23, minutes=59)
    ).allowed


def test_no_cap_elsewhere_and_channel_specific_caps() -> None:
    many = [T0 + timedelta(minutes=i) for i in range(10)]
    assert cap_allows(RULES, ["NY", "CA"], CALL, many, T0 + timedelta(hours=1)).allowed
    me = cap_allows(RULES, ["ME"], CALL, many[:1], T0 + timedelta(hours=1))
    assert (me.allowed, me.next_allowed) == (False, T0 + timedelta(hours=8))
    assert cap_allows(RULES, ["ME"], TEXT, many[:1], T0 + timedelta(hours=1)).allowed
    # Several caps: the one that holds longest decides.
    both = cap_allows(RULES, ["ME", "FL"], CALL, many[:3], T0 + timedelta(hours=1))
    assert (both.next_allowed, both.rule_id) == (
        T0 + timedelta(hours=24),
        "US-FL-501.616-hours-cap",
    )


# ----------------------------------------------------------------------------- explain


def test_explain_inside_the_window() -> None:
    report = explain(RULES, MIAMI, CALL, local(NY, 2026, 6, 10, 12))
    assert report["allowedNow"] is True
    assert report["nextAllowedAt"] == "2026-06-10T16:00:00Z"
    assert report["zones"] == [NY]
    assert report["states"] == ["FL"]
    assert {r["id"] for r in report["appliedRules"]} == {
        "US-FED-64.1200c1-hours",
        "US-FL-501.616-hours-cap",
    }
    assert report["rulesVersion"] == RULES.version
    assert report["evidence"]


def test_explain_a_cap_pushes_past_the_window() -> None:
    now = local(NY, 2026, 6, 10, 19)  # FL closes at 20:00
    attempts = [local(NY, 2026, 6, 10, 9), local(NY, 2026, 6, 10, 10), local(NY, 2026, 6, 10, 11)]
    report = explain(RULES, MIAMI, TEXT, now, recent_attempts=attempts)
    assert report["allowedNow"] is False
    assert report["cap"]["rule"] == "US-FL-501.616-hours-cap"
    assert report["cap"]["nextAllowedAt"] == "2026-06-11T13:00:00Z"  # 09:00 EDT
    assert report["nextAllowedAt"] == "2026-06-11T13:00:00Z"
    assert "US-FL-501.616-hours-cap@1" in report["decidingRules"]
    early = explain(RULES, MIAMI, TEXT, local(NY, 2026, 6, 10, 21), recent_attempts=attempts[1:])
    assert early["nextAllowedAt"] == "2026-06-11T12:00:00Z"  # 08:00 EDT: the window decides


def test_explain_refusal_and_outside_window() -> None:
    refused = explain(RULES, locate_contact(None), CALL, T0)
    assert refused["allowedNow"] is False
    assert refused["nextAllowedAt"] is None
    assert refused["refusals"] == [NO_LOCATION]
    closed = explain(RULES, HARTFORD, CALL, local(NY, 2026, 6, 10, 8))
    assert closed["nextAllowedAt"] == "2026-06-10T13:00:00Z"
    assert closed["decidingRules"] == ["US-CT-42-288a-hours@1"]
    assert closed["decidingZones"] == [NY]


def test_next_allowed_combines_windows_caps_and_suppression() -> None:
    rules = load_rules()
    friday_noon = local(NY, 2026, 6, 12, 12)
    three = (friday_noon - timedelta(hours=3), friday_noon - timedelta(hours=2), friday_noon)
    held = next_allowed(friday_noon, rules, MIAMI, Channel.CALL, recent_attempts=three)
    # The oldest attempt leaves the 24-hour window at 09:00 Saturday, inside 8-20.
    assert held.at == local(NY, 2026, 6, 13, 9)
    assert "US-FL-501.616-hours-cap@1" in held.rules
    free = next_allowed(friday_noon, rules, MIAMI, Channel.CALL)
    assert free.allowed
    assert free.at == friday_noon
    blocked = next_allowed(
        friday_noon, rules, MIAMI, Channel.TEXT, suppressed={Channel.TEXT: "STOP"}
    )
    assert (blocked.at, blocked.suppressed) == (None, True)
