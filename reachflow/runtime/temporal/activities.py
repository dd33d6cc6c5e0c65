"""The Temporal runtime's activity: one step of an execution against our SQL store.

It runs the same ``Engine`` stages the embedded worker runs, for this execution alone, minus
its due-timer stage (the timers are the workflows' durable timers) and its event-webhook stage
(``webhook_pump.py`` delivers those on a thread of its own, so a slow subscriber never holds up
an execution). A sync claims and performs only its own execution's commands and feeds only its
own results: no sync carries another execution's call, so none has to signal another
workflow, and each workflow learns all it needs from its own sync's answer."""

from __future__ import annotations

import time
from datetime import datetime

from temporalio import activity

from reachflow.domain.decider import WakeUp
from reachflow.runtime.embedded.engine import Engine
from reachflow.runtime.temporal.client import SYNCING
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
        token = SYNCING.set(frozenset({step.execution_id}))
        try:
            return self._sync(step)
        finally:
            SYNCING.reset(token)

    def _sync(self, step: SyncInput) -> RunView:
        engine = self.engine
        store = engine.store
        dispatcher = engine.dispatcher
        now = datetime.fromisoformat(step.now)
        if step.fire_due_at is not None:
            fire = datetime.fromisoformat(step.fire_due_at)
            with store.db.begin() as conn:
                record = store.executions.get_many(conn, [step.execution_id], lock=True).get(
                    step.execution_id
                )
                # Only the timer it was set for: a retried activity, or a timer overtaken by a
                # command, finds due_at moved and decides nothing.
                if (
                    record is not None
                    and record.due_at == fire
                    and record.engine.status.value not in TERMINAL
                ):
                    engine.stats.record_lateness((now - fire).total_seconds())
                    engine.decide_batch(conn, [(record, (WakeUp(),))], now)
        only = [step.execution_id]
        beat = time.monotonic()
        for _ in range(_ROUNDS):
            if time.monotonic() - beat >= _HEARTBEAT_EVERY:
                activity.heartbeat()
                beat = time.monotonic()
            done = dispatcher.record_results(only) + dispatcher.claim(only)
            while not dispatcher.wait_for(only, timeout=_HEARTBEAT_EVERY):
                activity.heartbeat()  # a slow agent: stay alive while it answers
                dispatcher.renew_leases()
                beat = time.monotonic()
            done += dispatcher.record_results(only) + engine.feed_inbox(only)
            if done == 0:
                break
        with store.db.read() as conn:
            view = view_of(conn, step.execution_id)
        return RunView(
            status=view.status,
            due_at=_iso(view.due_at),
            inbox_at=_iso(view.inbox_at),
            outbox_at=_iso(view.outbox_at),
        )
