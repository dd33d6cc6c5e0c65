"""Store behaviour that the engine relies on, on both databases."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from reachflow.bootstrap import Services
from reachflow.runtime.clock import VirtualClock
from reachflow.store.tables import outbox
from tests.helpers import lead, make_agent, seed_002_workflow


def test_claim_due_takes_only_due_work_oldest_first(
    services: Services, clock: VirtualClock
) -> None:
    org, _ = services.accounts.create_api_key("acme")
    call = make_agent(services, org, "CALL")
    wf = services.workflows.create(org, seed_002_workflow(call, make_agent(services, org, "TEXT")))
    later = services.executions.create(
        org, wf.id, lead(startAt=(clock.now() + timedelta(hours=2)).isoformat())
    )
    now_ex = services.executions.create(org, wf.id, lead("+12125550124", "b"))
    with services.db.begin() as conn:
        due = services.store.executions.claim_due(conn, clock.now(), 10, skip_locked=False)
        assert [r.id for r in due] == [now_ex.record.id]
        assert services.store.executions.next_due_at(conn) == clock.now()
    clock.advance(timedelta(hours=3))
    with services.db.begin() as conn:
        due = services.store.executions.claim_due(conn, clock.now(), 10, skip_locked=False)
    assert [r.id for r in due] == [now_ex.record.id, later.record.id]


def test_idempotency_key_is_unique(services: Services, clock: VirtualClock) -> None:
    org, _ = services.accounts.create_api_key("acme")
    call = make_agent(services, org, "CALL")
    wf = services.workflows.create(org, seed_002_workflow(call, make_agent(services, org, "TEXT")))
    ex = services.executions.create(org, wf.id, lead())
    services.engine.advance_due()
    with services.db.begin() as conn:
        row = conn.execute(sa.select(outbox)).mappings().one()
    duplicate = {k: v for k, v in row.items() if k != "id"}
    with pytest.raises(sa.exc.IntegrityError), services.db.begin() as conn:
        conn.execute(outbox.insert().values(**duplicate))
    assert row["execution_id"] == ex.record.id


def test_two_writers_of_an_agents_first_health_row_both_land(
    services: Services, clock: VirtualClock
) -> None:
    """Two workers record their calls' results at once, each writing the agent's first health
    row: the second waits for the first and updates it. (An update-then-insert failed the
    second on the key, and with it the transaction recording its results: the calls waited
    for their leases to lapse.)"""
    import threading

    org, _ = services.accounts.create_api_key("acme")
    agent = make_agent(services, org)
    health = services.store.agent_health
    db = services.db

    def write(conn: sa.Connection, ok: int) -> None:
        health.set_breaker(
            conn,
            agent_id=agent,
            organization_id=org,
            breaker="closed",
            reason=None,
            open_until=None,
            recent_ok=ok,
            recent_failed=0,
            now=clock.now(),
        )

    errors: list[BaseException] = []
    with db.begin() as first:
        write(first, 1)  # not committed yet: on PostgreSQL the second writer waits for it

        def second() -> None:
            try:
                with db.begin() as conn:
                    write(conn, 2)
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=second)
        thread.start()
        thread.join(0.5 if not db.is_sqlite else 0)  # SQLite: the writer lock serializes
    thread.join(30)
    assert not thread.is_alive()
    assert errors == []
    with db.begin() as conn:
        record = health.of(conn, agent)
    assert record is not None
    assert record.recent_ok == 2
