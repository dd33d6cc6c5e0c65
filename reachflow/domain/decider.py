"""The execution state machine: ``decide(context, state, event, now) -> Decision``.

Rule 1: everything that moves an execution lives in this file; the shell only persists the
returned state and performs the returned commands.
Rule 2: ``decide`` is pure and total. The same inputs give the same outputs; ids and
idempotency keys derive from the execution id, the node id and the visit count.
Rule 3: an event that does not fit the state (a late or duplicate agent report, a wake-up
before its time) changes nothing but the history; an illegal command (resume a completed
execution) raises ``IllegalTransition`` and changes nothing at all.
Rule 4: nothing is dispatched while the execution is paused or finished, and nothing is
dispatched unless the gate allows it at ``now``; every deferral records why.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from reachflow.domain.conditions import CALL_STATUS, Facts, all_hold, lookup
from reachflow.domain.enums import Channel, Disposition, ExecutionStatus, StepStatus
from reachflow.domain.errors import IllegalTransition
from reachflow.domain.gate import Gate
from reachflow.domain.graph import (
    NEXT,
    NO_REPLY,
    REPLIED,
    SKIPPED,
    ActionConfig,
    ApplicationConfig,
    ConditionalConfig,
    EndConfig,
    Graph,
    Node,
    NodeKind,
    ReplyConfig,
    ReplyWait,
    RetryRule,
    TimeConfig,
)
from reachflow.domain.replies import MAX_REPLY, classify
from reachflow.domain.templates import LAST_REPLY, render
from reachflow.domain.windows import local_to_utc

_STEP_NAMESPACE = uuid.UUID("5b0f3c2e-8d7a-4f43-9a59-7c1b3e0f2a11")
#: A decision that enters more nodes than this without waiting is a spinning graph.
MAX_ENTRIES_PER_DECISION = 64
#: A callback time further away than this is held to it (``retryPolicy``, ``callbackAt``).
MAX_CALLBACK_AHEAD = timedelta(days=90)
#: Text dispositions after which a ``waitForReply`` step does not wait: the text did not go
#: out, or the contact is gone.
NOT_SENT = frozenset(
    {Disposition.COULD_NOT_CONNECT, Disposition.BAD_NUMBER, Disposition.DNC, Disposition.FRAUD}
)


class Phase(StrEnum):
    NOT_STARTED = "NOT_STARTED"  # CREATED, waiting for startAt
    ENTER = "ENTER"  # parked before entering node_id (paused at a node boundary)
    DELAY = "DELAY"  # a step's delay or a TIME node, until wake_at
    DEFERRED = "DEFERRED"  # held by the gate until wake_at
    DISPATCHED = "DISPATCHED"  # waiting for the agent's report; wake_at is the report deadline
    APPLYING = "APPLYING"  # waiting for an application action's result
    AWAITING_REPLY = "AWAITING_REPLY"  # waiting for the contact's text; wake_at is the timeout
    DONE = "DONE"


# ---------------------------------------------------------------------------------- state


@dataclass(frozen=True, slots=True)
class Lead:
    phone: str
    zipcode: str | None = None
    state: str | None = None


@dataclass(frozen=True, slots=True)
class ExecutionState:
    execution_id: str
    status: ExecutionStatus = ExecutionStatus.CREATED
    phase: Phase = Phase.NOT_STARTED
    node_id: str | None = None
    wake_at: datetime | None = None
    remaining_secs: float | None = None
    paused_from: ExecutionStatus | None = None
    step_id: str | None = None
    dispatch_attempt: int = 0
    visits: Mapping[str, int] = field(default_factory=dict)
    actions: int = 0
    agent_dispatches: Mapping[str, int] = field(default_factory=dict)
    disposition: Disposition | None = None
    last_call: Mapping[str, Any] | None = None
    variables: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    started_at: datetime | None = None
    completed_at: datetime | None = None
    outcome: str | None = None
    reason: str | None = None
    #: The contact's last reply to a step that waited for one (``{{lastReply}}``).
    last_reply: str | None = None
    #: Retries made of the current node, per disposition (``retryPolicy``).
    retries: Mapping[str, int] = field(default_factory=dict)

    @property
    def is_finished(self) -> bool:
        return self.status.is_terminal

    @property
    def awaits_start(self) -> bool:
        """Enrolled without a timer: it starts when its workflow is activated or resumed."""
        return self.phase is Phase.NOT_STARTED and self.wake_at is None


def new_execution(
    execution_id: str,
    *,
    now: datetime,
    start_at: datetime | None = None,
    variables: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> ExecutionState:
    return ExecutionState(
        execution_id=execution_id,
        wake_at=max(now, start_at) if start_at else now,
        variables=dict(variables or {}),
        metadata=dict(metadata or {}),
    )


# ---------------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class WakeUp:
    """A timer fired (or the start time came)."""


@dataclass(frozen=True, slots=True)
class AgentReported:
    step_execution_id: str
    disposition: Disposition
    call: Mapping[str, Any] = field(default_factory=dict)
    #: A text the contact sent back with the result (a text agent's report).
    reply: str | None = None
    #: When the contact asked to be called back (``CALL_AGAIN``), if the agent heard it.
    callback_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DispatchFailed:
    step_execution_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class DispatchHeld:
    """The shell re-checked the gate at the moment of dispatch and did not dispatch."""

    step_execution_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class ApplicationFinished:
    step_execution_id: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Paused:
    pass


@dataclass(frozen=True, slots=True)
class Resumed:
    pass


@dataclass(frozen=True, slots=True)
class Cancelled:
    reason: str = "cancelled by request"


@dataclass(frozen=True, slots=True)
class MetadataMerged:
    metadata: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ReplyReceived:
    """The contact texted the execution's number (``POST /api/v1/inbound-texts``, Twilio)."""

    text: str


