"""A public execution session's status (seed 004), derived from history.

Rule 1: a session's status is never stored; it is a fold over its history: the session's own
events (created, payment, its run started or refused), then its run's execution events, in
order. The same history always gives the same list of status changes, so the read endpoint,
the stream and a reconnecting client (``Last-Event-ID``) agree on what changed and when.
Rule 2: the legal moves are ``TRANSITIONS``; an event that would make an illegal move (anything
after a terminal status) changes nothing.
Rule 3: what a client sees of an event is ``present``: fixed words plus a few whitelisted
fields, with phone numbers masked; never the request payload or the organization.

Feather's execution statuses and these map through one table, ``FEATHER_STATUS``
(``docs/public-sessions.md`` draws it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from reachflow.domain.enums import ExecutionStatus


class PublicStatus(StrEnum):
    AWAITING_PAYMENT = "awaiting_payment"
    PAYMENT_CONFIRMED = "payment_confirmed"
    WORKFLOW_QUEUED = "workflow_queued"
    WORKFLOW_RUNNING = "workflow_running"
    WORKFLOW_WAITING = "workflow_waiting"
    WORKFLOW_SUCCEEDED = "workflow_succeeded"
    WORKFLOW_FAILED = "workflow_failed"
    WORKFLOW_CANCELLED = "workflow_cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL


S = PublicStatus
TERMINAL = frozenset({S.WORKFLOW_SUCCEEDED, S.WORKFLOW_FAILED, S.WORKFLOW_CANCELLED})
_ENDS = TERMINAL

#: Where each status may go. Payment comes first or not at all; a run moves between running
#: and waiting until it ends; nothing leaves an end.
TRANSITIONS: dict[PublicStatus, frozenset[PublicStatus]] = {
    S.AWAITING_PAYMENT: frozenset({S.PAYMENT_CONFIRMED, S.WORKFLOW_CANCELLED}),
    S.PAYMENT_CONFIRMED: frozenset({S.WORKFLOW_QUEUED, S.WORKFLOW_FAILED, S.WORKFLOW_CANCELLED}),
    S.WORKFLOW_QUEUED: frozenset({S.WORKFLOW_RUNNING, S.WORKFLOW_WAITING} | _ENDS),
    S.WORKFLOW_RUNNING: frozenset({S.WORKFLOW_WAITING} | _ENDS),
    S.WORKFLOW_WAITING: frozenset({S.WORKFLOW_RUNNING, S.WORKFLOW_QUEUED} | _ENDS),
    S.WORKFLOW_SUCCEEDED: frozenset(),
    S.WORKFLOW_FAILED: frozenset(),
    S.WORKFLOW_CANCELLED: frozenset(),
}

#: The one mapping table: each public status and the Feather execution status(es) of its run
#: (``None``: the session has no run yet, or never got one).
FEATHER_STATUS: dict[PublicStatus, tuple[ExecutionStatus, ...] | None] = {
    S.AWAITING_PAYMENT: None,
    S.PAYMENT_CONFIRMED: None,
    S.WORKFLOW_QUEUED: (ExecutionStatus.CREATED,),
    S.WORKFLOW_RUNNING: (ExecutionStatus.RUNNING,),
    S.WORKFLOW_WAITING: (ExecutionStatus.RUNNING, ExecutionStatus.PAUSED),
    S.WORKFLOW_SUCCEEDED: (ExecutionStatus.COMPLETED,),
    S.WORKFLOW_FAILED: (ExecutionStatus.FAILED,),
    S.WORKFLOW_CANCELLED: (ExecutionStatus.CANCELLED,),
}

#: A run whose execution has ended: the public status it must end at.
_ENDED_AS = {
    ExecutionStatus.COMPLETED: S.WORKFLOW_SUCCEEDED,
    ExecutionStatus.FAILED: S.WORKFLOW_FAILED,
    ExecutionStatus.CANCELLED: S.WORKFLOW_CANCELLED,
}

# -- the session's own event kinds ------------------------------------------------------------

SESSION_CREATED = "session_created"
PAYMENT_CONFIRMED = "payment_confirmed"
PAYMENT_FAILED = "payment_failed"
PAYMENT_CANCELED = "payment_canceled"
PAYMENT_EXPIRED = "payment_expired"
RUN_STARTED = "run_started"
RUN_REFUSED = "run_refused"
RUN_DELETED = "run_deleted"
RUN_ENDED = "run_ended"


@dataclass(frozen=True, slots=True)
class Fact:
    """One event of a session's history: ``ref`` names it (``se_<n>`` for the session's own,
    ``ev_<n>`` for its run's)."""

    ref: str
    kind: str
    at: datetime
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StatusChange:
    """The ``sequence``-th change (from 1): the status, why, when, and the event that made it."""

    sequence: int
    status: PublicStatus
    reason: str
    at: datetime
    ref: str


