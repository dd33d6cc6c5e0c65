"""The Temporal runtime's activity: one step of an execution against our SQL store.

It runs the same ``Engine`` stages the embedded worker runs, minus its due-timer stage: the
timers are the workflows' durable timers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from temporalio import activity

from reachflow.domain.decider import WakeUp
from reachflow.runtime.embedded.engine import Engine
from reachflow.runtime.temporal.workflow import SYNC_ACTIVITY, TERMINAL, RunView, SyncInput
from reachflow.store.temporal_runs import view_of

#: Rounds of dispatch / inbox stages one sync does at most.
_ROUNDS = 20


def _held_executions(engine: Engine) -> set[str]:
    """The executions whose commands this process's dispatcher holds in flight."""
    dispatcher = engine.dispatcher
    with dispatcher._lock:
        return {item.execution_id for item in dispatcher._held.values()}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class ExecutionActivities:
    def __init__(self, engine: Engine, poke: Callable[[list[str]], None] | None = None) -> None:
        self.engine = engine
        #: Signals the workflows of other executions: a sync performs whatever dispatches are
        #: due (any execution's); the executions whose calls it carried must learn of their
        #: results (their workflows otherwise sleep until the dispatch's lease would lapse).
        self.poke = poke

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
        carried: set[str] = set()
        for _ in range(_ROUNDS):
            activity.heartbeat()
            done = engine.dispatcher.record_results() + engine.dispatcher.claim()
            carried.update(_held_executions(engine))
            engine.dispatcher.wait_idle()
            done += engine.dispatcher.record_results() + engine.feed_inbox()
            done += engine.webhooks.record_results() + engine.webhooks.claim()
            if done == 0:
                break
        carried.discard(step.execution_id)
        if carried and self.poke is not None:
            self.poke(sorted(carried))
        with store.db.read() as conn:
            view = view_of(conn, step.execution_id)
        return RunView(
            status=view.status,
            due_at=_iso(view.due_at),
            inbox_at=_iso(view.inbox_at),
            outbox_at=_iso(view.outbox_at),
        )