Event = (
    WakeUp
    | AgentReported
    | ReplyReceived
    | DispatchFailed
    | DispatchHeld
    | ApplicationFinished
    | Paused
    | Resumed
    | Cancelled
    | MetadataMerged
)


# ---------------------------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True)
class StepOpened:
    id: str
    node_id: str
    visit: int
    kind: NodeKind
    channel: Channel | None
    order: int
    delay_secs: int
    agent_id: str | None
    leave_voicemail: bool
    needs_tcpa: bool
    finish_on: tuple[Disposition, ...]
    scheduled_at: datetime


@dataclass(frozen=True, slots=True)
class StepUpdated:
    id: str
    status: StepStatus
    at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    disposition: Disposition | None = None
    agent_call: Mapping[str, Any] | None = None
    next_allowed_at: datetime | None = None
    scheduled_at: datetime | None = None
    #: The contact's reply, on a step that waited for one.
    reply: str | None = None
    replied_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Dispatch:
    step_execution_id: str
    node_id: str
    idempotency_key: str
    agent_id: str
    channel: Channel
    phone: str
    message: str | None
    leave_voicemail: bool
    variables: Mapping[str, Any]
    sequence: int = 1
    from_phone_number: str | None = None


@dataclass(frozen=True, slots=True)
class Effect:
    """A side effect of an APPLICATION node for the shell to perform (suppress, http)."""

    step_execution_id: str
    action: str
    params: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class History:
    kind: str
    at: datetime
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decision:
    state: ExecutionState
    steps: tuple[StepOpened | StepUpdated, ...] = ()
    dispatches: tuple[Dispatch, ...] = ()
    effects: tuple[Effect, ...] = ()
    history: tuple[History, ...] = ()


@dataclass(frozen=True, slots=True)
class Context:
    graph: Graph
    gate: Gate
    lead: Lead
    timezone: str = "UTC"
    report_timeout: timedelta = timedelta(hours=2)
    application_timeout: timedelta = timedelta(minutes=10)


def step_execution_id(execution_id: str, node_id: str, visit: int) -> str:
    return str(uuid.uuid5(_STEP_NAMESPACE, f"{execution_id}/{node_id}/{visit}"))


def idempotency_key(execution_id: str, step_id: str, attempt: int) -> str:
    return f"{execution_id}:{step_id}:{attempt}"


# ---------------------------------------------------------------------------------- decide


def decide(context: Context, state: ExecutionState, event: Event, now: datetime) -> Decision:
    run = _Run(context, state, now)
    run.handle(event)
    return run.decision()


#: Phases whose timer a pause stops and a resume restarts with the time that was left.
_TIMED = (Phase.DELAY, Phase.NOT_STARTED, Phase.AWAITING_REPLY)


def reply_wait_of(node: Node) -> ReplyWait | None:
    """The reply a node waits for: a text's ``reply_wait``, a ``WAIT_FOR_REPLY`` node's."""
    config = node.config
    if isinstance(config, ActionConfig):
        return config.reply_wait
    if isinstance(config, ReplyConfig):
        return config.wait
    return None


