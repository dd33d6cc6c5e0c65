"""The embedded engine: feeds events to ``decide`` and persists every decision atomically.

One ``tick`` does three kinds of work, each claimed in batches per transaction:

1. inbox events that are due (agent results, arriving at the call's end);
2. executions whose timer is due (``due_at`` index; ``FOR UPDATE SKIP LOCKED`` on PostgreSQL);
3. outbox commands (dispatches), taken under a lease and performed outside any transaction,
   each under its idempotency key; a crashed worker's lease lapses and the command is retried
   with the same key, which the agent deduplicates.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection

from reachflow.agents.http_action import HttpAction
from reachflow.agents.port import Agent, AgentError, DispatchRequest
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
    Lead,
    WakeUp,
    decide,
)
from reachflow.domain.enums import Channel, Disposition
from reachflow.domain.graph import Graph
from reachflow.runtime.clock import Clock, VirtualClock
from reachflow.runtime.compliance import ContactCompliance
from reachflow.store.executions import ExecutionFilter
from reachflow.store.records import ExecutionRecord, InboxItem, OutboxItem, VersionRecord
from reachflow.store.store import Store

log = logging.getLogger(__name__)

EffectHandler = Callable[[Connection, OutboxItem, datetime], bool]


@dataclass(frozen=True, slots=True)
class EngineConfig:
    batch_size: int = 200
    lease: timedelta = timedelta(seconds=60)
    report_timeout: timedelta = timedelta(hours=2)
    max_dispatch_attempts: int = 5


@dataclass(slots=True)
class EngineStats:
    """Counters for /metrics and the benchmark; lateness in seconds of each claimed timer."""

    ticks: int = 0
    decisions: int = 0
    dispatches: int = 0
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
    ) -> None:
        self.store = store
        self.agents = dict(agents)
        self.clock = clock
        self.config = config or EngineConfig()
        self.compliance = compliance
        self.http = http or HttpAction()
        self.effect_handlers: dict[str, EffectHandler] = {
            "suppress": self._suppress_effect,
            **(effect_handlers or {}),
        }
        self.stats = EngineStats()
        self._versions: dict[str, tuple[VersionRecord, Graph]] = {}
        self._versions_lock = threading.Lock()
        self.wakeup = threading.Event()

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
        version, graph = self.version(conn, record.version_id)
        lead = Lead(phone=record.primary_phone, zipcode=record.zipcode, state=record.state)
        facts = self.compliance.facts(
            conn, record.organization_id, record.primary_phone, now, excluding_key=excluding_key
        )
        gate = self.compliance.gate(version, lead, facts, now)
        return Context(
            graph=graph,
            gate=gate,
            lead=lead,
            timezone=version.timezone,
            report_timeout=self.config.report_timeout,
        )

    def apply(
        self, conn: Connection, record: ExecutionRecord, event: Event, now: datetime
    ) -> Decision:
        """Decide and persist in the caller's transaction. Raises what ``decide`` raises."""
        decision = decide(self.context(conn, record, now), record.engine, event, now)
        self.store.executions.save_decision(conn, record, decision, now)
        self.stats.decisions += 1
        if decision.dispatches or decision.effects:
            self.wakeup.set()
        return decision

    # -- the loop ---------------------------------------------------------------------------

    def tick(self) -> int:
        """Do all work due now; returns how many items were handled."""
        self.stats.ticks += 1
        done = 0
        while True:
            n = self.feed_inbox() + self.advance_due() + self.perform_outbox()
            done += n
            if n == 0:
                return done

    def feed_inbox(self) -> int:
        now = self.clock.now()
        db = self.store.db
        with db.begin() as conn:
            items = self.store.queue.claim_inbox(
                conn, now, self.config.batch_size, skip_locked=db.supports_skip_locked
            )
            for item in items:
                self._feed(conn, item, now)
        return len(items)

    def _feed(self, conn: Connection, item: InboxItem, now: datetime) -> None:
        self.store.queue.mark_inbox_done(conn, item.id)
        record = self.store.executions.get_execution(
            conn, item.organization_id, item.execution_id, lock=True
        )
        if record is None:
            return
        event = inbox_event(item)
        if event is None:
            return
        self._apply_isolated(conn, record, event, now)
        if isinstance(event, AgentReported):
            reaction = react_to_report(
                Channel(item.payload.get("channel", Channel.CALL.value)),
                event.disposition,
                item.payload.get("reply"),
                stop_revokes_all=self.compliance.stop_revokes_all,
            )
            if reaction is not None:
                self.react(
                    conn,
                    item.organization_id,
                    record.primary_phone,
                    reaction,
                    now,
                    execution_id=record.id,
                )

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
        every = self.compliance.react(
            conn, organization_id, phone, reaction, now, execution_id=execution_id
        )
        if not every:
            return 0
        return self.cancel_where(
            conn,
            ExecutionFilter(organization_id=organization_id, phone=phone),
            f"number suppressed: {reaction.reason}",
            now,
        )

    def cancel_where(
        self, conn: Connection, flt: ExecutionFilter, reason: str, now: datetime
    ) -> int:
        """Cancel every active execution the filter matches, in the caller's transaction."""
        records = self.store.executions.lock_active(conn, flt)
        for record in records:
            self.apply(conn, record, Cancelled(reason), now)
        return len(records)

    def advance_due(self) -> int:
        now = self.clock.now()
        db = self.store.db
        with db.begin() as conn:
            due = self.store.executions.claim_due(
                conn, now, self.config.batch_size, skip_locked=db.supports_skip_locked
            )
            for record in sorted(due, key=_priority):
                if record.due_at is not None:
                    self.stats.record_lateness((now - record.due_at).total_seconds())
                self._apply_isolated(conn, record, WakeUp(), now)
        return len(due)

    def _apply_isolated(
        self, conn: Connection, record: ExecutionRecord, event: Event, now: datetime
    ) -> None:
        """One execution's failure must not roll back the batch or loop forever."""
        try:
            with conn.begin_nested():
                self.apply(conn, record, event, now)
        except Exception as exc:
            log.exception("execution %s failed to advance", record.id)
            self.store.executions.mark_broken(conn, record, f"engine error: {exc}", now)

    def perform_outbox(self) -> int:
        now = self.clock.now()
        db = self.store.db
        with db.begin() as conn:
            items = self.store.queue.claim_outbox(
                conn,
                now,
                self.config.batch_size,
                self.config.lease,
                skip_locked=db.supports_skip_locked,
            )
        for item in items:
            if item.kind == "dispatch":
                self._dispatch(item)
            else:
                self._effect(item)
        return len(items)

    def _dispatch(self, item: OutboxItem) -> None:
        now = self.clock.now()
        payload = item.payload
        with self.store.db.begin() as conn:
            agent = self.store.accounts.get_agent(conn, item.organization_id, payload["agentId"])
            record = self.store.executions.get_execution(
                conn, item.organization_id, item.execution_id
            )
            if agent is None or record is None:
                self.store.queue.finish_outbox(conn, item.id, now, error="agent or execution gone")
                return
            # One contact's cap checks are serialized: check, then count this attempt, then
            # commit, and only then ask the agent (a retry under the same key counts once).
            self.store.contacts.lock_contact(conn, record.organization_id, record.primary_phone)
            hold = self._hold_reason(conn, record, item, now)
            if hold is not None:
                # The window closed (or a rule changed) since the decision: do not dispatch.
                self.store.queue.finish_outbox(conn, item.id, now, error=hold)
                self._put_event(conn, item, "dispatch_held", {"reason": hold}, now, now)
                return
            self.store.contacts.record_attempt(
                conn,
                organization_id=record.organization_id,
                phone=record.primary_phone,
                channel=Channel(payload["channel"]),
                idempotency_key=item.idempotency_key,
                at=now,
                execution_id=record.id,
            )
        provider = self.agents.get(agent.provider)
        request = DispatchRequest(
            idempotency_key=item.idempotency_key,
            organization_id=item.organization_id,
            execution_id=item.execution_id,
            step_execution_id=item.step_execution_id,
            agent_id=agent.id,
            agent_config=agent.config,
            channel=Channel(payload["channel"]),
            phone=payload["phone"],
            message=payload.get("message"),
            leave_voicemail=bool(payload.get("leaveVoicemail")),
            variables=dict(payload.get("variables") or {}),
            sequence=int(payload.get("sequence", 1)),
            now=now,
            forwarding_phone_number=payload.get("forwardingPhoneNumber"),
        )
        try:
            if provider is None:
                raise AgentError(f"no agent provider {agent.provider!r}", transient=False)
            receipt = provider.dispatch(request)
        except AgentError as exc:
            self._dispatch_error(item, str(exc), transient=exc.transient)
            return
        except Exception as exc:
            log.exception("agent %s failed", agent.id)
            self._dispatch_error(item, f"agent error: {exc}", transient=True)
            return
        self.stats.dispatches += 1
        with self.store.db.begin() as conn:
            self.store.queue.finish_outbox(conn, item.id, now)
            if receipt.result is not None:
                result = receipt.result
                self._put_event(
                    conn,
                    item,
                    "agent_reported",
                    {
                        "disposition": result.disposition.value,
                        "call": result.call.to_json(),
                        "channel": payload["channel"],
                        "reply": result.reply,
                    },
                    result.reported_at,
                    now,
                )

    def _hold_reason(
        self, conn: Connection, record: ExecutionRecord, item: OutboxItem, now: datetime
    ) -> str | None:
        payload = item.payload
        if record.engine.is_finished:
            return f"execution is {record.status}"
        context = self.context(conn, record, now, excluding_key=item.idempotency_key)
        node = context.graph.nodes.get(payload.get("nodeId", ""))
        needs_tcpa = getattr(node.config, "needs_tcpa", True) if node else True
        answer = context.gate.check(now, Channel(payload["channel"]), needs_tcpa)
        return None if answer.allowed else f"at dispatch: {answer.reason}"

    def _dispatch_error(self, item: OutboxItem, error: str, *, transient: bool) -> None:
        now = self.clock.now()
        with self.store.db.begin() as conn:
            if transient and item.attempts < self.config.max_dispatch_attempts:
                backoff = timedelta(seconds=min(300, 5 * 2 ** (item.attempts - 1)))
                self.store.queue.retry_outbox(conn, item.id, now + backoff, error)
                return
            self.store.queue.finish_outbox(conn, item.id, now, error=error)
            self._put_event(conn, item, "dispatch_failed", {"reason": error}, now, now)

    def _effect(self, item: OutboxItem) -> None:
        now = self.clock.now()
        action = item.payload.get("action", "")
        if action == "http":
            # Outside any transaction: a slow endpoint must not hold the database.
            outcome = self.http.perform(
                dict(item.payload.get("params") or {}),
                idempotency_key=item.idempotency_key,
                now=now,
            )
            ok, detail = outcome.ok, outcome.detail
            with self.store.db.begin() as conn:
                self._finish_effect(conn, item, ok, detail, now)
            return
        handler = self.effect_handlers.get(action)
        with self.store.db.begin() as conn:
            ok = handler(conn, item, now) if handler is not None else False
            detail = "done" if ok else f"no handler for {action!r}"
            self._finish_effect(conn, item, ok, detail, now)

    def _finish_effect(
        self, conn: Connection, item: OutboxItem, ok: bool, detail: str, now: datetime
    ) -> None:
        self.store.queue.finish_outbox(conn, item.id, now, error=None if ok else detail)
        payload = {"ok": ok, "detail": detail}
        self._put_event(conn, item, "application_finished", payload, now, now)

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

    def _put_event(
        self,
        conn: Connection,
        item: OutboxItem,
        kind: str,
        payload: dict[str, Any],
        due_at: datetime,
        now: datetime,
    ) -> None:
        self.store.queue.put_inbox(
            conn,
            organization_id=item.organization_id,
            execution_id=item.execution_id,
            kind=kind,
            payload={"stepExecutionId": item.step_execution_id, **payload},
            dedupe_key=f"{item.idempotency_key}:{kind}",
            due_at=due_at,
            now=now,
        )

    # -- driving ----------------------------------------------------------------------------

    def next_work_at(self) -> datetime | None:
        with self.store.db.begin() as conn:
            candidates = [
                self.store.executions.next_due_at(conn),
                self.store.queue.next_inbox_at(conn),
                self.store.queue.next_outbox_at(conn),
            ]
        present = [c for c in candidates if c is not None]
        return min(present) if present else None

    def run_until_idle(
        self, clock: VirtualClock, *, max_rounds: int = 1_000_000, until: datetime | None = None
    ) -> int:
        """Under a virtual clock: do all due work, jump to the next due instant, repeat."""
        handled = 0
        for _ in range(max_rounds):
            handled += self.tick()
            upcoming = self.next_work_at()
            if upcoming is None or (until is not None and upcoming > until):
                if until is not None:
                    clock.advance_to(until)
                    handled += self.tick()
                return handled
            clock.advance_to(upcoming)
        raise RuntimeError("run_until_idle did not settle")


def inbox_event(item: InboxItem) -> Event | None:
    step_id = item.payload.get("stepExecutionId", "")
    if item.kind == "agent_reported":
        return AgentReported(
            step_execution_id=step_id,
            disposition=Disposition(item.payload["disposition"]),
            call=item.payload.get("call") or {},
        )
    if item.kind == "dispatch_failed":
        return DispatchFailed(step_id, item.payload.get("reason", "dispatch failed"))
    if item.kind == "dispatch_held":
        return DispatchHeld(step_id, item.payload.get("reason", "held at dispatch"))
    if item.kind == "application_finished":
        return ApplicationFinished(
            step_id, bool(item.payload.get("ok")), item.payload.get("detail", "")
        )
    return None


def _priority(record: ExecutionRecord) -> tuple[datetime, datetime]:
    return (record.priority_date or record.created_at, record.created_at)
