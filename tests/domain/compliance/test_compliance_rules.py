"""The packaged rules file: loads, validates, cites its sources; the loader rejects bad data."""

from __future__ import annotations

from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from reachflow.domain.compliance import Confidence, Rule, load_rules, parse_rules
from reachflow.domain.compliance.rules import easter
from reachflow.domain.enums import Channel
from reachflow.domain.errors import ValidationFailed

RULES = load_rules()
YEAR = (date(2026, 1, 1), date(2026, 12, 31))


def test_the_file_has_a_version_and_unique_cited_rules() -> None:
    assert RULES.version
    ids = [r.id for r in RULES.rules]
    assert len(ids) == len(set(ids))
    for rule in RULES.rules:
        assert rule.citation
        assert rule.source
        assert rule.version
        assert rule.channels <= {Channel.CALL, Channel.TEXT}
        if rule.fixed_zone:
            ZoneInfo(rule.fixed_zone)


def test_the_required_jurisdictions_are_present() -> None:
    assert {"US", "FL", "CT", "TX", "RI", "AL", "LA", "PA", "MS", "OK", "MD"} <= (
        RULES.jurisdictions
    )


def test_the_lower_confidence_rules_are_the_documented_ones() -> None:
    low = {r.id for r in RULES.rules if r.confidence is Confidence.LOW}
    assert low == {"US-IL-413-autodialer-hours", "US-NV-vendor-hours", "US-ME-adad-cap"}
    assert {r.id for r in RULES.at_least(Confidence.MEDIUM).rules}.isdisjoint(low)
    high = {r.id for r in RULES.at_least(Confidence.HIGH).rules}
    assert "US-FED-64.1200c1-hours" in high
    assert "US-TX-301.051-hours" not in high


def _minutes(rule: Rule, weekday: int) -> list[tuple[int, int]]:
    assert rule.window is not None
    return [(r.start_minute, r.end_minute) for r in rule.window.ranges_on(weekday)]


def test_windows_match_the_research() -> None:
    fed = RULES.by_id("US-FED-64.1200c1-hours")
    assert all(_minutes(fed, d) == [(480, 1260)] for d in range(7))
    assert fed.channels == {Channel.CALL, Channel.TEXT}
    assert _minutes(RULES.by_id("US-FL-501.616-hours-cap"), 2) == [(480, 1200)]
    assert _minutes(RULES.by_id("US-CT-42-288a-hours"), 2) == [(540, 1200)]
    tx = RULES.by_id("US-TX-301.051-hours")
    assert (_minutes(tx, 5), _minutes(tx, 6)) == ([(540, 1260)], [(720, 1260)])
    ri = RULES.by_id("US-RI-5-61-3.6-hours")
    assert (_minutes(ri, 0), _minutes(ri, 5), _minutes(ri, 6)) == ([(540, 1080)], [(600, 1020)], [])
    for rule_id in ("US-AL-770-X-5-.17-hours", "US-LA-R-29617-hours", "US-MS-77-3-723-hours"):
        assert _minutes(RULES.by_id(rule_id), 6) == []
    assert RULES.by_id("US-MS-77-3-723-hours").fixed_zone == "Etc/GMT+6"


def test_caps() -> None:
    for rule_id in ("US-FL-501.616-hours-cap", "US-OK-775C.4-hours-cap", "US-MD-14-4501-hours-cap"):
        cap = RULES.by_id(rule_id).cap
        assert cap is not None
        assert (cap.max_attempts, cap.window.total_seconds()) == (3, 24 * 3600)


def test_pa_holidays_are_the_package_plus_the_statute_list() -> None:
    closed = RULES.by_id("US-PA-2245-hours-holidays").closed_dates(*YEAR)
    assert {
        date(2026, 1, 1),
        date(2026, 4, 3),  # Good Friday (not in the package)
        date(2026, 6, 14),  # Flag Day (not in the package)
        date(2026, 11, 3),  # Election Day (not in the package)
        date(2026, 11, 26),
        date(2026, 12, 25),
        date(2026, 7, 3),  # observed and actual Independence Day both closed
        date(2026, 7, 4),
    } <= closed
    assert date(2026, 3, 17) not in closed


