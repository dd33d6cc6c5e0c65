"""The dispatch stage: outbox commands claimed one by one under a fenced lease, performed
concurrently, their results recorded in batches.

The guarantees, in order:

1. *Claim* (one transaction per batch): take pending commands (and in-flight ones whose lease
   lapsed: their worker died), each under a new fencing token and a lease; read the batch's
   executions, agents and the compliance records of every number in it under the numbers'
   locks; re-check the gate for this instant (a held command goes back to ``decide`` as
   ``dispatch_held``); count each allowed attempt in ``contact_attempts`` (the frequency caps
   count calls in flight); commit. Only then is any agent asked.
2. *Perform*: a bounded pool calls the agents outside any transaction, under the command's
   idempotency key, at most ``maxConcurrent`` calls per agent (agent config) and
   ``max_in_flight`` overall, so one slow agent never stalls another. An agent that takes a
   batch (``BatchAgent``: the simulator) gets the batch in one call.
3. *Renew*: while a call is in flight its lease is extended, under its token.
4. *Record* (one transaction per batch of results): a result counts only if the row is still
   in flight under the token this worker holds; a late result from a worker whose row was
   taken over is discarded. Transient failures are retried under the same key with
   exponential backoff and jitter; the last failure goes back to ``decide``.

A key is sent twice only when its worker stopped (or stalled past its lease) after committing
the attempt: the next claimer re-sends it under the same key, and an agent that honours keys
(the simulator's durable ledger does) places the call once.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection

from reachflow.agents.http_action import HttpAction
from reachflow.agents.port import (
    Agent,
    AgentError,
    BatchAgent,
    DispatchReceipt,
    DispatchRequest,
)
from reachflow.domain.enums import Channel, ExecutionStatus
from reachflow.runtime.compliance import contact_facts
from reachflow.runtime.embedded.pacing import BreakerState, Pacing, RetryPolicy
from reachflow.store.agent_calls import NewAgentCall, call_id_of
from reachflow.store.contacts import AttemptRow, ContactRecords
from reachflow.store.queue import NewEvent
from reachflow.store.records import AgentRecord, ExecutionRef, OutboxItem

if TYPE_CHECKING:
    from reachflow.runtime.embedded.engine import Engine

log = logging.getLogger(__name__)

EffectHandler = Callable[[Connection, OutboxItem, datetime], bool]

#: Providers that run in this process and answer at once: no per-agent bound by default.
IN_PROCESS = frozenset({"simulator"})


@dataclass(frozen=True, slots=True)
class DispatchLimits:
    #: Calls in flight in this worker, over all agents.
    max_in_flight: int = 1_000
    #: Calls in flight per agent when its config has no ``maxConcurrent``.
    per_agent: int = 50
    #: Threads calling agents that take one request at a time.
    threads: int = 32


@dataclass(slots=True)
class _Outcome:
    item: OutboxItem
    receipt: DispatchReceipt | None = None
    error: AgentError | None = None
    #: For effects: (ok, detail), or None when the handler needs the record transaction.
    effect: tuple[bool, str] | None = None


@dataclass(frozen=True, slots=True)
class _Call:
    item: OutboxItem
    agent: AgentRecord
    record: ExecutionRef


class Dispatcher:
    def __init__(
        self,
        engine: Engine,
        *,
        http: HttpAction,
        effect_handlers: Mapping[str, EffectHandler],
    ) -> None:
        self.engine = engine
        self.store = engine.store
        self.http = http
        self.effect_handlers = dict(effect_handlers)
        self.limits = engine.config.limits
        self.callback_base = engine.config.callback_base.rstrip("/")
        self._pool = ThreadPoolExecutor(
            max_workers=self.limits.threads, thread_name_prefix="reachflow-dispatch"
        )
        self._lock = threading.Condition()
        self._held: dict[int, OutboxItem] = {}
        self._lease_until: dict[int, datetime] = {}
        self._per_agent: Counter[str] = Counter()
        self._agent_limit: dict[str, int] = {}
        self._results: deque[_Outcome] = deque()
        self._running = 0
        self._running_for: Counter[str] = Counter()
        self._rng = random.Random()
        self._agent_config: dict[str, dict[str, Any]] = {}
        self._agent_org: dict[str, str] = {}
        self.pacing = Pacing(
            org_rate=engine.config.org_dispatches_per_second,
            breaker_threshold=engine.config.breaker_threshold,
            breaker_cooldown=engine.config.breaker_cooldown,
        )
        #: Outbox rows already told to wait, and why (one ``dispatch_waiting`` event each).
        self._told_waiting: dict[int, str] = {}

    # -- state ------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """Agent calls are running, or their results are not yet recorded."""
        with self._lock:
            return self._running > 0 or bool(self._results)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._held)

    def wait_idle(
        self, timeout: float | None = None, *, ignoring: frozenset[str] = frozenset()
    ) -> bool:
        """Wait until no agent call is running, but for calls to the ``ignoring`` agents (ids);
        False on timeout."""

        def idle() -> bool:
            ignored = sum(self._running_for[a] for a in ignoring)
            return self._running - ignored <= 0

        with self._lock:
            return self._lock.wait_for(idle, timeout)

    def close(self) -> None:
        # A call still hanging at its agent is not waited for: its lease lapses and another
        # worker re-sends it under the same key.
        self._pool.shutdown(wait=False, cancel_futures=True)

    def saturated(self) -> list[str]:
        """The agents whose calls in flight here are at their bound."""
        with self._lock:
            return [
                agent_id
                for agent_id, n in self._per_agent.items()
                if n >= self._agent_limit.get(agent_id, self.limits.per_agent)
            ]

    def blocked(self, now: datetime) -> list[str]:
        """Agents not to claim for now: at their bound of calls in flight, breaker open, or
        out of their dispatches per second."""
        return sorted(set(self.saturated()) | set(self.pacing.blocked_agents(now)))

    def next_capacity_at(self, now: datetime) -> datetime | None:
        """When an agent blocked by its breaker or its rate may take calls again."""
        return self.pacing.next_capacity_at(now)

    def _limit(self, agent: AgentRecord) -> int:
        configured = agent.config.get("maxConcurrent")
        if isinstance(configured, int) and not isinstance(configured, bool) and configured > 0:
            return configured
        return self.limits.max_in_flight if agent.provider in IN_PROCESS else self.limits.per_agent

    # -- 1. claim ---------------------------------------------------------------------------

    def claim(self) -> int:
        """Claim a batch, commit its attempts as in flight, start the calls. Returns how many
        commands were claimed."""
        engine = self.engine
        with self._lock:
            room = self.limits.max_in_flight - len(self._held)
        if room <= 0:
            return 0
        now = engine.clock.now()
        db = self.store.db
        blocked = self.blocked(now)
        with db.begin() as conn:
            items = self.store.queue.claim_outbox(
                conn,
                now,
                min(engine.batch_size(), room),
                engine.config.lease,
                skip_locked=db.supports_skip_locked,
                exclude_agents=blocked,
            )
            if not items:
                return 0
            calls, effects = self._admit(conn, items, now)
        with self._lock:
            for item in [c.item for c in calls] + effects:
                self._held[item.id] = item
                self._lease_until[item.id] = item.lease_until or now + engine.config.lease
            for call in calls:
                self._per_agent[call.agent.id] += 1
                self._running_for[call.agent.id] += 1
            self._running += len(calls) + len(effects)
        engine.stats.resent += sum(1 for c in calls if c.item.resent)
        self._start(calls, effects, now)
        return len(items)

    def _admit(
        self, conn: Connection, items: Sequence[OutboxItem], now: datetime
    ) -> tuple[list[_Call], list[OutboxItem]]:
        """Which claimed commands may go out now; the rest are finished here (held or gone),
        and the overflow beyond an agent's bound is handed back."""
        store = self.store
        dispatches = [i for i in items if i.kind == "dispatch"]
        effects = [i for i in items if i.kind != "dispatch"]
        records = store.executions.refs_of(conn, [i.execution_id for i in dispatches])
        agents = store.accounts.get_agents(conn, [i.payload.get("agentId", "") for i in dispatches])
        contacts = {(r.organization_id, r.primary_phone) for r in records.values()}
        # One number's cap checks are serialized across workers: lock, read, count, commit.
        store.contacts.lock_contacts(conn, contacts)
        if not self.store.db.is_sqlite:
            # Read again under the locks: a pause or cancel that held them has committed
            # (it takes back only the commands nobody holds; this claim holds these).
            records = store.executions.refs_of(conn, [i.execution_id for i in dispatches])
        facts = self.engine.compliance.records_of(conn, contacts, now)
        with self._lock:
            room = {
                agent.id: self._limit(agent) - self._per_agent[agent.id]
                for agent in agents.values()
            }
            for agent in agents.values():
                self._agent_limit[agent.id] = self._limit(agent)
                self._agent_config[agent.id] = agent.config
                self._agent_org[agent.id] = agent.organization_id
                if self.pacing.breaker(agent.id).state is BreakerState.HALF_OPEN:
                    # One probe call at a time until the agent answers again.
                    room[agent.id] = min(room[agent.id], 1 - self._per_agent[agent.id])
        finished: list[tuple[int, str | None]] = []
        events: list[NewEvent] = []
        attempts: list[AttemptRow] = []
        released: list[tuple[OutboxItem, datetime, str]] = []
        calls: list[_Call] = []
        for item in dispatches:
            record = records.get(item.execution_id)
            agent = agents.get(item.payload.get("agentId", ""))
            if record is None or agent is None or agent.organization_id != item.organization_id:
                finished.append((item.id, "agent or execution gone"))
                if record is not None:
                    reason = {"reason": "the agent was deleted"}
                    events.append(_event(item, "dispatch_failed", reason, now))
                continue
            if room.get(agent.id, 0) <= 0:
                released.append((item, now, f"agent {agent.id} is at its bound of calls"))
                continue
            wait = self._wait_for_rate(agent, now)
            if wait is not None:
                released.append((item, *wait))
                continue
            contact = (record.organization_id, record.primary_phone)
            records_of_contact = facts.setdefault(contact, ContactRecords())
            hold = self._hold_reason(conn, record, item, records_of_contact, now)
            if hold is not None:
                # The window closed (or a rule changed) since the decision: do not dispatch.
                self.engine.stats.held_at_dispatch += 1
                finished.append((item.id, hold))
                events.append(_event(item, "dispatch_held", {"reason": hold}, now))
                continue
            room[agent.id] -= 1
            attempts.append(
                AttemptRow(
                    organization_id=record.organization_id,
                    phone=record.primary_phone,
                    channel=Channel(item.payload["channel"]),
                    idempotency_key=item.idempotency_key,
                    at=now,
                    execution_id=record.id,
                )
            )
            # The next command to this number in the same batch sees this attempt.
            records_of_contact.attempts.append((now, item.idempotency_key))
            calls.append(_Call(item, agent, record))
        store.queue.finish_many(conn, finished, now)
        store.queue.release(conn, [(i.id, at) for i, at, _ in released])
        self._tell_waiting(conn, [(i, why) for i, _, why in released], now)
        for call in calls:
            self._told_waiting.pop(call.item.id, None)
        store.queue.put_events(conn, events, now)
        store.contacts.record_attempts(conn, attempts)
        # Registered before any agent is asked: a report may come back before the result.
        store.agent_calls.register(
            conn,
            [
                NewAgentCall(
                    organization_id=c.record.organization_id,
                    execution_id=c.record.id,
                    step_execution_id=c.item.step_execution_id,
                    agent_id=c.agent.id,
                    provider=c.agent.provider,
                    channel=str(c.item.payload["channel"]),
                    idempotency_key=c.item.idempotency_key,
                )
                for c in calls
            ],
            now,
        )
        return calls, effects

    def _wait_for_rate(self, agent: AgentRecord, now: datetime) -> tuple[datetime, str] | None:
        """Take a token from the agent's and the organization's buckets, or say until when
        the call must wait (a held-back call takes no token and counts no attempt)."""
        agent_bucket = self.pacing.agent_bucket(agent.id, agent.config)
        org_bucket = self.pacing.org_bucket(agent.organization_id)
        if agent_bucket is not None and agent_bucket.available(now) < 1:
            return agent_bucket.next_at(now), f"agent {agent.id} is at its dispatches per second"
        if org_bucket is not None and org_bucket.available(now) < 1:
            return org_bucket.next_at(now), "the organization is at its dispatches per second"
        for bucket in (agent_bucket, org_bucket):
            if bucket is not None:
                bucket.take(now)
        return None

    def _tell_waiting(
        self, conn: Connection, waiting: Sequence[tuple[OutboxItem, str]], now: datetime
    ) -> None:
        """A ``dispatch_waiting`` event for each command held back, once per reason."""
        rows = []
        for item, why in waiting:
            if self._told_waiting.get(item.id) != why:
                self._told_waiting[item.id] = why
                data = {"stepExecutionId": item.step_execution_id, "reason": why}
                rows.append((item.organization_id, item.execution_id, "dispatch_waiting", data))
        if rows:
            self.store.executions.log_events(conn, rows, now)

    def _hold_reason(
        self,
        conn: Connection,
        record: ExecutionRef,
        item: OutboxItem,
        records: ContactRecords,
        now: datetime,
    ) -> str | None:
        status = ExecutionStatus(record.status)
        if status.is_terminal or status is ExecutionStatus.PAUSED:
            return f"execution is {record.status}"
        facts = contact_facts(records, excluding_key=item.idempotency_key)
        context = self.engine.context_from(conn, record, facts, now)
        node = context.graph.nodes.get(item.payload.get("nodeId", ""))
        needs_tcpa = getattr(node.config, "needs_tcpa", True) if node else True
        answer = context.gate.check(now, Channel(item.payload["channel"]), needs_tcpa)
        return None if answer.allowed else f"at dispatch: {answer.reason}"

    # -- 2. perform -------------------------------------------------------------------------

    def _start(self, calls: Sequence[_Call], effects: Sequence[OutboxItem], now: datetime) -> None:
        by_provider: dict[str, list[_Call]] = {}
        for call in calls:
            by_provider.setdefault(call.agent.provider, []).append(call)
        for provider_name, group in by_provider.items():
            provider = self.engine.agents.get(provider_name)
            if isinstance(provider, BatchAgent):
                self._pool.submit(self._perform_batch, provider, group, now)
            else:
                for call in group:
                    self._pool.submit(self._perform_one, provider, call, now)
        for item in effects:
            self._pool.submit(self._perform_effect, item, now)

    def _perform_batch(self, provider: BatchAgent, calls: Sequence[_Call], now: datetime) -> None:
        try:
            answers = provider.dispatch_many([_request(c, now, self.callback_base) for c in calls])
            outcomes = [
                _Outcome(c.item, error=a) if isinstance(a, AgentError) else _Outcome(c.item, a)
                for c, a in zip(calls, answers, strict=True)
            ]
        except Exception as exc:
            log.exception("batch dispatch failed")
            outcomes = [_Outcome(c.item, error=_as_agent_error(exc)) for c in calls]
        self._done(outcomes)

    def _perform_one(self, provider: Agent | None, call: _Call, now: datetime) -> None:
        try:
            if provider is None:
                raise AgentError(f"no agent provider {call.agent.provider!r}", transient=False)
            outcome = _Outcome(
                call.item, provider.dispatch(_request(call, now, self.callback_base))
            )
        except Exception as exc:
            if not isinstance(exc, AgentError):
                log.exception("agent %s failed", call.agent.id)
            outcome = _Outcome(call.item, error=_as_agent_error(exc))
        self._done([outcome])

    def _perform_effect(self, item: OutboxItem, now: datetime) -> None:
        action = item.payload.get("action", "")
        outcome = _Outcome(item)
        try:
            if action == "http":
                # Outside any transaction: a slow endpoint must not hold the database.
                result = self.http.perform(
                    dict(item.payload.get("params") or {}),
                    idempotency_key=item.idempotency_key,
                    now=now,
                )
                outcome.effect = (result.ok, result.detail)
        except Exception as exc:
            log.exception("effect %s failed", item.idempotency_key)
            outcome.effect = (False, f"effect error: {exc}")
        self._done([outcome])

    def _done(self, outcomes: Sequence[_Outcome]) -> None:
        with self._lock:
            self._results.extend(outcomes)
            self._running -= len(outcomes)
            for outcome in outcomes:
                if outcome.item.kind == "dispatch":
                    self._running_for[outcome.item.payload.get("agentId", "")] -= 1
            self._lock.notify_all()
        self.engine.wakeup.set()

    # -- 3. renew ---------------------------------------------------------------------------

    def renew_leases(self) -> int:
        """Extend the lease of every call in flight whose lease is past a third of its term."""
        lease = self.engine.config.lease
        now = self.engine.clock.now()
        with self._lock:
            due = [
                (item_id, self._held[item_id].fence)
                for item_id, until in self._lease_until.items()
                if until - now < lease * 2 / 3
            ]
        if not due:
            return 0
        with self.store.db.begin() as conn:
            self.store.queue.renew(conn, due, now + lease)
        with self._lock:
            for item_id, _ in due:
                if item_id in self._lease_until:
                    self._lease_until[item_id] = now + lease
        return len(due)

    # -- 4. record --------------------------------------------------------------------------

    def record_results(self) -> int:
        """Record the finished calls in one transaction. Returns how many were recorded."""
        engine = self.engine
        with self._lock:
            take = min(len(self._results), engine.batch_size())
            outcomes = [self._results.popleft() for _ in range(take)]
            for outcome in outcomes:
                item = self._held.pop(outcome.item.id, None)
                self._lease_until.pop(outcome.item.id, None)
                if item is not None and item.kind == "dispatch":
                    self._per_agent[item.payload.get("agentId", "")] -= 1
        if not outcomes:
            return 0
        now = engine.clock.now()
        finished: list[tuple[int, str | None]] = []
        retries: list[tuple[int, datetime, str]] = []
        events: list[NewEvent] = []
        answered: list[str] = []
        accepted: list[tuple[str, str]] = []
        touched: set[str] = set()
        opened: set[str] = set()
        with self.store.db.begin() as conn:
            current = self.store.queue.held(conn, [(o.item.id, o.item.fence) for o in outcomes])
            for outcome in outcomes:
                item = outcome.item
                if item.id not in current:
                    engine.stats.stale_results += 1
                    log.warning("discarding a stale result for %s", item.idempotency_key)
                    continue
                if item.kind != "dispatch":
                    ok, detail = outcome.effect or self._run_handler(conn, item, now)
                    finished.append((item.id, None if ok else detail))
                    events.append(
                        _event(item, "application_finished", {"ok": ok, "detail": detail}, now)
                    )
                elif outcome.error is not None:
                    error = str(outcome.error)
                    agent_id = str(item.payload.get("agentId", ""))
                    policy = RetryPolicy.of(
                        self._agent_config.get(agent_id, {}), engine.config.max_dispatch_attempts
                    )
                    breaker = self.pacing.breaker(agent_id)
                    touched.add(agent_id)
                    self.pacing.record(agent_id, False, now)
                    if outcome.error.transient and breaker.failed(error, now):
                        opened.add(agent_id)
                    if outcome.error.transient and item.attempts < policy.max_attempts:
                        at = now + policy.backoff(item.attempts, self._rng)
                        if breaker.open_until is not None:
                            at = max(at, breaker.open_until)
                        retries.append((item.id, at, error))
                    else:
                        finished.append((item.id, error))
                        events.append(_event(item, "dispatch_failed", {"reason": error}, now))
                else:
                    agent_id = str(item.payload.get("agentId", ""))
                    touched.add(agent_id)
                    self.pacing.record(agent_id, True, now)
                    self.pacing.breaker(agent_id).succeeded()
                    engine.stats.dispatches += 1
                    finished.append((item.id, None))
                    receipt = outcome.receipt
                    call_id = call_id_of(item.idempotency_key)
                    if receipt is not None and receipt.result is not None:
                        events.append(_reported(item, receipt, now))
                        answered.append(call_id)
                    elif receipt is not None:
                        accepted.append((call_id, receipt.provider_call_id))
            self.store.queue.finish_many(conn, finished, now)
            self._write_health(conn, touched, opened, now)
            self.store.agent_calls.reported_at_once(conn, answered, now)
            self.store.agent_calls.accepted(conn, accepted)
            self.store.queue.retry_many(conn, retries)
            self.store.queue.put_events(conn, events, now)
        return len(outcomes)

    def _run_handler(self, conn: Connection, item: OutboxItem, now: datetime) -> tuple[bool, str]:
        action = item.payload.get("action", "")
        handler = self.effect_handlers.get(action)
        if handler is None:
            return False, f"no handler for {action!r}"
        ok = handler(conn, item, now)
        return ok, "done" if ok else f"{action} failed"

    def _write_health(
        self, conn: Connection, agent_ids: set[str], opened: set[str], now: datetime
    ) -> None:
        """Write each agent's breaker and recent outcomes for the API to show; for a breaker
        that just opened, tell every command waiting for the agent why."""
        for agent_id in sorted(agent_ids):
            organization_id = self._agent_org.get(agent_id)
            if organization_id is None:
                continue
            breaker = self.pacing.breaker(agent_id)
            ok, failed = self.pacing.recent(agent_id, now)
            self.store.agent_health.set_breaker(
                conn,
                agent_id=agent_id,
                organization_id=organization_id,
                breaker=breaker.state.value,
                reason=breaker.reason,
                open_until=breaker.open_until,
                recent_ok=ok,
                recent_failed=failed,
                now=now,
            )
            if agent_id in opened:
                log.warning(
                    "agent %s: circuit open until %s (%s)",
                    agent_id,
                    breaker.open_until,
                    breaker.reason,
                )
                data = {
                    "reason": f"agent {agent_id} is failing: {breaker.reason}",
                    "until": breaker.open_until.isoformat() if breaker.open_until else None,
                }
                self.store.executions.log_waiting_for_agent(conn, agent_id, data, now)


