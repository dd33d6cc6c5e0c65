"""The Temporal runtime's activity: one step of an execution against our SQL store.

It runs the same ``Engine`` stages the embedded worker runs, minus its due-timer stage: the
timers are the workflows' durable timers."""

from __future__ import annotations

from datetime import datetime

from temporalio import activity

from reachflow.domain.decider import WakeUp
from reachflow.runtime.embedded.engine import Engine
from reachflow.runtime.temporal.workflow import SYNC_ACTIVITY, TERMINAL, RunView, SyncInput
from reachflow.store.temporal_runs import view_of

#: Rounds of dispatch / inbox stages one sync does at most.
_ROUNDS = 20


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class ExecutionActivities:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @activity.defn(name=SYNC_ACTIVITY)
    def sync(self, step: SyncInput) -> RunView:
        engine = self.engine
        store = engine.store
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
        for _ in range(_ROUNDS):
            activity.heartbeat()
            done = engine.dispatcher.record_results() + engine.dispatcher.claim()
            engine.dispatcher.wait_idle()
            done += engine.dispatcher.record_results() + engine.feed_inbox()
            done += engine.webhooks.record_results() + engine.webhooks.claim()
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
