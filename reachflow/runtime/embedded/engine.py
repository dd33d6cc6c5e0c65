"""The embedded engine: feeds events to ``decide`` in batches and persists every decision.

One ``tick`` runs the stages until none has work, each stage one short transaction per batch
with a fixed number of statements, whatever the batch size:

1. *inbox*: claim due events (agent results, held or failed dispatches), feed them to
   ``decide`` per execution, write the decisions;
2. *due*: claim executions whose timer is due, in ``priorityDate`` then due-time order, feed
   them ``WakeUp``, write the decisions;
3. *dispatch* (``dispatcher.Dispatcher``): record the results of finished agent calls, then
   claim outbox commands one by one under a lease and a fencing token, re-check the gate,
   count the attempt and commit it as in flight, and only then hand the calls to a bounded
   concurrent pool; leases of calls still in flight are renewed.

A batch's decisions are made in memory first (``decide`` is pure), then written together; an
execution whose ``decide`` raises is failed in the same batch, without a savepoint per row.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy.engine import Connection

from reachflow.agents.http_action import HttpAction
from reachflow.agents.port import Agent
from reachflow.agents.subscribers import SubscriberClient
from reachflow.domain.compile import compile_definition
from reachflow.domain.compliance.reactions import ContactReaction, react_to_report
from reachflow.domain.decider import (
    AgentReported,
    ApplicationFinished,
    Cancelled,
    Context,
    Decision,
    DispatchFailed,
    DispatchHeld,
    Event,
    History,
    Lead,
    Phase,
    ReplyReceived,
    WakeUp,
    decide,
    reply_wait_of,
)
from reachflow.domain.enums import Channel, Disposition, ExecutionStatus
from reachflow.domain.events import DeliveryPolicy
from reachflow.domain.graph import Graph
from reachflow.domain.replies import MAX_REPLY
from reachflow.runtime.clock import Clock, VirtualClock
from reachflow.runtime.compliance import ContactCompliance, ContactFacts, contact_facts
from reachflow.runtime.embedded.dispatcher import Dispatcher, DispatchLimits, EffectHandler
from reachflow.runtime.embedded.webhooks import WebhookDeliverer, WebhookLimits
from reachflow.runtime.events import CreatedExecution, EventPublisher
from reachflow.store.contacts import ConsentGrant, ContactRecords
from reachflow.store.executions import ExecutionFilter, NewExecution, broken
from reachflow.store.queue import NewEvent
from reachflow.store.records import (
    ExecutionRecord,
    ExecutionRef,
    InboxItem,
    OutboxItem,
    VersionRecord,
)
from reachflow.store.store import Store

log = logging.getLogger(__name__)

#: Statuses an execution enters that take back its pending dispatches.
_STOPS_DISPATCH = frozenset({ExecutionStatus.PAUSED, ExecutionStatus.CANCELLED})
#: Statuses in which an execution may be waiting for a contact's reply.
_WAITING = (ExecutionStatus.RUNNING.value, ExecutionStatus.PAUSED.value)


@dataclass(frozen=True, slots=True)
class EngineConfig:
    batch_size: int = 200
    #: The batch while other threads of the process (API requests) have lately waited to write
    #: to SQLite: short transactions keep their wait short; full batches when the worker is
    #: alone.
    contended_batch_size: int = 25
    contended_for: timedelta = timedelta(seconds=2)
    lease: timedelta = timedelta(seconds=60)
    report_timeout: timedelta = timedelta(hours=2)
    max_dispatch_attempts: int = 5
    #: Dispatches per second per organization (0: no bound).
    org_dispatches_per_second: float = 0.0
    #: Transient failures in a row that open an agent's circuit breaker, and its first
    #: cooldown (doubling while the agent keeps failing).
    breaker_threshold: int = 5
    breaker_cooldown: timedelta = timedelta(seconds=30)
    #: This server's address as agents reach it: their result callbacks go here.
    callback_base: str = "http://127.0.0.1:8000"
    limits: DispatchLimits = field(default_factory=DispatchLimits)
    #: Event webhooks: bounds of deliveries in flight, and how failing ones back off.
    webhooks: WebhookLimits = field(default_factory=WebhookLimits)
    delivery_policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    #: How long a subscriber may take to answer one delivery attempt.
    webhook_timeout: timedelta = timedelta(seconds=10)


@dataclass(slots=True)
class EngineStats:
    """Counters for /metrics and the benchmark; lateness in seconds of each claimed timer."""

    ticks: int = 0
    decisions: int = 0
    dispatches: int = 0
    #: Calls re-sent under the same key after their worker's lease lapsed.
    resent: int = 0
    #: Results discarded because the row had been taken over (a stale fencing token).
    stale_results: int = 0
    held_at_dispatch: int = 0
    lateness: list[float] = field(default_factory=list)

    def record_lateness(self, seconds: float) -> None:
        if len(self.lateness) < 1_000_000:
            self.lateness.append(seconds)


class Engine:
    def __init__(
        self,
        store: Store,
        agents: Mapping[str, Agent],
        clock: Clock,
        config: EngineConfig | None = None,
        *,
        compliance: ContactCompliance,
        http: HttpAction | None = None,
        effect_handlers: Mapping[str, EffectHandler] | None = None,
        subscribers: SubscriberClient | None = None,
    ) -> None:
        self.store = store
        self.agents = dict(agents)
        self.clock = clock
        self.config = config or EngineConfig()
        self.compliance = compliance
        self.stats = EngineStats()
        self._versions: dict[str, tuple[VersionRecord, Graph]] = {}
        self._versions_lock = threading.Lock()
        self.wakeup = threading.Event()
        self.dispatcher = Dispatcher(
            self,
            http=http or HttpAction(),
            effect_handlers={"suppress": self._suppress_effect, **(effect_handlers or {})},
        )
        #: Outbound events: recorded with the changes that raise them, delivered by the
        #: webhook stage.
        self.events = EventPublisher(store)
        store.executions.inserted_hooks.append(self._executions_created)
        self.webhooks = WebhookDeliverer(
            self,
            subscribers
            or SubscriberClient(timeout_seconds=self.config.webhook_timeout.total_seconds()),
            self.config.delivery_policy,
            self.config.webhooks,
        )

    # -- deciding ---------------------------------------------------------------------------

    def version(self, conn: Connection, version_id: str) -> tuple[VersionRecord, Graph]:
        with self._versions_lock:
            cached = self._versions.get(version_id)
        if cached is not None:
            return cached
        version = self.store.workflows.get_version(conn, version_id)
        if version is None:
            raise LookupError(f"workflow version {version_id} is missing")
        entry = (version, compile_definition(version.definition))
        with self._versions_lock:
            self._versions[version_id] = entry
        return entry

    def forget_version(self, version_id: str) -> None:
        """Drop a cached version after a draft's version was rewritten in place."""
        with self._versions_lock:
            self._versions.pop(version_id, None)
        self.compliance.forget_version(version_id)

    def context(
        self,
        conn: Connection,
        record: ExecutionRecord,
        now: datetime,
        *,
        excluding_key: str | None = None,
    ) -> Context:
        """Everything ``decide`` may know, read now: the graph, and the gate for this contact."""
        contact = (record.organization_id, record.primary_phone)
        records = self.compliance.records_of(conn, [contact], now)[contact]
        return self.context_from(
            conn, record, contact_facts(records, excluding_key=excluding_key), now
        )

    def context_from(
        self,
        conn: Connection,
        record: ExecutionRecord | ExecutionRef,
        facts: ContactFacts,
        now: datetime,
    ) -> Context:
        version, graph = self.version(conn, record.version_id)
        lead = Lead(phone=record.primary_phone, zipcode=record.zipcode, state=record.state)
        return Context(
            graph=graph,
            gate=self.compliance.gate(version, lead, facts, now),
            lead=lead,
            timezone=version.timezone,
            report_timeout=self.config.report_timeout,
        )

    def apply(
        self, conn: Connection, record: ExecutionRecord, event: Event, now: datetime
    ) -> Decision:
        """Decide and persist one event in the caller's transaction (the API's commands).
        Raises what ``decide`` raises."""
        decision = decide(self.context(conn, record, now), record.engine, event, now)
        [(_, decision)] = self._withdraw_stopped(conn, [(record, decision)], now)
        self.store.executions.save_decision(conn, record, decision, now)
        self.events.publish_decisions(conn, [(record, decision)], now)
        self._decided(1, bool(decision.dispatches or decision.effects))
        return decision

    def decide_batch(
        self,
        conn: Connection,
        work: Sequence[tuple[ExecutionRecord, Sequence[Event]]],
        now: datetime,
    ) -> list[tuple[ExecutionRecord, Decision]]:
        """Decide every execution's events in memory, then write all the decisions in a fixed
        number of statements. An execution whose ``decide`` raises is failed with the reason;
        the rest of the batch goes on."""
        contacts = {(r.organization_id, r.primary_phone) for r, _ in work}
        records = self.compliance.records_of(conn, contacts, now)
        decided: list[tuple[ExecutionRecord, Decision]] = []
        outgoing = False
        for record, events in work:
            facts = contact_facts(records.get(contact_of(record), ContactRecords()))
            try:
                context = self.context_from(conn, record, facts, now)
                state = record.engine
                decision: Decision | None = None
                for event in events:
                    step = decide(context, state, event, now)
                    decision = step if decision is None else _chain(decision, step)
                    state = step.state
            except Exception as exc:
                log.exception("execution %s failed to advance", record.id)
                decision = broken(record, f"engine error: {exc}", now)
            if decision is None:
                continue
            outgoing = outgoing or bool(decision.dispatches or decision.effects)
            decided.append((record, decision))
        decided = self._withdraw_stopped(conn, decided, now)
        self.store.executions.save_decisions(conn, decided, now)
        self.events.publish_decisions(conn, decided, now)
        self._decided(len(decided), outgoing)
        return decided

    def _withdraw_stopped(
        self,
        conn: Connection,
        decided: list[tuple[ExecutionRecord, Decision]],
        now: datetime,
    ) -> list[tuple[ExecutionRecord, Decision]]:
        """A pause or cancel is final for dispatch: the executions' pending dispatches are
        taken back in the same transaction (a paused one gets ``dispatch_held`` and re-decides
        on resume), under their contacts' locks, so a claimer that took them concurrently
        re-reads the status after this commits and holds them. A dispatch already handed to
        an agent is recorded in the execution's history as ``dispatch_in_flight``."""
        stopping = [
            (record, decision)
            for record, decision in decided
            if decision.state.status in _STOPS_DISPATCH
            and decision.state.status is not record.engine.status
        ]
        if not stopping:
            return decided
        self.store.contacts.lock_contacts(conn, {contact_of(r) for r, _ in stopping})
        by_status: dict[ExecutionStatus, list[str]] = {}
        for record, decision in stopping:
            by_status.setdefault(decision.state.status, []).append(record.id)
        flying: dict[str, list[dict[str, str]]] = {}
        held: list[NewEvent] = []
        organization = {r.id: r.organization_id for r, _ in stopping}
        for status, ids in by_status.items():
            reason = f"withdrawn: execution {status.value.lower()}"
            withdrawn = self.store.queue.withdraw_dispatches(conn, ids, reason, now)
            if status is ExecutionStatus.PAUSED:
                held += [
                    NewEvent(
                        organization[w.execution_id],
                        w.execution_id,
                        "dispatch_held",
                        {"stepExecutionId": w.step_execution_id, "reason": reason},
                        f"withdrawn:{w.id}:{w.fence}",
                        now,
                    )
                    for w in withdrawn.taken
                ]
            for w in withdrawn.in_flight:
                flying.setdefault(w.execution_id, []).append(
                    {"stepExecutionId": w.step_execution_id, "idempotencyKey": w.idempotency_key}
                )
        self.store.queue.put_events(conn, held, now)
        if not flying:
            return decided
        return [
            (
                record,
                replace(
                    decision,
                    history=decision.history
                    + tuple(History("dispatch_in_flight", now, d) for d in flying[record.id]),
                ),
            )
            if record.id in flying
            else (record, decision)
            for record, decision in decided
        ]

    def batch_size(self) -> int:
        if self.store.db.writers_contended(self.config.contended_for.total_seconds()):
            return min(self.config.batch_size, self.config.contended_batch_size)
        return self.config.batch_size

    def _decided(self, count: int, outgoing: bool) -> None:
        self.stats.decisions += count
        if outgoing:
            self.wakeup.set()

    # -- the stages -------------------------------------------------------------------------

    def tick(self, stop: threading.Event | None = None) -> int:
        """Do all work due now, or until ``stop`` is set; returns how many items were handled.
        Agent calls started here may still be in flight when it returns
        (``dispatcher.wait_idle`` waits for them)."""
        self.stats.ticks += 1
        done = 0
        while stop is None or not stop.is_set():
            n = (
                self.feed_inbox()
                + self.advance_due()
                + self.dispatcher.record_results()
                + self.dispatcher.claim()
                + self.webhooks.record_results()
                + self.webhooks.claim()
            )
            self.dispatcher.renew_leases()
            done += n
            if n == 0:
                break
        return done

    def feed_inbox(self) -> int:
        now = self.clock.now()
        db = self.store.db
        with db.begin() as conn:
            items = self.store.queue.claim_inbox(
                conn, now, self.batch_size(), skip_locked=db.supports_skip_locked
            )
            if not items:
                return 0
            by_execution: dict[str, list[InboxItem]] = {}
            for item in items:
                by_execution.setdefault(item.execution_id, []).append(item)
            records = self.store.executions.get_many(conn, list(by_execution), lock=True)
            work: list[tuple[ExecutionRecord, list[Event]]] = []
            for execution_id, fed in by_execution.items():
                record = records.get(execution_id)
                events = [e for e in (inbox_event(i) for i in fed) if e is not None]
                if record is not None and events:
                    work.append((record, events))
            self.decide_batch(conn, work, now)
            self._react_to(conn, items, records, now)
        return len(items)

    def _react_to(
        self,
        conn: Connection,
        items: Sequence[InboxItem],
        records: Mapping[str, ExecutionRecord],
        now: datetime,
    ) -> None:
        """What agents' reports mean for their contacts: consents granted in one statement;
        opt-outs (DNC, STOP: rare) one by one, as they may cancel other executions."""
        grants: list[ConsentGrant] = []
        for item in items:
            record = records.get(item.execution_id)
            if record is None or item.kind != "agent_reported":
                continue
            reaction = react_to_report(
                Channel(item.payload.get("channel", Channel.CALL.value)),
                Disposition(item.payload["disposition"]),
                item.payload.get("reply"),
                stop_revokes_all=self.compliance.stop_revokes_all,
            )
            if reaction is None:
                continue
            if reaction.suppress or reaction.revoke_consent:
                self._grant(conn, grants, now)  # in order: grants first
                grants = []
                self.react(
                    conn,
                    item.organization_id,
                    record.primary_phone,
                    reaction,
                    now,
                    execution_id=record.id,
                )
                continue
            grants.extend(
                ConsentGrant(
                    consent_id=str(uuid.uuid4()),
                    organization_id=record.organization_id,
                    phone=record.primary_phone,
                    channel=channel,
                    source=reaction.source,
                    granted_at=now,
                    execution_id=record.id,
                )
                for channel in sorted(reaction.consent)
            )
        self._grant(conn, grants, now)

    def _grant(self, conn: Connection, grants: Sequence[ConsentGrant], now: datetime) -> None:
        """Record consents (a channel already consented is left alone) and tell subscribers
        (``contact.consented``, also for a repeated grant)."""
        if not grants:
            return
        self.store.contacts.grant_consents(conn, grants)
        self.events.contacts_consented(
            conn,
            [
                (g.organization_id, g.phone, g.channel.value, g.source, g.execution_id)
                for g in grants
            ],
            now,
        )

    def advance_due(self) -> int:
        now = self.clock.now()
        db = self.store.db
        with db.begin() as conn:
            due = self.store.executions.claim_due(
                conn, now, self.batch_size(), skip_locked=db.supports_skip_locked
            )
            if not due:
                return 0
            for record in due:
                if record.due_at is not None:
                    self.stats.record_lateness((now - record.due_at).total_seconds())
            self.decide_batch(conn, [(record, (WakeUp(),)) for record in due], now)
        return len(due)

    def perform_outbox(self) -> int:
        """Claim due commands, perform them and record their results, waiting for the calls
        (tests and tools; the worker's ``tick`` does not wait)."""
        claimed = self.dispatcher.claim()
        self.dispatcher.wait_idle()
        self.dispatcher.record_results()
        return claimed

    # -- contacts ---------------------------------------------------------------------------

    def react(
        self,
        conn: Connection,
        organization_id: str,
        phone: str,
        reaction: ContactReaction,
        now: datetime,
        *,
        execution_id: str | None = None,
    ) -> int:
        """Apply a contact's opt-out or consent; a number suppressed on every channel has its
        active executions cancelled with the reason. Returns how many were cancelled."""
        # Creating an execution holds its contact's lock: the cancel below sees every
        # execution of the number created before this suppression.
        self.store.contacts.lock_contacts(conn, [(organization_id, phone)])
        changes: list[tuple[str, str]] = []
        every = self.compliance.react(
            conn, organization_id, phone, reaction, now, execution_id=execution_id, changes=changes
        )
        self._publish_contact_changes(
            conn, organization_id, phone, reaction, changes, now, execution_id
        )
        if not every:
            return 0
        return self.cancel_where(
            conn,
            ExecutionFilter(organization_id=organization_id, phone=phone),
            f"number suppressed: {reaction.reason}",
            now,
        )

    def _executions_created(
        self, conn: Connection, rows: Sequence[NewExecution], now: datetime
    ) -> None:
        self.events.executions_created(
            conn,
            [
                CreatedExecution(
                    id=r.id,
                    organization_id=r.organization_id,
                    workflow_id=r.workflow_id,
                    customer_lead_id=r.customer_lead_id,
                    phone=r.primary_phone,
                    status=r.engine.status.value,
                    start_at=r.start_at,
                    metadata=r.metadata,
                )
                for r in rows
            ],
            now,
        )

    def _publish_contact_changes(
        self,
        conn: Connection,
        organization_id: str,
        phone: str,
        reaction: ContactReaction,
        changes: Sequence[tuple[str, str]],
        now: datetime,
        execution_id: str | None,
    ) -> None:
        suppressed = [channel for kind, channel in changes if kind == "suppressed"]
        if suppressed:
            self.events.contact_suppressed(
                conn,
                organization_id,
                phone,
                suppressed,
                reaction.reason,
                reaction.source,
                now,
                execution_id=execution_id,
            )
        consented = [
            (organization_id, phone, channel, reaction.source, execution_id)
            for kind, channel in changes
            if kind == "consented"
        ]
        if consented:
            self.events.contacts_consented(conn, consented, now)

    def route_reply(
        self, conn: Connection, organization_id: str, phone: str, text: str, now: datetime
    ) -> int:
        """Hand a contact's text to each of the number's executions that waits for a reply
        (an inbox event each, fed to ``decide`` as ``ReplyReceived``). Returns how many."""
        records = self.store.executions.list_executions(
            conn,
            ExecutionFilter(organization_id=organization_id, phone=phone, statuses=_WAITING),
            limit=1000,
        )
        events = []
        for record in records:
            state = record.engine
            if state.phase not in (Phase.AWAITING_REPLY, Phase.DISPATCHED) or not state.node_id:
                continue
            _, graph = self.version(conn, record.version_id)
            node = graph.nodes.get(state.node_id)
            if node is None or reply_wait_of(node) is None:
                continue
            events.append(
                NewEvent(
                    organization_id,
                    record.id,
                    "reply_received",
                    {"text": text[:MAX_REPLY], "stepExecutionId": state.step_id},
                    f"reply:{record.id}:{uuid.uuid4().hex}",
                    now,
                )
            )
        self.store.queue.put_events(conn, events, now)
        return len(events)

    def cancel_where(
        self, conn: Connection, flt: ExecutionFilter, reason: str, now: datetime
    ) -> int:
        """Cancel every active execution the filter matches, in the caller's transaction."""
        records = self.store.executions.lock_active(conn, flt)
        self.decide_batch(conn, [(record, (Cancelled(reason),)) for record in records], now)
        return len(records)

    def _suppress_effect(self, conn: Connection, item: OutboxItem, now: datetime) -> bool:
        """The APPLICATION ``suppress`` action: put the execution's number on the list."""
        params = dict(item.payload.get("params") or {})
        channel = str(params.get("channel") or "ALL").upper()
        channels = frozenset(Channel) if channel == "ALL" else frozenset({Channel(channel)})
        reaction = ContactReaction(
            suppress=channels,
            revoke_consent=channels,
            reason=str(params.get("reason") or "suppressed by a workflow step"),
            source="workflow",
        )
        self.react(
            conn,
            item.organization_id,
            str(params["phone"]),
            reaction,
            now,
            execution_id=item.execution_id,
        )
        return True

    # -- driving ----------------------------------------------------------------------------

    def next_work_at(self) -> datetime | None:
        with self.store.db.read() as conn:
            candidates = [
                self.store.executions.next_due_at(conn),
                self.store.queue.next_inbox_at(conn),
                self.store.queue.next_outbox_at(
                    conn, exclude_agents=self.dispatcher.blocked(self.clock.now())
                ),
                self.dispatcher.next_capacity_at(self.clock.now()),
                self.store.webhooks.next_at(conn, exclude=self.webhooks.saturated()),
            ]
        present = [c for c in candidates if c is not None]
        return min(present) if present else None

    def run_until_idle(
        self, clock: VirtualClock, *, max_rounds: int = 1_000_000, until: datetime | None = None
    ) -> int:
        """Under a virtual clock: do all due work (waiting for the agent calls it starts),
        jump to the next due instant, repeat."""
        handled = 0
        for _ in range(max_rounds):
            handled += self.tick()
            if self.busy:
                self.wait_idle()
                continue
            upcoming = self.next_work_at()
            if upcoming is None or (until is not None and upcoming > until):
                if until is not None:
                    clock.advance_to(until)
                    handled += self._settle()
                return handled
            clock.advance_to(upcoming)
        raise RuntimeError("run_until_idle did not settle")

    def _settle(self) -> int:
        handled = self.tick()
        while self.busy:
            self.wait_idle()
            handled += self.tick()
        return handled

    @property
    def busy(self) -> bool:
        """Agent calls or webhook attempts are running, or their results wait to be recorded."""
        return self.dispatcher.busy or self.webhooks.busy

    def wait_idle(self) -> None:
        self.dispatcher.wait_idle()
        self.webhooks.wait_idle()

    def close(self) -> None:
        self.dispatcher.close()
        self.webhooks.close()


