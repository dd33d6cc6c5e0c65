"""The Temporal workflow that carries one execution (workflow id = its ``temporalWorkflowId``).

Deterministic: it reads time only through ``workflow.now()``, waits only on durable timers and
signals, and touches the world only through the ``sync`` activity. The loop:

1. ``sync`` (an activity): on the run's first round, or when the timer it slept for was the
   execution's due instant, feed ``WakeUp`` to the pure ``decide`` at ``workflow.now()`` if the
   execution is due, and persist the decision (the read model, the outbox) in one SQL
   transaction; then perform this execution's pending dispatches and effects (each under its
   idempotency key) and feed its results back; answer where the execution stands.
   Idempotent: a retried ``sync`` finds ``due_at`` moved and decides nothing twice.
2. Sleep on a durable timer until the next instant that matters (the execution's ``due_at``:
   a delay, a deferral to the next open window, a report timeout; an agent result's due time;
   a dispatch's retry time), or until a ``poke`` signal says the execution changed elsewhere
   (pause, resume, cancel, an agent's callback, a suppression).
3. Stop when the execution is finished; continue-as-new after ``MAX_ROUNDS`` to bound history.

Versioning: a change to this loop that would alter the commands a running history recorded is
guarded with ``workflow.patched("<id>")`` (docs/scaling.md); ``decide`` itself runs inside the
activity, so a change of ``decide`` never breaks replay.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

WORKFLOW_NAME = "ReachflowExecution"
SYNC_ACTIVITY = "reachflow.sync"
#: Rounds of the loop before continue-as-new.
MAX_ROUNDS = 500
#: Heartbeat timeout of ``sync``: how soon another worker retries a sync whose worker died.
HEARTBEAT_SECONDS = 10.0
#: Patch id: the loop wakes for a poke received while its sync ran.
POKES_DURING_SYNC = "pokes-during-sync"
TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
#: How many signalled change kinds the ``changes`` query keeps.
CHANGES_KEPT = 50


@dataclass
class SyncInput:
    execution_id: str
    #: The due instant the workflow's timer fired for (ISO 8601), or None: nothing to wake.
    fire_due_at: str | None
    #: ``workflow.now()`` (ISO 8601): the instant ``decide`` is given.
    now: str
    #: The run's first sync: whatever is due already is decided (a new execution starts).
    first: bool = False


@dataclass
class RunView:
    """Where the execution stands after a ``sync`` (ISO 8601 instants)."""

    status: str | None
    due_at: str | None = None
    inbox_at: str | None = None
    outbox_at: str | None = None

    @property
    def over(self) -> bool:
        return self.status is None or self.status in TERMINAL


@dataclass
class Change:
    """What changed an execution outside its workflow, carried by the ``changed`` signal: the
    kinds of the decision's history entries (``paused``, ``resumed``, ``cancelled``, ...) or of
    the events put in its inbox (``agent_reported``, ``reply_received``, ...). The change itself
    is already committed to our SQL store (the source of truth the API answers from); the
    signal wakes the workflow to act on it and records in its history what woke it."""

    kinds: list[str]


@dataclass
class RunInput:
    execution_id: str
    #: Longest sleep with nothing scheduled (a paused execution waits for a poke; this is the
    #: safety net should a poke be lost).
    idle_seconds: float = 300.0
    #: Sleep when work is due now but the last sync could not finish it (a busy agent).
    busy_seconds: float = 1.0


def _at(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@workflow.defn(name=WORKFLOW_NAME)
class ExecutionWorkflow:
    def __init__(self) -> None:
        self._pokes = 0
        self._changes: list[str] = []

    @workflow.signal
    def changed(self, change: Change) -> None:
        """The execution changed outside this workflow (a command, an agent result, a reply):
        sync now."""
        self._pokes += 1
        self._changes = (self._changes + list(change.kinds))[-CHANGES_KEPT:]

    @workflow.signal
    def poke(self) -> None:
        """The signal API processes of earlier releases send: the same, without the kinds."""
        self._pokes += 1

    @workflow.query
    def pokes(self) -> int:
        return self._pokes

    @workflow.query
    def changes(self) -> list[str]:
        """The kinds of the latest changes signalled (at most ``CHANGES_KEPT``)."""
        return list(self._changes)

    async def _sync(self, execution_id: str, fire: str | None, first: bool = False) -> RunView:
        return await workflow.execute_activity(
            SYNC_ACTIVITY,
            SyncInput(execution_id, fire, workflow.now().isoformat(), first),
            result_type=RunView,
            start_to_close_timeout=timedelta(minutes=5),
            # a worker that dies mid-sync is noticed this soon; the sync heartbeats every round
            heartbeat_timeout=timedelta(seconds=HEARTBEAT_SECONDS),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30)
            ),
        )

    @workflow.run
    async def run(self, spec: RunInput) -> str | None:
        synced_at = self._pokes
        view = await self._sync(spec.execution_id, None, first=True)
        previous: RunView | None = None
        for _ in range(MAX_ROUNDS):
            if view.over:
                return view.status
            now = workflow.now()
            instants = [
                at for at in (_at(view.due_at), _at(view.inbox_at), _at(view.outbox_at)) if at
            ]
            wake = min(instants) if instants else None
            if wake is not None and wake <= now and view == previous:
                wake = now + timedelta(seconds=spec.busy_seconds)  # no progress: back off
            if wake is None or wake > now:
                # A poke that came while the sync ran is not lost (patched: older histories
                # waited past it).
                seen = synced_at if workflow.patched(POKES_DURING_SYNC) else self._pokes
                wait = (wake - now).total_seconds() if wake else spec.idle_seconds
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(
                        lambda seen=seen: self._pokes != seen,  # type: ignore[misc]
                        timeout=max(wait, 0.001),
                    )
            due = _at(view.due_at)
            fire = view.due_at if due is not None and due <= workflow.now() else None
            previous = view
            synced_at = self._pokes
            view = await self._sync(spec.execution_id, fire)
        if view.over:
            return view.status
        workflow.continue_as_new(spec)
