"""The compliance policy: a contact's location and the rules become gate constraints.

``contact_constraints`` turns (rules, location, TCPA schedule, consent, date) into the
``Constraint``s the dispatch gate intersects: the workflow's TCPA schedule and every applicable
statute rule (federal plus the rules of *every* candidate state), each read in *every*
candidate zone. ``cap_allows`` checks the rolling frequency caps, which a weekly window cannot
express. ``explain`` answers "may we contact now, and if not, when and why" for the API.
Everything is pure: instants come in as arguments.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

from reachflow.domain.compliance.location import ContactLocation
from reachflow.domain.compliance.rules import Rule, RuleSet
from reachflow.domain.enums import Channel
from reachflow.domain.gate import Cap, Constraint, Gate, GateAnswer
from reachflow.domain.schedule import DEFAULT_TCPA_SCHEDULE, WeekSchedule

#: The rule name of the workflow's own TCPA schedule (Feather's ``tcpaSchedule``).
TCPA_SCHEDULE_RULE = "tcpaSchedule"
#: Holidays are computed for this many days after the instant (cover the gate's horizon).
DEFAULT_HORIZON_DAYS = 31
NO_LOCATION = "no evidence of the contact's location (no usable ZIP, phone number or state)"

#: ``on``: an aware instant (holidays for the days around it) or an inclusive range of dates.
On = datetime | tuple[date, date]


class CapDecision(NamedTuple):
    allowed: bool
    next_allowed: datetime | None  # None when allowed
    rule_id: str | None  # the cap that holds longest, when not allowed


def contact_constraints(
    rules: RuleSet,
    location: ContactLocation,
    tcpa_schedule: WeekSchedule | None,
    channel_consent: frozenset[Channel],
    on: On,
    *,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
) -> tuple[tuple[Constraint, ...], tuple[str, ...]]:
    """The contact-window constraints and the refusals for one contact.

    - ``tcpa_schedule`` (``DEFAULT_TCPA_SCHEDULE`` when None) in every candidate zone;
    - every rule of ``rules`` binding the federal level or any candidate state, in force at some
      day of ``on``, in every candidate zone (and in its ``fixed_zone``), for its channels minus
      the consented ones when consent waives it, closing its holidays within ``on``.

    All are ``contact_window=True``. A location without zones yields no constraint and one
    refusal. A rule that enters or leaves force inside the span applies to the whole span.
    """
    if not location.zones:
        return (), (NO_LOCATION,)
    first, last = _span(on, horizon_days)
    constraints = [
        Constraint(
            rule=TCPA_SCHEDULE_RULE,
            version="default" if tcpa_schedule is None else "workflow",
            zone=zone,
            schedule=DEFAULT_TCPA_SCHEDULE if tcpa_schedule is None else tcpa_schedule,
            contact_window=True,
        )
        for zone in location.zones
    ]
    for rule in rules.applicable(location.states, first, last):
        channels = _channels(rule, channel_consent)
        if rule.window is None or not channels:
            continue
        closed = rule.closed_dates(first, last)
        for zone in _rule_zones(rule, location.zones):
            constraints.append(
                Constraint(
                    rule=rule.id,
                    version=rule.version,
                    zone=zone,
                    schedule=rule.window,
                    contact_window=True,
                    channels=channels,
                    closed_dates=closed,
                )
            )
    return tuple(constraints), ()


def contact_caps(
    rules: RuleSet,
    states: Iterable[str],
    on: datetime,
    *,
    channel_consent: frozenset[Channel] = frozenset(),
) -> tuple[Cap, ...]:
    """The rolling frequency caps binding a contact in any of ``states`` around ``on``.

    Caps are never skipped by ``needsTCPACompliance: false``; consent waives a cap only where
    the rule says so, and only for the consented channels.
    """
    today = on.astimezone(UTC).date()
    caps: list[Cap] = []
    for rule in rules.applicable(states, today - timedelta(days=1), today + timedelta(days=1)):
        channels = _channels(rule, channel_consent)
        if rule.cap is None or not channels:
            continue
        caps.append(
            Cap(
                rule=rule.id,
                version=rule.version,
                max_attempts=rule.cap.max_attempts,
                window=rule.cap.window,
                channels=channels,
            )
        )
    return tuple(caps)


def cap_allows(
    rules: RuleSet,
    states: Iterable[str],
    channel: Channel,
    recent_attempts: Sequence[datetime],
    now: datetime,
    *,
    channel_consent: frozenset[Channel] = frozenset(),
) -> CapDecision:
    """May one more attempt on ``channel`` be made at ``now`` without exceeding any cap?

    ``recent_attempts`` are the contact's attempts on any channel and in any workflow (all count,
    which is stricter than counting per subject). An attempt counts for a cap of window W while
    ``now < attempt + W``, so no half-open window of length W ever holds more than the maximum.
    """
    worst: tuple[datetime, str] | None = None
    attempts = tuple(recent_attempts)
    for cap in contact_caps(rules, states, now, channel_consent=channel_consent):
        if channel not in cap.channels:
            continue
        release = cap.release(attempts, now)
        if release is not None and (worst is None or release > worst[0]):
            worst = (release, cap.rule)
    if worst is None:
        return CapDecision(True, None, None)
    return CapDecision(False, worst[0], worst[1])


def next_allowed(
    instant: datetime,
    rules: RuleSet,
    location: ContactLocation,
    channel: Channel,
    *,
    tcpa_schedule: WeekSchedule | None = None,
    channel_consent: frozenset[Channel] = frozenset(),
    recent_attempts: Sequence[datetime] = (),
    needs_tcpa: bool = True,
    extra_constraints: Sequence[Constraint] = (),
    suppressed: Mapping[Channel, str] | None = None,
    margin: timedelta = timedelta(0),
    horizon: timedelta = timedelta(days=14),
) -> GateAnswer:
    """The earliest instant at or after ``instant`` when ``channel`` may reach the contact.

    ``GateAnswer.at`` is that instant (``instant`` itself when allowed now) or None, "never
    within the horizon", with the reason, the deciding ``rule@version``s and the zones.
    """
    gate = contact_gate(
        instant,
        rules,
        location,
        tcpa_schedule=tcpa_schedule,
        channel_consent=channel_consent,
        recent_attempts=recent_attempts,
        extra_constraints=extra_constraints,
        suppressed=suppressed,
        margin=margin,
        horizon=horizon,
    )
    return gate.check(instant, channel, needs_tcpa)


def contact_gate(
    instant: datetime,
    rules: RuleSet,
    location: ContactLocation,
    *,
    tcpa_schedule: WeekSchedule | None = None,
    channel_consent: frozenset[Channel] = frozenset(),
    recent_attempts: Sequence[datetime] = (),
    extra_constraints: Sequence[Constraint] = (),
    suppressed: Mapping[Channel, str] | None = None,
    margin: timedelta = timedelta(0),
    horizon: timedelta = timedelta(days=14),
) -> Gate:
    """The whole gate for one contact around ``instant``: windows, refusals, caps, suppression."""
    constraints, refusals = contact_constraints(
        rules,
        location,
        tcpa_schedule,
        channel_consent,
        instant,
        horizon_days=2 * horizon.days + 2,  # a cap can push the search past one horizon
    )
    return Gate(
        constraints=(*extra_constraints, *constraints),
        margin=margin,
        horizon=horizon,
        refusals=refusals,
        suppressed=dict(suppressed or {}),
        caps=contact_caps(rules, location.states, instant, channel_consent=channel_consent),
        attempts=tuple(recent_attempts),
    )


def explain(
    rules: RuleSet,
    location: ContactLocation,
    channel: Channel,
    now: datetime,
    *,
    tcpa_schedule: WeekSchedule | None = None,
    channel_consent: frozenset[Channel] = frozenset(),
    recent_attempts: Sequence[datetime] = (),
    needs_tcpa: bool = True,
    extra_constraints: Sequence[Constraint] = (),
    suppressed: Mapping[Channel, str] | None = None,
    margin: timedelta = timedelta(0),
    horizon: timedelta = timedelta(days=14),
) -> dict[str, Any]:
    """JSON-ready answer for ``GET /api/v1/compliance/window``: allowed now, next instant, why.

    ``extra_constraints`` adds the workflow's own schedule, if the caller wants it counted.
    """
    gate = contact_gate(
        now,
        rules,
        location,
        tcpa_schedule=tcpa_schedule,
        channel_consent=channel_consent,
        recent_attempts=recent_attempts,
        extra_constraints=extra_constraints,
        suppressed=suppressed,
        margin=margin,
        horizon=horizon,
    )
    refusals = gate.refusals
    answer = gate.check(now, channel, needs_tcpa)
    cap = cap_allows(
        rules, location.states, channel, recent_attempts, now, channel_consent=channel_consent
    )
    at = answer.at
    reason = answer.reason
    deciding = list(dict.fromkeys(answer.rules))
    applied = {c.rule for c in gate.applicable(channel, needs_tcpa)}
    return {
        "channel": channel.value,
        "checkedAt": _iso(now),
        "allowedNow": answer.allowed,
        "suppressed": answer.suppressed,
        "nextAllowedAt": None if at is None else _iso(at),
        "reason": reason,
        "decidingRules": deciding,
        "decidingZones": list(answer.zones),
        "zones": list(location.zones),
        "states": list(location.states),
        "evidence": list(location.evidence),
        "refusals": list(refusals),
        "rulesVersion": rules.version,
        "cap": {
            "allowed": cap.allowed,
            "nextAllowedAt": None if cap.next_allowed is None else _iso(cap.next_allowed),
            "rule": cap.rule_id,
        },
        "appliedRules": [
            _describe(rule)
            for rule in rules.rules
            if rule.id in applied or (rule.cap is not None and rule.id == cap.rule_id)
        ],
    }


def _span(on: On, horizon_days: int) -> tuple[date, date]:
    if isinstance(on, datetime):
        if on.tzinfo is None:
            raise ValueError("'on' must be an aware datetime")
        day = on.astimezone(UTC).date()
        # Local dates of every zone lie within a day of the UTC date.
        return day - timedelta(days=2), day + timedelta(days=horizon_days + 2)
    first, last = on
    if last < first:
        raise ValueError("'on' must be a range (first, last) with first <= last")
    return first, last


def _channels(rule: Rule, consent: frozenset[Channel]) -> frozenset[Channel]:
    return rule.channels - consent if rule.consent_waives else rule.channels


def _rule_zones(rule: Rule, zones: Sequence[str]) -> tuple[str, ...]:
    fixed = (rule.fixed_zone,) if rule.fixed_zone else ()
    return tuple(dict.fromkeys((*fixed, *(zones if rule.local else ()))))


def _describe(rule: Rule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "version": rule.version,
        "jurisdiction": rule.jurisdiction,
        "citation": rule.citation,
        "source": rule.source,
        "confidence": rule.confidence.value,
    }


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")
