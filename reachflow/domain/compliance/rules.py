"""Calling rules as versioned data: ``load_rules() -> RuleSet`` reads ``data/rules.yaml``.

Each rule is one statute or regulation: who it binds (``jurisdiction``: ``US`` or a state),
which channels, the local window by weekday (Feather's weekday shape), whole days it closes
(state holidays from the ``holidays`` package plus curated additions), an optional rolling
frequency cap, whether consent waives it, when it is in force, and where it comes from
(citation, source, confidence). Nothing here reads a clock; loading reads only the packaged file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from functools import cache
from importlib import resources

import holidays
import yaml

from reachflow.domain.enums import Channel
from reachflow.domain.errors import ProblemCollector
from reachflow.domain.schedule import WeekSchedule, parse_timezone, parse_week_schedule

FEDERAL = "US"
_PACKAGE = "reachflow.domain.compliance"
_STATE = re.compile(r"^[A-Z]{2}$")
_FIXED_DATE = re.compile(r"^(\d{2})-(\d{2})$")
_NAMED_HOLIDAYS = ("good_friday", "election_day")
_RULE_KEYS = frozenset(
    {
        "id",
        "version",
        "jurisdiction",
        "channels",
        "window",
        "fixed_zone",
        "local",
        "holidays",
        "cap",
        "consent_waives",
        "effective_from",
        "effective_to",
        "citation",
        "source",
        "confidence",
        "notes",
    }
)


class Confidence(StrEnum):
    """How well a rule is sourced: [V] statute checked, [S] secondary summary, [?] unverified."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def rank(self) -> int:
        return {Confidence.LOW: 0, Confidence.MEDIUM: 1, Confidence.HIGH: 2}[self]


@dataclass(frozen=True, slots=True)
class FrequencyCap:
    """At most ``max_attempts`` attempts per contact in any rolling ``window``."""

    max_attempts: int
    window: timedelta


@dataclass(frozen=True, slots=True)
class HolidaySpec:
    """Whole local days a rule closes: a state's public holidays, edited by a curated overlay."""

    subdiv: str | None = None
    add: tuple[str, ...] = ()  # good_friday | election_day | "MM-DD"
    remove: tuple[str, ...] = ()  # names as the holidays package spells them

    def dates(self, first: date, last: date) -> frozenset[date]:
        out: set[date] = set()
        for year in range(first.year, last.year + 1):
            if self.subdiv is not None:
                out.update(
                    day
                    for day, names in _package_holidays(self.subdiv, year)
                    if not set(names) <= set(self.remove)
                )
            out.update(d for item in self.add if (d := _named_date(item, year)) is not None)
        return frozenset(d for d in out if first <= d <= last)


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    version: str
    jurisdiction: str
    channels: frozenset[Channel]
    window: WeekSchedule | None
    citation: str
    source: str
    confidence: Confidence
    fixed_zone: str | None = None
    local: bool = True
    holidays: HolidaySpec | None = None
    cap: FrequencyCap | None = None
    consent_waives: bool = False
    effective_from: date | None = None
    effective_to: date | None = None
    notes: str = ""

    def in_force(self, first: date, last: date) -> bool:
        """True if the rule is in force on any day of [first, last]."""
        starts_ok = self.effective_from is None or self.effective_from <= last
        ends_ok = self.effective_to is None or self.effective_to >= first
        return starts_ok and ends_ok

    def closed_dates(self, first: date, last: date) -> frozenset[date]:
        return self.holidays.dates(first, last) if self.holidays else frozenset()

    def binds(self, states: Iterable[str]) -> bool:
        return self.jurisdiction == FEDERAL or self.jurisdiction in set(states)


@dataclass(frozen=True, slots=True)
class RuleSet:
    version: str
    rules: tuple[Rule, ...]

    def applicable(self, states: Iterable[str], first: date, last: date) -> tuple[Rule, ...]:
        """Federal rules plus every rule of any of ``states``, in force in [first, last]."""
        wanted = frozenset(states)
        return tuple(r for r in self.rules if r.binds(wanted) and r.in_force(first, last))

    def by_id(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)

    def at_least(self, confidence: Confidence) -> RuleSet:
        """Only rules at or above ``confidence`` (by default every rule applies: stricter)."""
        kept = tuple(r for r in self.rules if r.confidence.rank >= confidence.rank)
        return RuleSet(version=f"{self.version}+min-{confidence.value}", rules=kept)

    @property
    def jurisdictions(self) -> frozenset[str]:
        return frozenset(r.jurisdiction for r in self.rules)