def _request(call: _Call, now: datetime, callback_base: str) -> DispatchRequest:
    item, payload = call.item, call.item.payload
    call_id = call_id_of(item.idempotency_key)
    return DispatchRequest(
        idempotency_key=item.idempotency_key,
        organization_id=item.organization_id,
        execution_id=item.execution_id,
        step_execution_id=item.step_execution_id,
        agent_id=call.agent.id,
        agent_config=call.agent.config,
        channel=Channel(payload["channel"]),
        phone=payload["phone"],
        message=payload.get("message"),
        leave_voicemail=bool(payload.get("leaveVoicemail")),
        variables=dict(payload.get("variables") or {}),
        sequence=int(payload.get("sequence", 1)),
        now=now,
        forwarding_phone_number=payload.get("forwardingPhoneNumber"),
        call_id=call_id,
        callback_url=f"{callback_base}/api/v1/agent-calls/{call_id}/result",
    )


def _as_agent_error(exc: Exception) -> AgentError:
    if isinstance(exc, AgentError):
        return exc
    return AgentError(f"agent error: {exc}", transient=True)


def _event(item: OutboxItem, kind: str, payload: dict[str, Any], due_at: datetime) -> NewEvent:
    return NewEvent(
        organization_id=item.organization_id,
        execution_id=item.execution_id,
        kind=kind,
        payload={"stepExecutionId": item.step_execution_id, **payload},
        dedupe_key=f"{item.idempotency_key}:{kind}",
        due_at=due_at,
    )


def _reported(item: OutboxItem, receipt: DispatchReceipt, now: datetime) -> NewEvent:
    result = receipt.result
    assert result is not None
    return _event(
        item,
        "agent_reported",
        {
            "disposition": result.disposition.value,
            "call": result.call.to_json(),
            "channel": item.payload["channel"],
            "reply": result.reply,
            "callbackAt": result.callback_at.isoformat() if result.callback_at else None,
        },
        max(now, result.reported_at),
    )
