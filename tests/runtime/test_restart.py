"""Crash and restart: nothing lost, nothing dispatched twice for one step attempt."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import sqlalchemy as sa

from reachflow.bootstrap import bootstrap
from reachflow.runtime.clock import VirtualClock
from reachflow.settings import Settings
from reachflow.store.tables import outbox
from tests.helpers import lead, make_agent, seed_002_workflow


def test_a_restarted_process_picks_up_where_the_last_one_stopped(
    db_url: str, clock: VirtualClock
) -> None:
    first = bootstrap(Settings(database_url=db_url), clock=clock, migrate=False)
    org, _ = first.accounts.create_api_key("acme")
    call = make_agent(first, org, "CALL", defaultDisposition="NO_ANSWER")
    text = make_agent(first, org, "TEXT", defaultDisposition="ENDED")
    wf = first.workflows.create(org, seed_002_workflow(call, text))
    ids = [
        r.execution_id
        for r in first.executions.create_bulk(
            org, wf.id, [lead(f"+1415555{i:04d}", f"lead-{i}") for i in range(20)]
        )
    ]
    # Run only the first step, then "crash": a new process with a new simulator takes over.
    first.engine.run_until_idle(clock, until=clock.now() + timedelta(hours=1))
    placed_before = first.simulator.calls_placed
    first.close()

    second = bootstrap(Settings(database_url=db_url), clock=clock, migrate=False)
    second.engine.run_until_idle(clock)
    for execution_id in ids:
        assert execution_id is not None
        view = second.executions.get(org, wf.id, execution_id)
        assert view.record.status == "COMPLETED"
        assert [s.status for s in view.steps] == ["COMPLETED", "COMPLETED"]
    placed = placed_before + second.simulator.calls_placed
    assert len(placed) == 40
    assert set(placed.values()) == {1}
    second.close()


def test_a_crash_between_claim_and_dispatch_dispatches_once_after_the_lease(
    db_url: str, clock: VirtualClock
) -> None:
    first = bootstrap(Settings(database_url=db_url, lease_seconds=60), clock=clock, migrate=False)
    org, _ = first.accounts.create_api_key("acme")
    call = make_agent(first, org, "CALL", defaultDisposition="CALENDLY")
    wf = first.workflows.create(org, seed_002_workflow(call, make_agent(first, org, "TEXT")))
    first.executions.create(org, wf.id, lead())
    first.engine.advance_due()  # decides: one dispatch command in the outbox
    with first.db.begin() as conn:  # a worker claims it ... and dies before dispatching
        claimed = first.store.queue.claim_outbox(
            conn, clock.now(), 10, timedelta(seconds=60), skip_locked=False
        )
    assert len(claimed) == 1
    first.close()

    second = bootstrap(Settings(database_url=db_url, lease_seconds=60), clock=clock, migrate=False)
    assert second.engine.perform_outbox() == 0  # still leased to the dead worker
    clock.advance(timedelta(seconds=61))
    second.engine.run_until_idle(clock)
    assert second.simulator.calls_placed == Counter({claimed[0].idempotency_key: 1})
    with second.db.begin() as conn:
        rows = conn.execute(sa.select(outbox.c.status, outbox.c.attempts)).all()
    assert [(r.status, r.attempts) for r in rows] == [("done", 2)]
    second.close()