# ------------------------------------------------------------------------------ holidays


@cache
def _package_holidays(subdiv: str, year: int) -> tuple[tuple[date, tuple[str, ...]], ...]:
    calendar = holidays.country_holidays("US", subdiv=subdiv, years=year)
    return tuple(
        (day, tuple(name.strip() for name in str(names).split(";")))
        for day, names in sorted(calendar.items())
    )


def easter(year: int) -> date:
    """Gregorian Easter Sunday (anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l_) // 451
    month, day = divmod(h + l_ - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _named_date(item: str, year: int) -> date | None:
    """The day ``item`` falls on in ``year`` (None: no such day that year, e.g. 02-29)."""
    if item == "good_friday":
        return easter(year) - timedelta(days=2)
    if item == "election_day":  # the Tuesday after the first Monday of November
        first = date(year, 11, 1)
        return first + timedelta(days=(0 - first.weekday()) % 7 + 1)
    match = _FIXED_DATE.match(item)
    if match is None:
        raise ValueError(f"unknown holiday {item!r}")
    month, day = int(match.group(1)), int(match.group(2))
    try:
        return date(year, month, day)
    except ValueError:
        if (month, day) == (2, 29):
            return None
        raise


# -------------------------------------------------------------------------------- loading


def load_rules() -> RuleSet:
    """The rules shipped in the package (``reachflow/domain/compliance/data/rules.yaml``)."""
    return _load_packaged()


@cache
def _load_packaged() -> RuleSet:
    text = (resources.files(_PACKAGE) / "data" / "rules.yaml").read_text("utf-8")
    return parse_rules(yaml.safe_load(text))


def parse_rules(raw: object) -> RuleSet:
    """Validate a parsed rules document, reporting every problem at once (``ValidationFailed``)."""
    problems = ProblemCollector()
    if not isinstance(raw, Mapping):
        problems.add("rules.yaml", "must be a mapping with 'version' and 'rules'")
        problems.raise_if_any()
        raise AssertionError("unreachable")
    version = raw.get("version")
    if not isinstance(version, str) or not version:
        problems.add("version", "must be a non-empty string")
    items = raw.get("rules")
    if not isinstance(items, list) or not items:
        problems.add("rules", "must be a non-empty list")
        items = []
    rules = [r for i, item in enumerate(items) if (r := _parse_rule(item, i, problems))]
    seen: set[str] = set()
    for i, rule in enumerate(rules):
        if rule.id in seen:
            problems.add(f"rules[{i}].id", f"duplicate id {rule.id!r}")
        seen.add(rule.id)
    problems.raise_if_any()
    return RuleSet(version=str(version), rules=tuple(rules))


def _parse_rule(item: object, index: int, problems: ProblemCollector) -> Rule | None:
    path = f"rules[{index}]"
    if not isinstance(item, Mapping):
        problems.add(path, "must be a mapping")
        return None
    before = len(problems.problems)
    for key in item:
        if key not in _RULE_KEYS:
            problems.add(f"{path}.{key}", "unknown field")
    texts = {
        key: _text(item.get(key), f"{path}.{key}", problems)
        for key in ("id", "version", "jurisdiction", "citation", "source")
    }
    if texts["jurisdiction"] != FEDERAL and not _STATE.match(texts["jurisdiction"]):
        problems.add(f"{path}.jurisdiction", "must be 'US' or a two-letter state code")
    channels = _channels(item.get("channels"), f"{path}.channels", problems)
    window = (
        parse_week_schedule(item["window"], f"{path}.window", problems)
        if item.get("window") is not None
        else None
    )
    fixed_zone = item.get("fixed_zone")
    if fixed_zone is not None:
        fixed_zone = parse_timezone(fixed_zone, f"{path}.fixed_zone", problems)
    local = _flag(item.get("local", True), f"{path}.local", problems)
    if not local and fixed_zone is None:
        problems.add(f"{path}.local", "a rule read in no zone applies nowhere; set fixed_zone")
    holiday_spec = _holidays(item.get("holidays"), f"{path}.holidays", problems)
    if holiday_spec is not None and window is None:
        problems.add(f"{path}.holidays", "closed days need a window")
    cap = _cap(item.get("cap"), f"{path}.cap", problems)
    if window is None and cap is None:
        problems.add(path, "a rule needs a window, a cap or both")
    start = _day(item.get("effective_from"), f"{path}.effective_from", problems)
    end = _day(item.get("effective_to"), f"{path}.effective_to", problems)
    if start and end and end < start:
        problems.add(f"{path}.effective_to", "must not be before effective_from")
    try:
        confidence = Confidence(str(item.get("confidence")))
    except ValueError:
        problems.add(f"{path}.confidence", "must be one of high, medium, low")
        confidence = Confidence.LOW
    consent_waives = _flag(item.get("consent_waives"), f"{path}.consent_waives", problems)
    notes = item.get("notes", "")
    if not isinstance(notes, str):
        problems.add(f"{path}.notes", "must be a string")
    if len(problems.problems) > before:
        return None
    return Rule(
        id=texts["id"],
        version=texts["version"],
        jurisdiction=texts["jurisdiction"],
        channels=channels,
        window=window,
        citation=texts["citation"],
        source=texts["source"],
        confidence=confidence,
        fixed_zone=fixed_zone,
        local=local,
        holidays=holiday_spec,
        cap=cap,
        consent_waives=consent_waives,
        effective_from=start,
        effective_to=end,
        notes=str(notes).strip(),
    )


def _text(value: object, path: str, problems: ProblemCollector) -> str:
    if not isinstance(value, str) or not value.strip():
        problems.add(path, "must be a non-empty string")
        return ""
    return value.strip()


def _flag(value: object, path: str, problems: ProblemCollector) -> bool:
    if not isinstance(value, bool):
        problems.add(path, "must be true or false")
        return False
    return value


def _channels(value: object, path: str, problems: ProblemCollector) -> frozenset[Channel]:
    if not isinstance(value, list) or not value:
        problems.add(path, "must be a non-empty list of CALL, TEXT")
        return frozenset()
    out: set[Channel] = set()
    for i, name in enumerate(value):
        try:
            out.add(Channel(name))
        except ValueError:
            problems.add(f"{path}[{i}]", "must be CALL or TEXT")
    return frozenset(out)


def _day(value: object, path: str, problems: ProblemCollector) -> date | None:
    if value is None:
        return None
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    problems.add(path, "must be a date YYYY-MM-DD")
    return None


def _cap(value: object, path: str, problems: ProblemCollector) -> FrequencyCap | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) != {"max", "hours"}:
        problems.add(path, "must be {max: attempts, hours: rolling window}")
        return None
    most, hours = value["max"], value["hours"]
    if isinstance(most, bool) or not isinstance(most, int) or most < 1:
        problems.add(f"{path}.max", "must be a positive integer")
        return None
    if isinstance(hours, bool) or not isinstance(hours, int | float) or hours <= 0:
        problems.add(f"{path}.hours", "must be a positive number")
        return None
    return FrequencyCap(max_attempts=most, window=timedelta(hours=hours))


def _holidays(value: object, path: str, problems: ProblemCollector) -> HolidaySpec | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not set(value) <= {"subdiv", "add", "remove"}:
        problems.add(path, "must be {subdiv, add, remove}")
        return None
    subdiv = value.get("subdiv")
    if subdiv is not None:
        try:
            _package_holidays(str(subdiv), 2026)
        except NotImplementedError:
            problems.add(f"{path}.subdiv", f"the holidays package has no US subdivision {subdiv!r}")
            return None
    lists: dict[str, tuple[str, ...]] = {}
    for key in ("add", "remove"):
        items = value.get(key, [])
        if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
            problems.add(f"{path}.{key}", "must be a list of strings")
            return None
        lists[key] = tuple(items)
    for i, item in enumerate(lists["add"]):
        try:
            _named_date(item, 2024)  # a leap year, so 02-29 passes
        except ValueError:
            problems.add(
                f"{path}.add[{i}]", f"must be {', '.join(_NAMED_HOLIDAYS)} or a date 'MM-DD'"
            )
            return None
    return HolidaySpec(
        subdiv=None if subdiv is None else str(subdiv), add=lists["add"], remove=lists["remove"]
    )