def contact_of(record: ExecutionRecord) -> tuple[str, str]:
    return (record.organization_id, record.primary_phone)


def _chain(first: Decision, then: Decision) -> Decision:
    """Two decisions on one execution in one batch, as one: the later state, everything else
    in order."""
    return Decision(
        state=then.state,
        steps=first.steps + then.steps,
        dispatches=first.dispatches + then.dispatches,
        effects=first.effects + then.effects,
        history=first.history + then.history,
    )


def inbox_event(item: InboxItem) -> Event | None:
    step_id = item.payload.get("stepExecutionId", "")
    if item.kind == "agent_reported":
        callback_at = item.payload.get("callbackAt")
        return AgentReported(
            step_execution_id=step_id,
            disposition=Disposition(item.payload["disposition"]),
            call=item.payload.get("call") or {},
            reply=item.payload.get("reply") or None,
            callback_at=datetime.fromisoformat(callback_at) if callback_at else None,
        )
    if item.kind == "dispatch_failed":
        return DispatchFailed(step_id, item.payload.get("reason", "dispatch failed"))
    if item.kind == "dispatch_held":
        return DispatchHeld(step_id, item.payload.get("reason", "held at dispatch"))
    if item.kind == "application_finished":
        return ApplicationFinished(
            step_id, bool(item.payload.get("ok")), item.payload.get("detail", "")
        )
    if item.kind == "reply_received":
        return ReplyReceived(str(item.payload.get("text", "")))
    return None