class StatusFold:
    """Feed it facts in order; it keeps the changes they make."""

    def __init__(self) -> None:
        self.changes: list[StatusChange] = []
        self._before_pause: PublicStatus | None = None

    @property
    def status(self) -> PublicStatus | None:
        return self.changes[-1].status if self.changes else None

    def feed(self, fact: Fact) -> StatusChange | None:
        found = status_of(fact, self.status, self._before_pause)
        if fact.kind == "paused" and self.status is not None and not self.status.is_terminal:
            self._before_pause = self.status
        if found is None:
            return None
        status, reason = found
        if fact.kind == "resumed":
            self._before_pause = None
        current = self.status
        if current == status:
            return None
        if current is not None and status not in TRANSITIONS[current]:
            return None
        change = StatusChange(len(self.changes) + 1, status, mask_phones(reason), fact.at, fact.ref)
        self.changes.append(change)
        return change


def status_changes(facts: Iterable[Fact]) -> list[StatusChange]:
    fold = StatusFold()
    for fact in facts:
        fold.feed(fact)
    return fold.changes


def status_of(
    fact: Fact, current: PublicStatus | None, before_pause: PublicStatus | None
) -> tuple[PublicStatus, str] | None:
    """The status ``fact`` moves the session to, and why; None when it moves nothing."""
    kind, data = fact.kind, fact.data
    if kind == SESSION_CREATED:
        if data.get("status") == S.AWAITING_PAYMENT.value:
            return S.AWAITING_PAYMENT, f"waiting for a payment of {_price(data)}"
        return S.WORKFLOW_QUEUED, "queued: the workflow starts shortly"
    if kind == PAYMENT_CONFIRMED:
        return S.PAYMENT_CONFIRMED, "payment confirmed"
    if kind in (PAYMENT_CANCELED, PAYMENT_EXPIRED):
        why = "the payment was canceled" if kind == PAYMENT_CANCELED else _expired(data)
        return S.WORKFLOW_CANCELLED, why
    if kind == RUN_STARTED:
        return S.WORKFLOW_QUEUED, "queued: the workflow starts shortly"
    if kind == RUN_REFUSED:
        return S.WORKFLOW_FAILED, f"the workflow could not start: {data.get('reason', '')}"
    if kind == RUN_DELETED:
        return S.WORKFLOW_CANCELLED, "the execution was deleted"
    if kind == RUN_ENDED:  # the run ended without the history saying how (reconciliation)
        ended = next((v for k, v in _ENDED_AS.items() if k.value == data.get("status")), None)
        return (ended, "the workflow ended") if ended is not None else None
    return _run_status(kind, data, fact.at, current, before_pause)


def _run_status(
    kind: str,
    data: Mapping[str, Any],
    at: datetime,
    current: PublicStatus | None,
    before_pause: PublicStatus | None,
) -> tuple[PublicStatus, str] | None:
    """The run's execution events (``domain.decider`` and the dispatcher write them)."""
    if kind in ("started", "timer_fired"):
        return S.WORKFLOW_RUNNING, "the workflow is running"
    if kind in ("dispatched", "application_started"):
        return S.WORKFLOW_RUNNING, "a step is in progress"
    if kind in ("reported", "report_timeout", "dispatch_failed"):
        return S.WORKFLOW_RUNNING, "a step finished; the workflow goes on"
    if kind == "scheduled":
        due = _instant(data.get("at"))
        if due is not None and due > at:
            return S.WORKFLOW_WAITING, f"the next step is due at {_iso(due)}"
        return None
    if kind == "waiting":
        return S.WORKFLOW_WAITING, f"waiting until {data.get('until')}"
    if kind == "deferred":
        if data.get("until") is None:
            return None  # a step that can never run: the failure follows
        return S.WORKFLOW_WAITING, (
            f"held until {data.get('until')}: {data.get('reason') or 'outside its window'}"
        )
    if kind == "dispatch_waiting":
        return S.WORKFLOW_WAITING, "waiting for the agent to take the step"
    if kind == "paused":
        return S.WORKFLOW_WAITING, "paused"
    if kind == "resumed":
        back = before_pause or S.WORKFLOW_RUNNING
        return back, "resumed"
    if kind == "finished":
        outcome = data.get("disposition") or data.get("outcome") or "completed"
        return S.WORKFLOW_SUCCEEDED, f"the workflow finished: {outcome}"
    if kind == "failed":
        return S.WORKFLOW_FAILED, str(data.get("reason") or "the workflow failed")
    if kind == "cancelled":
        return S.WORKFLOW_CANCELLED, str(data.get("reason") or "cancelled")
    return None


def reconciled(
    facts: list[Fact], run_status: ExecutionStatus | None, *, run_gone: bool, at: datetime
) -> list[Fact]:
    """``facts`` plus what the run's row says that its history does not: a run that ended (or
    was deleted) ends the session even if its events are missing. ``at``: when it ended."""
    changes = status_changes(facts)
    if changes and changes[-1].status.is_terminal:
        return facts
    if run_gone:
        return [*facts, Fact("run_gone", RUN_DELETED, at)]
    if run_status is not None and run_status.is_terminal:
        return [*facts, Fact("run_end", RUN_ENDED, at, {"status": run_status.value})]
    return facts