def test_state_holiday_lists() -> None:
    assert date(2026, 4, 27) in RULES.by_id("US-AL-770-X-5-.17-hours").closed_dates(*YEAR)
    assert date(2026, 2, 17) in RULES.by_id("US-LA-R-29617-hours").closed_dates(*YEAR)
    assert date(2026, 8, 10) in RULES.by_id("US-RI-5-61-3.6-hours").closed_dates(*YEAR)
    assert RULES.by_id("US-MS-77-3-723-hours").closed_dates(*YEAR) == frozenset()


@pytest.mark.parametrize(
    ("year", "day"),
    [
        (2024, date(2024, 3, 31)),
        (2025, date(2025, 4, 20)),
        (2026, date(2026, 4, 5)),
        (2027, date(2027, 3, 28)),
        (2038, date(2038, 4, 25)),
    ],
)
def test_easter(year: int, day: date) -> None:
    assert easter(year) == day


def test_effective_dates_select_rules() -> None:
    before = {r.id for r in RULES.applicable(["TX", "CT"], date(2023, 1, 1), date(2023, 1, 31))}
    after = {r.id for r in RULES.applicable(["TX", "CT"], date(2026, 1, 1), date(2026, 1, 31))}
    assert "US-TX-SB140-texts" not in before
    assert "US-CT-42-288a-hours" not in before
    assert {"US-TX-SB140-texts", "US-CT-42-288a-hours", "US-FED-64.1200c1-hours"} <= after
    assert not any(r.jurisdiction == "FL" for r in RULES.applicable(["TX"], *YEAR))


def _rule(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "X-1",
        "version": "1",
        "jurisdiction": "FL",
        "channels": ["CALL"],
        "window": {"monday": {"enabled": True, "timeRanges": [{"startHour": 9, "endHour": 17}]}},
        "consent_waives": False,
        "citation": "c",
        "source": "s",
        "confidence": "high",
    }
    base.update(overrides)
    return base


def test_a_minimal_rule_parses() -> None:
    rules = parse_rules({"version": "t", "rules": [_rule(holidays={"add": ["02-29"]})]})
    (rule,) = rules.rules
    assert rule.closed_dates(date(2025, 1, 1), date(2025, 12, 31)) == frozenset()
    assert rule.closed_dates(*(date(2024, 1, 1), date(2024, 12, 31))) == {date(2024, 2, 29)}


def test_bad_rules_are_rejected_with_every_problem_named() -> None:
    bad = [
        _rule(jurisdiction="Florida", channels=["FAX"], confidence="sure", extra=1),
        _rule(window={"mondy": {}}, holidays={"subdiv": "XX"}, cap={"max": 0, "hours": 24}),
        _rule(window=None, cap=None, effective_from="2026-02-01", effective_to="2026-01-01"),
        _rule(fixed_zone="Mars/Base", local=False, consent_waives="yes", holidays={"add": ["x"]}),
        _rule(),
    ]
    with pytest.raises(ValidationFailed) as caught:
        parse_rules({"version": "", "rules": bad})
    fields = {e.field for e in caught.value.errors}
    assert {
        "version",
        "rules[0].jurisdiction",
        "rules[0].channels[0]",
        "rules[0].confidence",
        "rules[0].extra",
        "rules[1].window.mondy",
        "rules[1].holidays.subdiv",
        "rules[1].cap.max",
        "rules[2]",
        "rules[2].effective_to",
        "rules[3].fixed_zone",
        "rules[3].consent_waives",
        "rules[3].holidays.add[0]",
    } <= fields
    with pytest.raises(ValidationFailed, match="duplicate"):
        parse_rules({"version": "t", "rules": [_rule(), _rule()]})
    with pytest.raises(ValidationFailed):
        parse_rules(["not", "a", "mapping"])
