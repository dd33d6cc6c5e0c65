"""Outbound events: what a decision tells the customer's systems, and how delivery backs off.

Pure: the runtime stores the events in the decision's transaction and delivers them
(``runtime/events.py``, ``runtime/embedded/webhooks.py``, ``docs/webhooks.md``).

Rule 1: an event is read off a decision's history, in history order; a history entry maps to
at most one event, and the event's type says what happened, never how the engine got there.
Rule 2: a delivery that keeps failing is retried with exponential backoff (with jitter) until
its horizon passes, then given up; a subscription whose deliveries keep failing is disabled
once both the count and the age of its failure streak pass their thresholds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from reachflow.domain.decider import History, StepOpened, StepUpdated

EXECUTION_CREATED = "execution.created"
EXECUTION_STARTED = "execution.started"
STEP_SCHEDULED = "execution.step.scheduled"
STEP_DEFERRED = "execution.step.deferred"
STEP_DISPATCHED = "execution.step.dispatched"
STEP_COMPLETED = "execution.step.completed"
EXECUTION_PAUSED = "execution.paused"
EXECUTION_RESUMED = "execution.resumed"
EXECUTION_COMPLETED = "execution.completed"
EXECUTION_FAILED = "execution.failed"
EXECUTION_CANCELLED = "execution.cancelled"
CONTACT_SUPPRESSED = "contact.suppressed"
CONTACT_CONSENTED = "contact.consented"

#: Every event type a subscription may name, in the order docs/webhooks.md lists them.
EVENT_TYPES: tuple[str, ...] = (
    EXECUTION_CREATED,
    EXECUTION_STARTED,
    STEP_SCHEDULED,
    STEP_DEFERRED,
    STEP_DISPATCHED,
    STEP_COMPLETED,
    EXECUTION_PAUSED,
    EXECUTION_RESUMED,
    EXECUTION_COMPLETED,
    EXECUTION_FAILED,
    EXECUTION_CANCELLED,
    CONTACT_SUPPRESSED,
    CONTACT_CONSENTED,
)
#: A subscription to every type.
ALL_TYPES = "*"

#: History kinds that end a step, and the step status each implies when the step update is
#: not in the same decision.
_STEP_ENDS: Mapping[str, str] = {
    "reported": "COMPLETED",
    "dispatch_failed": "FAILED",
    "report_timeout": "FAILED",
    "skipped": "SKIPPED",
    "suppressed": "SKIPPED",
    "replied": "COMPLETED",
    "no_reply": "COMPLETED",
}
_SIMPLE: Mapping[str, str] = {
    "started": EXECUTION_STARTED,
    "scheduled": STEP_SCHEDULED,
    "retry_scheduled": STEP_SCHEDULED,
    "deferred": STEP_DEFERRED,
    "dispatched": STEP_DISPATCHED,
    "paused": EXECUTION_PAUSED,
    "resumed": EXECUTION_RESUMED,
    "cancelled": EXECUTION_CANCELLED,
    "failed": EXECUTION_FAILED,
}
#: History fields copied into an event's data, by their history names.
_COPIED = (
    "node",
    "stepExecutionId",
    "at",
    "until",
    "reason",
    "rules",
    "zones",
    "idempotencyKey",
    "disposition",
    "outcome",
    "reply",
    "retry",
    "maxRetries",
    "why",
)


@dataclass(frozen=True, slots=True)
class OutboundEvent:
    type: str
    at: datetime
    data: Mapping[str, Any] = field(default_factory=dict)


def events_of(
    history: Sequence[History], steps: Iterable[StepOpened | StepUpdated] = ()
) -> list[OutboundEvent]:
    """The events a decision's history tells, in order (Rule 1). ``steps`` (the decision's
    step changes) add a completed step's status, disposition, ``agentCall`` and reply; a report
    after which the step still waits (for a reply) ends nothing."""
    ended: dict[str, StepUpdated] = {}
    waiting: set[str] = set()
    for change in steps:
        if isinstance(change, StepUpdated) and change.completed_at is not None:
            ended[change.id] = change
            waiting.discard(change.id)
        elif isinstance(change, StepUpdated) and change.status.value == "RUNNING":
            waiting.add(change.id)
    out: list[OutboundEvent] = []
    for entry in history:
        if entry.kind == "reported" and entry.data.get("stepExecutionId") in waiting:
            continue
        event = _event_of(entry, ended)
        if event is not None:
            out.append(event)
    return out


def _event_of(entry: History, ended: Mapping[str, StepUpdated]) -> OutboundEvent | None:
    data = {_rename(k): v for k, v in entry.data.items() if k in _COPIED}
    kind = entry.kind
    if kind in _SIMPLE:
        return OutboundEvent(_SIMPLE[kind], entry.at, data)
    if kind == "finished":
        status = entry.data.get("status")
        if status not in (None, "COMPLETED"):
            return OutboundEvent(EXECUTION_FAILED, entry.at, data)
        return OutboundEvent(EXECUTION_COMPLETED, entry.at, data)
    if kind in _STEP_ENDS:
        step_id = entry.data.get("stepExecutionId")
        update = ended.get(step_id) if isinstance(step_id, str) else None
        data["stepStatus"] = update.status.value if update is not None else _STEP_ENDS[kind]
        data["endedBy"] = kind
        if update is not None:
            if update.disposition is not None:
                data["disposition"] = update.disposition.value
            if update.agent_call is not None:
                data["agentCall"] = dict(update.agent_call)
            if update.reply is not None:
                data["reply"] = update.reply
        return OutboundEvent(STEP_COMPLETED, entry.at, data)
    return None


def _rename(key: str) -> str:
    return "nodeId" if key == "node" else key


def matches(subscribed: Iterable[str], event_type: str) -> bool:
    """Does a subscription to ``subscribed`` take ``event_type``?"""
    wanted = set(subscribed)
    return ALL_TYPES in wanted or event_type in wanted


# ------------------------------------------------------------------------- delivery policy


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How a failing delivery backs off, when it is given up, when its subscription stops."""

    #: The wait after the first failed attempt; it doubles after each later one ...
    first_backoff: timedelta = timedelta(seconds=5)
    #: ... up to this.
    max_backoff: timedelta = timedelta(hours=1)
    #: Up to this much of the wait is added at random, so retries of many deliveries spread.
    jitter: float = 0.2
    #: A delivery is given up when its next attempt would start this long after its first.
    horizon: timedelta = timedelta(hours=24)
    #: A subscription is disabled after this many failed attempts in a row ...
    disable_after_failures: int = 20
    #: ... when the first of them is at least this old.
    disable_after: timedelta = timedelta(hours=24)

    def backoff(self, failed_attempts: int, draw: float) -> timedelta:
        """The wait after ``failed_attempts`` (>= 1) attempts failed; ``draw`` in [0, 1)."""
        exponent = min(max(failed_attempts, 1) - 1, 40)
        base: timedelta = min(self.first_backoff * (2**exponent), self.max_backoff)
        return base + base * (self.jitter * min(max(draw, 0.0), 1.0))

    def next_attempt(
        self, first_attempt_at: datetime, failed_attempts: int, now: datetime, draw: float
    ) -> datetime | None:
        """When to try again, or None: the horizon has passed (give up)."""
        at = now + self.backoff(failed_attempts, draw)
        return at if at - first_attempt_at <= self.horizon else None

    def should_disable(
        self, consecutive_failures: int, failing_since: datetime | None, now: datetime
    ) -> bool:
        return (
            failing_since is not None
            and consecutive_failures >= self.disable_after_failures
            and now - failing_since >= self.disable_after
        )


def transient_status(status_code: int | None) -> bool:
    """Is a subscriber's answer worth another attempt? Every non-2xx answer and every failure
    to get one is retried (the subscriber may be redeploying); a 410 Gone is not."""
    if status_code is None:
        return True
    return not (200 <= status_code < 300) and status_code != 410