def expired(
    facts: list[Fact], *, unpaid: bool, due_at: datetime | None, now: datetime, minutes: int
) -> list[Fact]:
    """``facts`` plus the expiry of an unpaid session whose deadline passed (at the deadline:
    the same history whenever it is read)."""
    if unpaid and due_at is not None and now >= due_at:
        return [*facts, Fact("se_expired", PAYMENT_EXPIRED, due_at, {"minutes": minutes})]
    return facts


def public_status_of_run(status: ExecutionStatus) -> PublicStatus:
    """The public status a Feather status alone implies (RUNNING: running)."""
    if status is ExecutionStatus.CREATED:
        return S.WORKFLOW_QUEUED
    if status is ExecutionStatus.PAUSED:
        return S.WORKFLOW_WAITING
    if status is ExecutionStatus.RUNNING:
        return S.WORKFLOW_RUNNING
    return _ENDED_AS[status]


# -- what a client sees of an event -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PublicEvent:
    id: str
    event_type: str
    level: str
    title: str
    message: str
    node_id: str | None
    at: datetime


#: kind -> (level, title); a kind not listed is shown as ``info`` with its name as title.
_TITLES: dict[str, tuple[str, str]] = {
    SESSION_CREATED: ("info", "Session created"),
    PAYMENT_CONFIRMED: ("info", "Payment confirmed"),
    PAYMENT_FAILED: ("warning", "Payment failed"),
    PAYMENT_CANCELED: ("warning", "Payment canceled"),
    PAYMENT_EXPIRED: ("warning", "Payment not received in time"),
    RUN_STARTED: ("info", "Workflow queued"),
    RUN_REFUSED: ("error", "Workflow could not start"),
    RUN_DELETED: ("warning", "Execution deleted"),
    RUN_ENDED: ("info", "Workflow ended"),
    "started": ("info", "Workflow started"),
    "scheduled": ("info", "Step scheduled"),
    "dispatched": ("info", "Step started"),
    "reported": ("info", "Step finished"),
    "report_timeout": ("warning", "No report from the agent in time"),
    "dispatch_failed": ("warning", "Step could not be performed"),
    "dispatch_held": ("info", "Step held back"),
    "dispatch_waiting": ("info", "Waiting for the agent"),
    "deferred": ("info", "Step deferred"),
    "waiting": ("info", "Waiting"),
    "timer_fired": ("info", "Wait ended"),
    "skipped": ("info", "Step skipped"),
    "suppressed": ("warning", "Channel suppressed"),
    "branched": ("info", "Branch taken"),
    "transition": ("info", "Moved on"),
    "application_started": ("info", "Action started"),
    "application_finished": ("info", "Action finished"),
    "paused": ("info", "Paused"),
    "resumed": ("info", "Resumed"),
    "finished": ("info", "Workflow finished"),
    "failed": ("error", "Workflow failed"),
    "cancelled": ("warning", "Workflow cancelled"),
}
#: Event kinds a client never sees (bookkeeping, or details of other systems).
HIDDEN_KINDS = frozenset({"metadata_merged", "dispatch_in_flight", "agent_reported", "no_edge"})


def present(fact: Fact) -> PublicEvent | None:
    """The client-safe view of one event (None: not shown)."""
    if fact.kind in HIDDEN_KINDS:
        return None
    level, title = _TITLES.get(fact.kind, ("info", fact.kind.replace("_", " ").capitalize()))
    data = fact.data
    node = data.get("node") or data.get("source")
    parts: list[str] = []
    for name in ("disposition", "outcome", "status", "reason", "until", "at", "target"):
        value = data.get(name)
        if isinstance(value, str) and value and fact.kind != SESSION_CREATED:
            parts.append(f"{name}: {value}")
    if fact.kind == SESSION_CREATED and data.get("status") == S.AWAITING_PAYMENT.value:
        parts.append(f"price: {_price(data)}")
    return PublicEvent(
        id=fact.ref,
        event_type=fact.kind,
        level=level,
        title=title,
        message=mask_phones("; ".join(parts)),
        node_id=str(node) if isinstance(node, str) else None,
        at=fact.at,
    )


#: ``+`` and 8 to 15 digits: a phone number in a reason text (``... is on the suppression
#: list``) is shown as ``[phone]``.
_PHONE = re.compile(r"(\+|%2[bB])\d{7,15}(?!\d)")


def mask_phones(text: str) -> str:
    return _PHONE.sub("[phone]", text) if "+" in text or "%2" in text else text


def _price(data: Mapping[str, Any]) -> str:
    amount, currency = data.get("amount"), str(data.get("currency") or "").upper()
    return f"{amount} {currency} (minor units)".strip()


def _expired(data: Mapping[str, Any]) -> str:
    minutes = data.get("minutes")
    return f"no payment within {minutes} minutes" if minutes else "no payment before the deadline"


def _instant(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        found = datetime.fromisoformat(value)
    except ValueError:
        return None
    return found if found.tzinfo is not None else None


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")
