"""The Temporal runtime's activity: one step of an execution against our SQL store.

It runs the same ``Engine`` stages the embedded worker runs, minus its due-timer stage (the
timers are the workflows' durable timers) and its event-webhook stage (``webhook_pump.py``
delivers those on a thread of its own, so a slow subscriber never holds up an execution).
The dispatch and inbox stages work in batches over every due row, as on the embedded runtime:
a sync may perform another execution's due call or feed its due result, and that execution's
workflow is then signalled (``changed``) when the sync ends. A sync scoped to its own
execution alone was measured and dropped: a statement set per execution instead of per batch
ran at about 60 % of this throughput (docs/scaling.md)."""

from __future__ import annotations

import time
from datetime import datetime

from temporalio import activity

from reachflow.domain.decider import WakeUp
from reachflow.runtime.embedded.engine import Engine
from reachflow.runtime.temporal.client import SYNCING, SyncScope
from reachflow.runtime.temporal.workflow import SYNC_ACTIVITY, TERMINAL, RunView, SyncInput
from reachflow.store.temporal_runs import view_of

#: Rounds of dispatch / inbox stages one sync does at most.
_ROUNDS = 20
#: Least time between two heartbeats of one sync. A heartbeat from an activity thread waits
#: for the worker's event loop, which also runs every workflow task: one per round made each
#: sync queue behind the loop (profiled, docs/scaling.md). The heartbeat timeout is 10 s.
_HEARTBEAT_EVERY = 2.0


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class ExecutionActivities:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @activity.defn(name=SYNC_ACTIVITY)
    def sync(self, step: SyncInput) -> RunView:
        scope = SyncScope(step.execution_id)
        token = SYNCING.set(scope)
        try:
            return self._sync(step)
        finally:
            SYNCING.reset(token)
            scope.flush()  # every transaction of the sync has committed or rolled back

    def _wait_idle(self) -> None:
        dispatcher = self.engine.dispatcher
        while not dispatcher.wait_idle(timeout=_HEARTBEAT_EVERY):
            activity.heartbeat()  # a slow agent: stay alive while it answers
            dispatcher.renew_leases()

    def _record_all(self) -> int:
        """Record every answer the dispatcher holds (it records a batch at a time)."""
        recorded = 0
        while found := self.engine.dispatcher.record_results():
            recorded += found
        return recorded

    def _sync(self, step: SyncInput) -> RunView:
        engine = self.engine
        store = engine.store
        now = datetime.fromisoformat(step.now)
        if step.fire_due_at is not None or step.first:
            with store.db.begin() as conn:
                record = store.executions.get_many(conn, [step.execution_id], lock=True).get(
                    step.execution_id
                )
                # Whatever is due at the workflow's instant, as the embedded runtime's due
                # stage does: a retried activity, or a timer overtaken by a command, finds
                # ``due_at`` moved and decides nothing twice.
                if (
                    record is not None
                    and record.due_at is not None
                    and record.due_at <= now
                    and record.engine.status.value not in TERMINAL
                ):
                    engine.stats.record_lateness((now - record.due_at).total_seconds())
                    engine.decide_batch(conn, [(record, (WakeUp(),))], now)
        beat = time.monotonic()
        for _ in range(_ROUNDS):
            if time.monotonic() - beat >= _HEARTBEAT_EVERY:
                activity.heartbeat()
                beat = time.monotonic()
            done = self._record_all() + engine.dispatcher.claim()
            self._wait_idle()
            done += self._record_all() + engine.feed_inbox()
            if done == 0:
                break
        # No answer may stay in memory when the sync ends: nothing else would come to record it,
        # and its execution's workflow would sleep until the call's lease lapsed (60 s; seen
        # at 300 executions, where one sync's last round claimed more than it recorded).
        self._wait_idle()
        self._record_all()
        with store.db.read() as conn:
            view = view_of(conn, step.execution_id)
        return RunView(
            status=view.status,
            due_at=_iso(view.due_at),
            inbox_at=_iso(view.inbox_at),
            outbox_at=_iso(view.outbox_at),
        )
