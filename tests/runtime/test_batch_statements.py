"""Each engine stage runs a fixed number of statements per batch, whatever the batch holds;
and a batch written at once equals the same decisions written one by one."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

import sqlalchemy as sa

from reachflow.bootstrap import Services, bootstrap
from reachflow.domain.decider import Decision, StepOpened, StepUpdated
from reachflow.domain.enums import StepStatus
from reachflow.domain.graph import NodeKind
from reachflow.runtime.clock import VirtualClock
from reachflow.settings import Settings
from reachflow.store.executions import ExecutionFilter
from reachflow.store.tables import step_executions
from tests.helpers import lead, make_agent, seed_002_workflow


@contextmanager
def counting(services: Services) -> Iterator[list[str]]:
    """The statements this thread runs (an agent's own writes, in the pool, are not the
    stage's)."""
    seen: list[str] = []
    me = threading.get_ident()

    def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if threading.get_ident() == me:
            seen.append(statement.split()[0].upper())

    sa.event.listen(services.db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(services.db.engine, "before_cursor_execute", record)


def stage_statements(db_url: str, clock: VirtualClock, n: int) -> dict[str, int]:
    services = bootstrap(Settings(database_url=db_url), clock=clock, migrate=False)
    try:
        org, _ = services.accounts.create_api_key(f"acme-{n}")
        call = make_agent(services, org, "CALL", defaultDisposition="NO_ANSWER")
        wf = services.workflows.create(
            org, seed_002_workflow(call, make_agent(services, org, "TEXT"))
        )
        services.executions.create_bulk(
            org, wf.id, [lead(f"+1212555{n % 10}{i:03d}", f"lead-{i}") for i in range(n)]
        )
        engine = services.engine
        counts: dict[str, int] = {}
        stages: list[tuple[str, Callable[[], int]]] = [
            ("advance_due", engine.advance_due),
            ("claim", engine.dispatcher.claim),
        ]
        for name, stage in stages:
            with counting(services) as seen:
                assert stage() == n
            counts[name] = len(seen)
        engine.dispatcher.wait_idle()
        with counting(services) as seen:
            assert engine.dispatcher.record_results() == n
        counts["record_results"] = len(seen)
        clock.advance(timedelta(minutes=5))  # the calls' reports fall due
        with counting(services) as seen:
            assert engine.feed_inbox() == n
        counts["feed_inbox"] = len(seen)
        return counts
    finally:
        services.close()


def test_every_stage_runs_the_same_statements_for_3_rows_as_for_60(
    db_url: str, clock: VirtualClock
) -> None:
    few = stage_statements(db_url, clock, 3)
    many = stage_statements(db_url, clock, 60)
    assert few == many
    assert all(count <= 14 for count in many.values()), many


def test_a_batch_writes_what_the_same_decisions_write_one_by_one(
    services: Services, clock: VirtualClock
) -> None:
    org, _ = services.accounts.create_api_key("acme")
    call = make_agent(services, org, "CALL")
    wf = services.workflows.create(org, seed_002_workflow(call, make_agent(services, org, "TEXT")))
    records = [
        services.executions.create(org, wf.id, lead(f"+1415555{i:04d}", f"lead-{i}")).record
        for i in range(2)
    ]
    now = clock.now()
    later = now + timedelta(minutes=1)

    def decisions(record: object, step_id: str) -> list[Decision]:
        assert hasattr(record, "engine")
        state = record.engine  # type: ignore[attr-defined]
        opened = StepOpened(
            id=step_id,
            node_id="call",
            visit=1,
            kind=NodeKind.ACTION,
            channel=None,
            order=1,
            delay_secs=0,
            agent_id=call,
            leave_voicemail=False,
            needs_tcpa=True,
            finish_on=(),
            scheduled_at=now,
        )
        return [
            Decision(state=state, steps=(opened,)),
            Decision(
                state=state,
                steps=(StepUpdated(step_id, StepStatus.PENDING, now, next_allowed_at=later),),
            ),
            Decision(
                state=state,
                steps=(StepUpdated(step_id, StepStatus.RUNNING, later, started_at=later),),
            ),
            Decision(
                state=state,
                steps=(
                    StepUpdated(
                        step_id,
                        StepStatus.COMPLETED,
                        later,
                        completed_at=later,
                        agent_call={"id": "c"},
                    ),
                ),
            ),
        ]

    one_by_one, batched = records
    store = services.store.executions
    with services.db.begin() as conn:
        for decision in decisions(one_by_one, "step-a"):
            store.save_decisions(conn, [(one_by_one, decision)], now)
        # The opening alone first, then the three updates in one batch (folded into one row).
        first, *rest = decisions(batched, "step-b")
        store.save_decisions(conn, [(batched, first)], now)
        store.save_decisions(conn, [(batched, d) for d in rest], now)
    with services.db.begin() as conn:
        rows = {
            r.id: r._mapping
            for r in conn.execute(
                sa.select(step_executions).where(step_executions.c.id.in_(["step-a", "step-b"]))
            )
        }
    compared = ("status", "started_at", "completed_at", "next_allowed_at", "agent_call")
    assert {c: rows["step-a"][c] for c in compared} == {c: rows["step-b"][c] for c in compared}
    assert rows["step-a"]["status"] == "COMPLETED"
    assert rows["step-a"]["next_allowed_at"] is None
    assert rows["step-a"]["agent_call"] == {"id": "c"}


def test_due_work_is_taken_in_priority_date_order_across_batches(
    db_url: str, clock: VirtualClock
) -> None:
    services = bootstrap(
        Settings(database_url=db_url, worker_batch_size=2), clock=clock, migrate=False
    )
    try:
        org, _ = services.accounts.create_api_key("acme")
        call = make_agent(services, org, "CALL")
        wf = services.workflows.create(
            org, seed_002_workflow(call, make_agent(services, org, "TEXT"))
        )
        # Created first to last, prioritised last to first (an older priorityDate goes first).
        days = [5, 4, 3, 2, 1, None]
        ids = {}
        for i, day in enumerate(days):
            extra = {} if day is None else {"priorityDate": f"2026-03-0{day}T12:00:00Z"}
            view = services.executions.create(
                org, wf.id, lead(f"+121255500{i:02d}", f"l{i}", **extra)
            )
            ids[view.record.id] = i
        taken: list[list[int]] = []
        while True:
            before = running(services, org)
            if services.engine.advance_due() == 0:
                break
            taken.append(sorted(ids[i] for i in running(services, org) - before))
        # priorityDate 1st, 2nd, ... March; the one without one ranks by its creation (today).
        assert taken == [[3, 4], [1, 2], [0, 5]]
    finally:
        services.close()


def running(services: Services, org: str) -> set[str]:
    views, _ = services.executions.list(
        ExecutionFilter(organization_id=org, status="RUNNING"),
        limit=100,
        cursor=None,
        enriched=False,
    )
    return {v.record.id for v in views}