class _Run:
    """One decision being built. Private and short-lived: ``decide`` is the only entry."""

    def __init__(self, context: Context, state: ExecutionState, now: datetime) -> None:
        self.ctx = context
        self.s = state
        self.now = now
        self.steps: list[StepOpened | StepUpdated] = []
        self.dispatches: list[Dispatch] = []
        self.effects: list[Effect] = []
        self.history: list[History] = []
        self.entries = 0

    def decision(self) -> Decision:
        return Decision(
            self.s,
            tuple(self.steps),
            tuple(self.dispatches),
            tuple(self.effects),
            tuple(self.history),
        )

    def log(self, kind: str, **data: Any) -> None:
        self.history.append(History(kind, self.now, data))

    def set(self, **changes: Any) -> None:
        self.s = replace(self.s, **changes)

    # -- events ---------------------------------------------------------------------------

    def handle(self, event: Event) -> None:
        if isinstance(event, WakeUp):
            self.on_wake()
        elif isinstance(event, AgentReported):
            self.on_report(event)
        elif isinstance(event, ReplyReceived):
            self.on_reply(event)
        elif isinstance(event, DispatchFailed):
            self.on_dispatch_failed(event)
        elif isinstance(event, DispatchHeld):
            self.on_dispatch_held(event)
        elif isinstance(event, ApplicationFinished):
            self.on_application(event)
        elif isinstance(event, Paused):
            self.on_pause()
        elif isinstance(event, Resumed):
            self.on_resume()
        elif isinstance(event, Cancelled):
            self.on_cancel(event.reason)
        else:
            merged = {**self.s.metadata, **event.metadata}
            self.set(metadata=merged)
            self.log("metadata_merged", keys=sorted(event.metadata))

    def on_wake(self) -> None:
        s = self.s
        if s.is_finished or s.wake_at is None or s.wake_at > self.now:
            return
        if s.status is ExecutionStatus.PAUSED:
            return
        if s.phase is Phase.NOT_STARTED:
            self.set(status=ExecutionStatus.RUNNING, started_at=self.now, wake_at=None)
            self.log("started")
            self.enter(self.ctx.graph.entry)
        elif s.phase is Phase.ENTER and s.node_id is not None:
            self.enter(s.node_id, count_visit=False)
        elif s.phase is Phase.DELAY:
            node = self.current()
            if node.kind is NodeKind.ACTION:
                self.try_dispatch(node)
            else:
                self.log("timer_fired", node=node.id)
                self.follow(NEXT)
        elif s.phase is Phase.DEFERRED:
            self.try_dispatch(self.current())
        elif s.phase is Phase.DISPATCHED and s.step_id is not None:
            self.log("report_timeout", node=s.node_id, stepExecutionId=s.step_id)
            self.complete_step(Disposition.COULD_NOT_CONNECT, {}, StepStatus.FAILED)
        elif s.phase is Phase.APPLYING and s.step_id is not None:
            self.log("application_timeout", stepExecutionId=s.step_id)
            self.on_application(ApplicationFinished(s.step_id, False, "timed out"))
        elif s.phase is Phase.AWAITING_REPLY and s.step_id is not None:
            self.steps.append(
                StepUpdated(s.step_id, StepStatus.COMPLETED, self.now, completed_at=self.now)
            )
            self.log("no_reply", node=s.node_id, stepExecutionId=s.step_id)
            self.set(step_id=None, wake_at=None)
            self.follow(NO_REPLY)

    def on_report(self, event: AgentReported) -> None:
        s = self.s
        if s.phase is not Phase.DISPATCHED or s.step_id != event.step_execution_id:
            self.log(
                "report_ignored",
                stepExecutionId=event.step_execution_id,
                disposition=event.disposition.value,
                why="not the step in flight",
            )
            return
        self.log(
            "reported",
            node=s.node_id,
            stepExecutionId=s.step_id,
            disposition=event.disposition.value,
        )
        wait = reply_wait_of(self.current())
        if wait is not None and event.disposition not in NOT_SENT:
            if event.reply:
                self.take_reply(event.reply, wait, event.disposition, event.call)
            else:
                self.await_reply(wait, event.disposition, event.call)
            return
        self.complete_step(
            event.disposition, event.call, StepStatus.COMPLETED, callback_at=event.callback_at
        )

    def on_reply(self, event: ReplyReceived) -> None:
        s = self.s
        wait = reply_wait_of(self.current()) if s.node_id is not None else None
        waiting = s.phase is Phase.AWAITING_REPLY or s.phase is Phase.DISPATCHED
        if s.is_finished or s.step_id is None or wait is None or not waiting:
            self.log("reply_ignored", why="not waiting for a reply", reply=event.text[:160])
            return
        # A reply before the delivery report proves the text arrived.
        delivered = Disposition.ENDED if s.phase is Phase.DISPATCHED else None
        self.take_reply(event.text, wait, delivered, None)

    def await_reply(
        self,
        wait: ReplyWait,
        disposition: Disposition | None,
        call: Mapping[str, Any] | None,
    ) -> None:
        """Hold the step in flight until a reply or the timeout (``no_reply``)."""
        step_id = self.s.step_id
        assert step_id is not None
        until = self.now + timedelta(seconds=wait.timeout_secs)
        self.steps.append(
            StepUpdated(
                step_id,
                StepStatus.RUNNING,
                self.now,
                disposition=disposition,
                agent_call=dict(call) if call else None,
            )
        )
        if disposition is not None:
            self.set(disposition=disposition, last_call=dict(call) if call else None)
        if self.s.status is ExecutionStatus.PAUSED:
            self.set(phase=Phase.AWAITING_REPLY, wake_at=None, remaining_secs=wait.timeout_secs)
        else:
            self.set(phase=Phase.AWAITING_REPLY, wake_at=until)
        self.log(
            "awaiting_reply", node=self.s.node_id, stepExecutionId=step_id, until=until.isoformat()
        )

    def take_reply(
        self,
        text: str,
        wait: ReplyWait,
        disposition: Disposition | None,
        call: Mapping[str, Any] | None,
    ) -> None:
        """The step ends with the reply; the branch it matches is followed."""
        step_id = self.s.step_id
        assert step_id is not None
        reply = text[:MAX_REPLY]
        outcome = classify(reply, wait)
        self.steps.append(
            StepUpdated(
                step_id,
                StepStatus.COMPLETED,
                self.now,
                completed_at=self.now,
                disposition=disposition,
                agent_call=dict(call) if call else None,
                reply=reply,
                replied_at=self.now,
            )
        )
        if disposition is not None:
            self.set(disposition=disposition, last_call=dict(call) if call else None)
        self.set(last_reply=reply, step_id=None, wake_at=None, remaining_secs=None)
        self.log(
            "replied",
            node=self.s.node_id,
            stepExecutionId=step_id,
            outcome=outcome,
            reply=reply[:160],
        )
        self.follow(outcome, fallbacks=(REPLIED,) if outcome != REPLIED else ())

    def on_dispatch_failed(self, event: DispatchFailed) -> None:
        if self.s.phase is not Phase.DISPATCHED or self.s.step_id != event.step_execution_id:
            return
        self.log(
            "dispatch_failed",
            node=self.s.node_id,
            stepExecutionId=event.step_execution_id,
            reason=event.reason,
        )
        self.complete_step(Disposition.COULD_NOT_CONNECT, {}, StepStatus.FAILED)

    def on_dispatch_held(self, event: DispatchHeld) -> None:
        if self.s.phase is not Phase.DISPATCHED or self.s.step_id != event.step_execution_id:
            return
        self.log("dispatch_held", stepExecutionId=event.step_execution_id, reason=event.reason)
        self.set(phase=Phase.DEFERRED, wake_at=self.now)
        if self.s.status is not ExecutionStatus.PAUSED:
            self.try_dispatch(self.current())

    def on_application(self, event: ApplicationFinished) -> None:
        if self.s.phase is not Phase.APPLYING or self.s.step_id != event.step_execution_id:
            return
        status = StepStatus.COMPLETED if event.ok else StepStatus.FAILED
        self.steps.append(
            StepUpdated(event.step_execution_id, status, self.now, completed_at=self.now)
        )
        self.log("application_finished", ok=event.ok, detail=event.detail)
        self.set(step_id=None, wake_at=None)
        self.follow("success" if event.ok else "failure")

    def on_pause(self) -> None:
        s = self.s
        if s.is_finished:
            raise IllegalTransition(
                f"cannot pause an execution that is {s.status.value}", field="status"
            )
        if s.status is ExecutionStatus.PAUSED:
            return
        remaining: float | None = None
        wake_at = s.wake_at
        if s.phase in _TIMED and s.wake_at is not None:
            remaining = max(0.0, (s.wake_at - self.now).total_seconds())
            wake_at = None
        elif s.phase is Phase.DEFERRED:
            wake_at = None
        self.set(
            status=ExecutionStatus.PAUSED,
            paused_from=s.status,
            remaining_secs=remaining,
            wake_at=wake_at,
        )
        self.log("paused", remainingSecs=remaining)

    def on_resume(self) -> None:
        s = self.s
        if s.is_finished:
            raise IllegalTransition(
                f"cannot resume an execution that is {s.status.value}", field="status"
            )
        if s.status is not ExecutionStatus.PAUSED:
            return
        status = s.paused_from or ExecutionStatus.RUNNING
        self.set(status=status, paused_from=None)
        self.log("resumed", remainingSecs=s.remaining_secs)
        if s.phase in _TIMED:
            self.set(
                wake_at=self.now + timedelta(seconds=s.remaining_secs or 0), remaining_secs=None
            )
        elif s.phase is Phase.DEFERRED:
            self.set(wake_at=self.now)
        elif s.phase is Phase.ENTER and s.node_id is not None:
            self.enter(s.node_id, count_visit=False)

    def on_cancel(self, reason: str) -> None:
        s = self.s
        if s.is_finished:
            raise IllegalTransition(
                f"cannot cancel an execution that is {s.status.value}", field="status"
            )
        if s.step_id is not None:
            self.steps.append(
                StepUpdated(s.step_id, StepStatus.CANCELLED, self.now, completed_at=self.now)
            )
        self.set(
            status=ExecutionStatus.CANCELLED,
            phase=Phase.DONE,
            wake_at=None,
            step_id=None,
            completed_at=self.now,
            reason=reason,
            remaining_secs=None,
        )
        self.log("cancelled", reason=reason)

    # -- walking the graph ----------------------------------------------------------------

    def current(self) -> Node:
        assert self.s.node_id is not None
        return self.ctx.graph.node(self.s.node_id)

    def facts(self) -> Facts:
        s = self.s
        return Facts(
            variables=s.variables,
            metadata=s.metadata,
            disposition=s.disposition.value if s.disposition else None,
            agent_call=s.last_call,
            attempts=s.actions,
            node_attempts=s.visits,
            phone=self.ctx.lead.phone,
            zipcode=self.ctx.lead.zipcode,
            state=self.ctx.lead.state,
            last_reply=s.last_reply,
        )

    def enter(self, node_id: str, *, count_visit: bool = True) -> None:
        self.entries += 1
        if self.entries > MAX_ENTRIES_PER_DECISION:
            self.fail(f"the graph loops through {node_id!r} without waiting")
            return
        node = self.ctx.graph.node(node_id)
        visits = dict(self.s.visits)
        if count_visit or node_id not in visits:
            visits[node_id] = visits.get(node_id, 0) + 1
        self.set(
            node_id=node_id,
            visits=visits,
            phase=Phase.ENTER,
            wake_at=None,
            step_id=None,
            retries={},
        )
        config = node.config
        if isinstance(config, ActionConfig):
            self.enter_action(node, config)
        elif isinstance(config, TimeConfig):
            until = self.time_target(config)
            self.set(phase=Phase.DELAY, wake_at=until)
            self.log("waiting", node=node.id, until=until.isoformat())
        elif isinstance(config, ConditionalConfig):
            outcome = self.branch(config)
            self.log("branched", node=node.id, outcome=outcome)
            self.follow(outcome)
        elif isinstance(config, ApplicationConfig):
            self.enter_application(node, config)
        elif isinstance(config, EndConfig):
            self.finish(ExecutionStatus.COMPLETED, config.outcome.value)
        elif isinstance(config, ReplyConfig):
            self.enter_reply_wait(node, config.wait)

    def enter_reply_wait(self, node: Node, wait: ReplyWait) -> None:
        """A ``WAIT_FOR_REPLY`` node: a step of its own that holds until the contact texts."""
        step_id = self.record_opened(node, Channel.TEXT, None, self.now)
        self.steps.append(StepUpdated(step_id, StepStatus.RUNNING, self.now, started_at=self.now))
        self.set(step_id=step_id)
        self.await_reply(wait, None, None)

    def enter_action(self, node: Node, config: ActionConfig) -> None:
        due = self.now + timedelta(seconds=config.delay_secs)
        step_id = self.open_step(node, config, due)
        if config.guard is not None and not all_hold(config.guard, self.facts()):
            self.steps.append(
                StepUpdated(step_id, StepStatus.SKIPPED, self.now, completed_at=self.now)
            )
            self.log("skipped", node=node.id, stepExecutionId=step_id, why="conditions do not hold")
            self.set(step_id=None)
            self.follow(SKIPPED)
            return
        if config.delay_secs > 0:
            self.set(phase=Phase.DELAY, wake_at=due)
            self.log("scheduled", node=node.id, stepExecutionId=step_id, at=due.isoformat())
            return
        self.log("scheduled", node=node.id, stepExecutionId=step_id, at=due.isoformat())
        self.try_dispatch(node)

    def open_step(self, node: Node, config: ActionConfig, due: datetime) -> str:
        """A step execution for this visit of an ACTION node, due at ``due``."""
        step_id = self.record_opened(node, config.channel, config, due)
        self.set(step_id=step_id, dispatch_attempt=0)
        return step_id

    def record_opened(
        self, node: Node, channel: Channel | None, config: ActionConfig | None, at: datetime
    ) -> str:
        """Record the step execution of this visit of ``node``, due at ``at``: an ACTION's
        (``config`` gives its fields), a reply wait's or an application's (no agent)."""
        visit = self.s.visits[node.id]
        step_id = step_execution_id(self.s.execution_id, node.id, visit)
        self.steps.append(
            StepOpened(
                id=step_id,
                node_id=node.id,
                visit=visit,
                kind=node.kind,
                channel=channel,
                order=config.step_order if config else 0,
                delay_secs=config.delay_secs if config else 0,
                agent_id=config.agent_id if config else None,
                leave_voicemail=config.leave_voicemail if config else False,
                needs_tcpa=config.needs_tcpa if config else False,
                finish_on=config.finish_on if config else (),
                scheduled_at=at,
            )
        )
        return step_id

    def try_dispatch(self, node: Node) -> None:
        config = node.config
        assert isinstance(config, ActionConfig)
        assert self.s.step_id is not None
        if self.s.status is ExecutionStatus.PAUSED:
            return
        answer = self.ctx.gate.check(self.now, config.channel, config.needs_tcpa)
        step_id = self.s.step_id
        if answer.suppressed:
            self.on_suppressed(node, answer.reason)
            return
        if answer.allowed:
            attempt = self.s.dispatch_attempt + 1
            per_agent = dict(self.s.agent_dispatches)
            per_agent[config.agent_id] = per_agent.get(config.agent_id, 0) + 1
            key = idempotency_key(self.s.execution_id, step_id, attempt)
            message = (
                render(
                    config.message,
                    self.s.variables,
                    self.s.metadata,
                    {LAST_REPLY: self.s.last_reply},
                )
                if config.message is not None
                else None
            )
            self.dispatches.append(
                Dispatch(
                    step_execution_id=step_id,
                    node_id=node.id,
                    idempotency_key=key,
                    agent_id=config.agent_id,
                    channel=config.channel,
                    phone=self.ctx.lead.phone,
                    message=message,
                    leave_voicemail=config.leave_voicemail,
                    variables=dict(self.s.variables),
                    sequence=per_agent[config.agent_id],
                    from_phone_number=config.from_phone_number,
                )
            )
            self.steps.append(
                StepUpdated(step_id, StepStatus.RUNNING, self.now, started_at=self.now)
            )
            self.set(
                phase=Phase.DISPATCHED,
                dispatch_attempt=attempt,
                actions=self.s.actions + 1,
                agent_dispatches=per_agent,
                wake_at=self.now + self.ctx.report_timeout,
            )
            self.log("dispatched", node=node.id, stepExecutionId=step_id, idempotencyKey=key)
            return
        if answer.at is None:
            self.log(
                "deferred",
                node=node.id,
                stepExecutionId=step_id,
                until=None,
                reason=answer.reason,
                rules=list(answer.rules),
                zones=list(answer.zones),
            )
            self.steps.append(
                StepUpdated(step_id, StepStatus.FAILED, self.now, completed_at=self.now)
            )
            self.set(step_id=None)
            self.fail(answer.reason)
            return
        self.steps.append(
            StepUpdated(step_id, StepStatus.PENDING, self.now, next_allowed_at=answer.at)
        )
        self.set(phase=Phase.DEFERRED, wake_at=answer.at)
        self.log(
            "deferred",
            node=node.id,
            stepExecutionId=step_id,
            until=answer.at.isoformat(),
            reason=answer.reason,
            rules=list(answer.rules),  # the rules that set ``until``
            closedNow=list(answer.closed_now),
            zones=list(answer.zones),
        )

    def on_suppressed(self, node: Node, reason: str) -> None:
        """A suppressed channel is never dispatched: every channel -> cancel, one -> skip."""
        if all(channel in self.ctx.gate.suppressed for channel in Channel):
            self.on_cancel(reason)
            return
        assert self.s.step_id is not None
        self.steps.append(
            StepUpdated(self.s.step_id, StepStatus.SKIPPED, self.now, completed_at=self.now)
        )
        self.log("suppressed", node=node.id, stepExecutionId=self.s.step_id, reason=reason)
        self.set(step_id=None)
        self.follow(SKIPPED)

    def complete_step(
        self,
        disposition: Disposition,
        call: Mapping[str, Any],
        status: StepStatus,
        *,
        callback_at: datetime | None = None,
    ) -> None:
        assert self.s.step_id is not None
        self.steps.append(
            StepUpdated(
                self.s.step_id,
                status,
                self.now,
                completed_at=self.now,
                disposition=disposition,
                agent_call=dict(call) if call else None,
            )
        )
        self.set(
            disposition=disposition,
            last_call=dict(call) if call else None,
            step_id=None,
            wake_at=None,
        )
        if self.retry(disposition, callback_at):
            return
        self.follow(disposition.value)

    def retry(self, disposition: Disposition, callback_at: datetime | None) -> bool:
        """The step's retry policy for this outcome: a new attempt (a new step execution, its
        own idempotency key) at the time the rule gives. The gate still decides when it may go
        out: outside the contact's window it is deferred to the next opening, never dropped."""
        node = self.current()
        config = node.config
        if not isinstance(config, ActionConfig):
            return False
        rule = next((r for r in config.retries if r.disposition == disposition.value), None)
        if rule is None:
            return False
        done = self.s.retries.get(rule.disposition, 0)
        if done >= rule.max_retries:
            self.log("retries_exhausted", node=node.id, disposition=disposition.value, retries=done)
            return False
        at, why = self.retry_at(rule, callback_at)
        visits = dict(self.s.visits)
        visits[node.id] = visits.get(node.id, 0) + 1
        self.set(visits=visits, retries={**self.s.retries, rule.disposition: done + 1})
        step_id = self.open_step(node, config, at)
        if self.s.status is ExecutionStatus.PAUSED:
            remaining = max(0.0, (at - self.now).total_seconds())
            self.set(phase=Phase.DELAY, wake_at=None, remaining_secs=remaining)
        else:
            self.set(phase=Phase.DELAY, wake_at=at)
        self.log(
            "retry_scheduled",
            node=node.id,
            stepExecutionId=step_id,
            disposition=disposition.value,
            retry=done + 1,
            maxRetries=rule.max_retries,
            at=at.isoformat(),
            why=why,
        )
        return True

    def retry_at(self, rule: RetryRule, callback_at: datetime | None) -> tuple[datetime, str]:
        if rule.use_callback_at and callback_at is not None:
            named = callback_at.isoformat()
            if callback_at <= self.now:
                return self.now, f"the contact asked for a call back at {named}: that is past"
            if callback_at - self.now > MAX_CALLBACK_AHEAD:
                latest = self.now + MAX_CALLBACK_AHEAD
                return latest, f"the contact asked for a call back at {named}: held to 90 days"
            return callback_at, f"the contact asked for a call back at {named}"
        at = self.now + timedelta(seconds=rule.delay_secs)
        return at, f"{rule.disposition}: again after {rule.delay_secs} s"

    def enter_application(self, node: Node, config: ApplicationConfig) -> None:
        step_id = self.record_opened(node, None, None, self.now)
        params = dict(config.params)
        if config.action == "set_variable":
            self.set(variables={**self.s.variables, str(params["key"]): params.get("value")})
        elif config.action == "merge_metadata":
            self.set(metadata={**self.s.metadata, **dict(params.get("metadata", {}))})
        elif config.action == "suppress":
            self.effects.append(
                Effect(step_id, "suppress", {"phone": self.ctx.lead.phone, **params})
            )
        else:
            context = {
                "executionId": self.s.execution_id,
                "nodeId": node.id,
                "phoneNumber": self.ctx.lead.phone,
                "variables": dict(self.s.variables),
                "metadata": dict(self.s.metadata),
                "disposition": self.s.disposition.value if self.s.disposition else None,
            }
            self.effects.append(Effect(step_id, config.action, {**params, "context": context}))
            self.steps.append(
                StepUpdated(step_id, StepStatus.RUNNING, self.now, started_at=self.now)
            )
            self.set(
                step_id=step_id,
                phase=Phase.APPLYING,
                wake_at=self.now + self.ctx.application_timeout,
            )
            self.log("application_started", node=node.id, action=config.action)
            return
        self.steps.append(
            StepUpdated(
                step_id, StepStatus.COMPLETED, self.now, started_at=self.now, completed_at=self.now
            )
        )
        self.log("application_finished", node=node.id, action=config.action, ok=True)
        self.follow("success")

    def branch(self, config: ConditionalConfig) -> str:
        if config.branch_field is not None:
            value = lookup(self.facts(), config.branch_field)
            texts = [str(value) if isinstance(value, (str, int, float)) else ""]
            if config.branch_field == CALL_STATUS and self.s.disposition is not None:
                # A branch naming the disposition itself (NO_ANSWER) wins over its group (DNP).
                texts.insert(0, self.s.disposition.value)
            for text in texts:
                for label in config.branches:
                    if text and label.upper() == text.upper():
                        return label
            return "default"
        if config.conditions is None:
            return "true"
        return "true" if all_hold(config.conditions, self.facts()) else "false"

    def time_target(self, config: TimeConfig) -> datetime:
        if config.delay_secs is not None:
            return self.now + timedelta(seconds=config.delay_secs)
        zone = ZoneInfo(self.ctx.timezone)
        if config.until_minute_of_day is not None:
            today = self.now.astimezone(zone).date()
            for offset in range(3):
                at = local_to_utc(today + timedelta(days=offset), config.until_minute_of_day, zone)
                if at > self.now:
                    return at
        schedule = [c for c in self.ctx.gate.constraints if c.rule == "workflowSchedule"]
        if schedule:
            gate = Gate(constraints=tuple(schedule), horizon=self.ctx.gate.horizon)
            answer = gate.check(self.now, Channel.CALL, needs_tcpa=False)
            if answer.at is not None:
                return answer.at
        return self.now

    def follow(self, outcome: str, *, fallbacks: tuple[str, ...] = ()) -> None:
        """Take the edge ``outcome`` matches; with ``fallbacks``, an edge labelled with the
        outcome or else one of them, in order, before an unlabelled one."""
        node_id = self.s.node_id
        assert node_id is not None
        graph = self.ctx.graph
        target = (
            graph.next_node_preferring(node_id, (outcome, *fallbacks))
            if fallbacks
            else graph.next_node(node_id, outcome)
        )
        if target is None:
            self.log("no_edge", node=node_id, outcome=outcome)
            self.finish(ExecutionStatus.COMPLETED, "completed")
            return
        self.log("transition", source=node_id, target=target, outcome=outcome)
        if (
            self.s.status is ExecutionStatus.PAUSED
            and self.ctx.graph.node(target).kind is not NodeKind.END
        ):
            visits = dict(self.s.visits)
            visits[target] = visits.get(target, 0) + 1
            self.set(node_id=target, phase=Phase.ENTER, wake_at=None, visits=visits)
            return
        self.enter(target)

    def finish(self, status: ExecutionStatus, outcome: str) -> None:
        self.set(
            status=status,
            phase=Phase.DONE,
            wake_at=None,
            completed_at=self.now,
            outcome=outcome,
            step_id=None,
            paused_from=None,
            remaining_secs=None,
        )
        self.log(
            "finished",
            status=status.value,
            outcome=outcome,
            disposition=self.s.disposition.value if self.s.disposition else None,
        )

    def fail(self, reason: str) -> None:
        self.set(
            status=ExecutionStatus.FAILED,
            phase=Phase.DONE,
            wake_at=None,
            completed_at=self.now,
            reason=reason,
            step_id=None,
        )
        self.log("failed", reason=reason)
