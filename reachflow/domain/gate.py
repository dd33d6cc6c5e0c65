"""The dispatch gate: may a step be dispatched now, and if not, when and why not.

A gate is a set of ``Constraint``s, each a weekly schedule read in one time zone (the workflow
schedule in the workflow's zone; the TCPA schedule and statute rules in each of the contact's
candidate zones). The allowed window is the intersection of every applicable constraint, minus
the closing margin. ``check`` is pure: the caller passes the instant.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from reachflow.domain.enums import Channel
from reachflow.domain.schedule import WeekSchedule
from reachflow.domain.windows import (
    Interval,
    first_at_or_after,
    intersect,
    local_to_utc,
    schedule_intervals,
    shrink_ends,
    subtract,
)


@dataclass(frozen=True, slots=True)
class Constraint:
    rule: str  # e.g. "workflowSchedule", "tcpaSchedule", "US-FL-501.059-hours"
    version: str
    zone: str
    schedule: WeekSchedule
    #: Contact-window rules are skipped by steps with ``needsTCPACompliance: false``.
    contact_window: bool = False
    channels: frozenset[Channel] = frozenset({Channel.CALL, Channel.TEXT})
    closed_dates: frozenset[date] = frozenset()

    def intervals(self, start: datetime, end: datetime) -> list[Interval]:
        zone = ZoneInfo(self.zone)
        open_ = schedule_intervals(self.schedule, zone, start, end)
        if not self.closed_dates:
            return open_
        closed = [
            Interval(local_to_utc(d, 0, zone), local_to_utc(d, 24 * 60, zone))
            for d in sorted(self.closed_dates)
        ]
        return subtract(open_, closed)


@dataclass(frozen=True, slots=True)
class Cap:
    """A rolling frequency cap: at most ``max_attempts`` attempts in any window of ``window``.

    Attempts on every channel and in every workflow count; an attempt at ``t`` counts while
    ``now < t + window``, so no half-open window of that length ever holds more than the maximum.
    """

    rule: str
    version: str
    max_attempts: int
    window: timedelta
    channels: frozenset[Channel] = frozenset({Channel.CALL, Channel.TEXT})

    def release(self, attempts: tuple[datetime, ...], at: datetime) -> datetime | None:
        """None when one more attempt at ``at`` keeps within the cap, else when it would."""
        live = sorted(a for a in attempts if a <= at < a + self.window)
        if len(live) < self.max_attempts:
            return None
        return live[len(live) - self.max_attempts] + self.window


@dataclass(frozen=True, slots=True)
class GateAnswer:
    allowed: bool
    at: datetime | None  # the earliest allowed instant (== now when allowed); None = never
    reason: str
    #: The rules that decide ``at``: those still closed just before it (a deferral waits for
    #: them), or, when it never opens, those closed now.
    rules: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    #: The number is on the suppression list for this channel: never dispatch, whatever the time.
    suppressed: bool = False
    #: The rules closed at the instant checked (they may open before ``at``).
    closed_now: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Gate:
    constraints: tuple[Constraint, ...] = ()
    margin: timedelta = timedelta(0)
    horizon: timedelta = timedelta(days=14)
    #: Reasons that refuse outright, whatever the time (no evidence of the contact's location).
    refusals: tuple[str, ...] = field(default=())
    #: Channels on the suppression list for this contact, with the reason. Never skipped.
    suppressed: Mapping[Channel, str] = field(default_factory=dict)
    #: Rolling frequency caps and the contact's recent attempts (all workflows). Never skipped.
    caps: tuple[Cap, ...] = ()
    attempts: tuple[datetime, ...] = ()

    def applicable(self, channel: Channel, needs_tcpa: bool) -> list[Constraint]:
        return [
            c
            for c in self.constraints
            if channel in c.channels and (needs_tcpa or not c.contact_window)
        ]

    def check(self, now: datetime, channel: Channel, needs_tcpa: bool = True) -> GateAnswer:
        """Allowed now, or the earliest allowed instant and why; ``at=None`` means never.

        Order: the suppression list (never skipped), refusals (no location evidence), the
        intersected windows, then the frequency caps, each cap release re-checked against the
        windows until both agree.
        """
        reason = self.suppressed.get(channel)
        if reason is not None:
            return GateAnswer(
                False,
                None,
                f"suppressed for {channel.value}: {reason}",
                ("suppression",),
                (),
                suppressed=True,
            )
        answer = self.window_check(now, channel, needs_tcpa)
        caps = [c for c in self.caps if channel in c.channels]
        if not caps or answer.at is None:
            return answer
        at: datetime | None = answer.at
        held: list[str] = []
        deciding: tuple[str, ...] = answer.rules
        for _ in range(32):
            if at is None:
                break
            releases = [(r, c) for c in caps if (r := c.release(self.attempts, at)) is not None]
            if not releases:
                break
            release, cap = max(releases, key=lambda rc: rc[0])
            held.append(f"{cap.rule}@{cap.version}")
            after = self.window_check(release, channel, needs_tcpa)
            at = after.at
            # The cap's release decides, unless a window still closed then decides later.
            deciding = after.rules if not after.allowed else (held[-1],)
        if not held:
            return answer
        rules = tuple(dict.fromkeys((*deciding, *held)))
        caps_text = ", ".join(dict.fromkeys(held))
        closed = tuple(dict.fromkeys((*answer.closed_now, *held)))
        if at is None:
            return GateAnswer(
                False,
                None,
                f"frequency cap {caps_text}; no window opens after it",
                rules,
                answer.zones,
                closed_now=closed,
            )
        return GateAnswer(
            False,
            at,
            f"frequency cap {caps_text} until {_utc(at)}",
            rules,
            answer.zones,
            closed_now=closed,
        )

    def window_check(self, now: datetime, channel: Channel, needs_tcpa: bool = True) -> GateAnswer:
        """The windows alone: refusals and the intersected schedules, no caps."""
        if self.refusals and needs_tcpa:
            return GateAnswer(False, None, "; ".join(self.refusals))
        constraints = self.applicable(channel, needs_tcpa)
        if not constraints:
            return GateAnswer(True, now, "no window applies")
        # Look two days ahead first (the common case), then the whole horizon.
        at: datetime | None = None
        per: list[list[Interval]] = []
        for span in (timedelta(days=2), self.horizon):
            end = now + span
            per = [c.intervals(now, end) for c in constraints]
            window = per[0]
            for other in per[1:]:
                window = intersect(window, other)
            at = first_at_or_after(shrink_ends(window, self.margin), now)
            if at is not None:
                break
        zones = tuple(sorted({c.zone for c in constraints}))
        if at is not None and at == now:
            return GateAnswer(True, now, "inside every window", (), zones)
        closed_now = _closed_at(now, constraints, per, self.margin)
        if at is None:
            return GateAnswer(
                False,
                None,
                f"never open within {self.horizon.days} days: {', '.join(closed_now)}",
                closed_now,
                zones,
                closed_now=closed_now,
            )
        # Whoever is still closed just before the opening set it (the others opened earlier).
        opening = _closed_at(at - _INSTANT, constraints, per, self.margin)
        reason = f"outside {', '.join(closed_now)} ({', '.join(zones)})"
        if opening != closed_now:
            reason += f"; opens when {', '.join(opening)} opens"
        return GateAnswer(False, at, reason, opening, zones, closed_now=closed_now)


_INSTANT = timedelta(microseconds=1)


def _closed_at(
    instant: datetime,
    constraints: list[Constraint],
    per: list[list[Interval]],
    margin: timedelta,
) -> tuple[str, ...]:
    """The ``rule@version`` labels of the constraints closed at ``instant`` (all of them if
    none is: a margin can close the intersection while each is open)."""
    closed = tuple(
        dict.fromkeys(
            f"{c.rule}@{c.version}"
            for c, ivs in zip(constraints, per, strict=True)
            if not any(iv.contains(instant) for iv in shrink_ends(ivs, margin))
        )
    )
    return closed or tuple(dict.fromkeys(f"{c.rule}@{c.version}" for c in constraints))


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")
