"""A cancel is final: creates, enrolments and dispatches racing a workflow's delete, cancel,
pause or deactivation, a number's suppression, concurrent cancels of one execution.

Each test runs the real embedded worker (its own thread) on a clock that moves in real time
from an instant inside every calling window, while client threads race the state change.
After the change returns, the agent's own ledger must show no call for an execution of it,
but for dispatches the engine recorded as already handed to the agent (``dispatch_in_flight``).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from reachflow.agents.port import DispatchReceipt, DispatchRequest
from reachflow.agents.simulator import simulate
from reachflow.bootstrap import Services, bootstrap
from reachflow.domain.errors import ReachflowError
from reachflow.settings import Settings
from reachflow.store.tables import execution_events, executions, outbox
from tests.conftest import MONDAY_10_NY

CLIENTS = 6


class RealTimeClock:
    """Real time, shifted to start at a fixed instant (a Monday morning in New York)."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.t0 = time.monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self.t0)


@dataclass
class LedgerAgent:
    """An outside agent's own record of every request it received, with when."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    calls: list[tuple[float, str, str]] = field(default_factory=list)

    def dispatch(self, request: DispatchRequest) -> DispatchReceipt:
        with self.lock:
            self.calls.append((time.monotonic(), request.execution_id, request.idempotency_key))
        return simulate(request)

    def after(self, instant: float, execution_ids: set[str]) -> set[str]:
        with self.lock:
            return {k for t, e, k in self.calls if t > instant and e in execution_ids}


@dataclass
class Rig:
    services: Services
    agent: LedgerAgent
    org: str
    agent_id: str
    phones: Iterator[str]


@pytest.fixture
def rig(db_url: str) -> Iterator[Rig]:
    agent = LedgerAgent()
    services = bootstrap(
        Settings(database_url=db_url, worker_poll_seconds=0.02),
        clock=RealTimeClock(MONDAY_10_NY),
        migrate=False,
        extra_agents={"webhook": agent},
    )
    org, _ = services.accounts.create_api_key("acme")
    agent_id = services.agents.create(
        org,
        {
            "name": "caller",
            "channel": "CALL",
            "provider": "webhook",
            "config": {
                "url": "http://127.0.0.1:9/never",
                "defaultDisposition": "NO_ANSWER",
                "ringDurationSecs": 0,
            },
        },
    ).id
    services.worker.start()
    numbers = itertools.count(1000)  # next() on a count is atomic: safe across threads
    phones = map("+1212555{:04d}".format, numbers)
    try:
        yield Rig(services, agent, org, agent_id, phones)
    finally:
        services.worker.stop()
        services.close()


def feather_workflow(rig: Rig) -> str:
    """Two calls, the second a second after the first."""
    steps = [
        {"type": "CALL", "order": n, "agentId": rig.agent_id, "delayInSecs": delay}
        for n, delay in ((1, 0), (2, 1))
    ]
    return rig.services.workflows.create(
        rig.org,
        {
            "name": "race",
            "active": True,
            "timezone": "America/New_York",
            "definition": {"steps": steps},
        },
    ).id


def graph_workflow(rig: Rig) -> str:
    definition = {
        "nodes": [
            {"id": "first", "node_type": "VOICE_CALL", "config": {"agent_id": rig.agent_id}},
            {"id": "second", "node_type": "VOICE_CALL", "config": {"agent_id": rig.agent_id}},
            {"id": "end", "node_type": "DROPPED", "config": {}},
        ],
        "edges": [
            {"id": "e1", "from_node_id": "first", "to_node_id": "second", "label": None},
            {"id": "e2", "from_node_id": "second", "to_node_id": "end", "label": None},
        ],
    }
    body = {"title": "race", "status": "active", "definition": definition}
    return rig.services.graph_workflows.create(rig.org, body).id


def race(
    create: Callable[[], object], change: Callable[[], object], *, warmup: int = 2 * CLIENTS
) -> tuple[float, list[tuple[float, str]]]:
    """``CLIENTS`` threads call ``create`` in a loop until it is refused; once ``warmup``
    creates have landed (dispatches are under way), ``change`` runs. Returns when ``change``
    returned, and every refusal (time, error code)."""
    refusals: list[tuple[float, str]] = []
    unexpected: list[BaseException] = []
    landed = threading.Condition()
    created = 0

    def client() -> None:
        nonlocal created
        while True:
            try:
                create()
            except ReachflowError as exc:
                refusals.append((time.monotonic(), exc.code))
                return
            except BaseException as exc:  # anything else is a bug the test reports
                unexpected.append(exc)
                return
            with landed:
                created += 1
                landed.notify_all()

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    with landed:
        assert landed.wait_for(lambda: created >= warmup or unexpected, 30)
    change()
    returned = time.monotonic()
    for t in threads:
        t.join(30)
    assert not unexpected, unexpected
    assert len(refusals) == CLIENTS  # every client went on until it was refused
    return returned, refusals


def executions_of(rig: Rig, workflow_id: str) -> dict[str, str]:
    with rig.services.db.begin() as conn:
        rows = conn.execute(
            sa.select(executions.c.id, executions.c.status).where(
                executions.c.workflow_id == workflow_id
            )
        ).all()
    return {r.id: r.status for r in rows}


def recorded_in_flight(rig: Rig) -> set[str]:
    with rig.services.db.begin() as conn:
        rows = conn.execute(
            sa.select(execution_events.c.data).where(
                execution_events.c.kind == "dispatch_in_flight"
            )
        ).all()
    return {r.data["idempotencyKey"] for r in rows}


def assert_no_call_after(rig: Rig, returned: float, execution_ids: set[str]) -> None:
    """Every call the agent received after ``returned`` was recorded as in flight when the
    state changed. The worker keeps running meanwhile: a late dispatch would show up here."""
    assert rig.services.engine.dispatcher.wait_idle(timeout=30)
    late = rig.agent.after(returned, execution_ids)
    unrecorded = late - recorded_in_flight(rig)
    assert not unrecorded, " | ".join(map(str, history_of(rig, sorted(unrecorded)[0], returned)))


def history_of_execution(rig: Rig, execution_id: str) -> list[Any]:
    with rig.services.db.begin() as conn:
        rows = conn.execute(
            sa.select(outbox.c.status, outbox.c.idempotency_key, outbox.c.last_error).where(
                outbox.c.execution_id == execution_id
            )
        ).all()
        events = conn.execute(
            sa.select(execution_events.c.kind, execution_events.c.data)
            .where(execution_events.c.execution_id == execution_id)
            .order_by(execution_events.c.id)
        ).all()
    return [*map(tuple, rows), *(e.kind for e in events)]


def history_of(rig: Rig, key: str, returned: float) -> list[Any]:
    """A late call's outbox row and its execution's history, for the failure message."""
    with rig.services.db.begin() as conn:
        row = conn.execute(sa.select(outbox).where(outbox.c.idempotency_key == key)).first()
        assert row is not None
        events = conn.execute(
            sa.select(execution_events.c.kind, execution_events.c.at, execution_events.c.data)
            .where(execution_events.c.execution_id == row.execution_id)
            .order_by(execution_events.c.id)
        ).all()
    calls = [t for t, _, k in rig.agent.calls if k == key]
    return [tuple(row), *map(tuple, events), ("called at", calls, "returned at", returned)]


def test_creates_racing_a_workflow_delete_leave_nothing_running(rig: Rig) -> None:
    wf = feather_workflow(rig)

    def create() -> object:
        return rig.services.executions.create(
            rig.org, wf, {"customerLeadId": "x", "primaryPhone": next(rig.phones)}
        )

    returned, refusals = race(create, lambda: rig.services.workflows.delete(rig.org, wf))
    statuses = executions_of(rig, wf)
    assert len(statuses) >= 2 * CLIENTS
    assert set(statuses.values()) <= {"CANCELLED", "COMPLETED"}
    assert {code for _, code in refusals} == {"NOT_FOUND"}
    assert all(t > returned - 1 for t, _ in refusals)
    assert_no_call_after(rig, returned, set(statuses))


def test_creates_racing_a_deactivation_start_nothing_after_it(rig: Rig) -> None:
    wf = feather_workflow(rig)

    def create() -> object:
        return rig.services.executions.create(
            rig.org, wf, {"customerLeadId": "x", "primaryPhone": next(rig.phones)}
        )

    def deactivate() -> None:
        rig.services.workflows.update(rig.org, wf, {"active": False})
        nonlocal before
        before = set(executions_of(rig, wf))

    before: set[str] = set()
    _, refusals = race(create, deactivate)
    assert before
    assert set(executions_of(rig, wf)) == before
    assert {code for _, code in refusals} == {"REFUSED"}


def test_lead_enrolment_racing_a_graph_cancel(rig: Rig) -> None:
    wf = graph_workflow(rig)

    def enroll() -> object:
        return rig.services.leads.enroll(
            rig.org, wf, [{"phone_number": next(rig.phones)} for _ in range(3)]
        )

    returned, refusals = race(enroll, lambda: rig.services.graph_workflows.cancel(rig.org, wf))
    statuses = executions_of(rig, wf)
    assert len(statuses) >= 2 * CLIENTS
    assert set(statuses.values()) <= {"CANCELLED", "COMPLETED"}
    assert {code for _, code in refusals} == {"CONFLICT"}
    assert_no_call_after(rig, returned, set(statuses))


def test_lead_enrolment_racing_a_graph_pause_then_a_pause_resume_storm(rig: Rig) -> None:
    wf = graph_workflow(rig)
    service = rig.services.graph_workflows
    pauses = threading.Event()

    def enroll() -> object:
        if pauses.is_set():
            raise ReachflowError("done")
        return rig.services.leads.enroll(rig.org, wf, [{"phone_number": next(rig.phones)}])

    def pause() -> None:
        service.pause(rig.org, wf)
        pauses.set()

    returned, _ = race(enroll, pause)
    statuses = executions_of(rig, wf)
    assert "RUNNING" not in statuses.values()
    assert_no_call_after(rig, returned, set(statuses))
    # A storm: resume and pause back to back; after the last pause returns, nothing goes out.
    for _ in range(15):
        service.resume(rig.org, wf)
        service.pause(rig.org, wf)
    returned = time.monotonic()
    statuses = executions_of(rig, wf)
    assert "RUNNING" not in statuses.values()
    assert_no_call_after(rig, returned, set(statuses))
    service.resume(rig.org, wf)  # and the paused leads still finish once resumed
    deadline = time.monotonic() + 30
    while set(executions_of(rig, wf).values()) != {"COMPLETED"}:
        unfinished = [e for e, s in executions_of(rig, wf).items() if s != "COMPLETED"]
        assert time.monotonic() < deadline, " | ".join(
            map(str, history_of_execution(rig, unfinished[0]))
        )
        rig.services.engine.wakeup.set()
        time.sleep(0.05)


def cancel_together(rig: Rig, wf: str, execution: str) -> list[str]:
    """``CLIENTS`` threads cancel one execution at once; each one's outcome."""
    outcomes: list[str] = []
    barrier = threading.Barrier(CLIENTS)

    def cancel() -> None:
        barrier.wait()
        try:
            rig.services.executions.cancel(rig.org, wf, execution)
            outcomes.append("ok")
        except ReachflowError as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=cancel) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return outcomes


def test_concurrent_cancels_of_one_execution_one_wins_the_rest_conflict(rig: Rig) -> None:
    wf = feather_workflow(rig)
    for _ in range(5):
        execution = rig.services.executions.create(
            rig.org, wf, {"customerLeadId": "x", "primaryPhone": next(rig.phones)}
        ).record.id
        outcomes = cancel_together(rig, wf, execution)
        returned = time.monotonic()
        status = executions_of(rig, wf)[execution]
        if status == "COMPLETED":  # the worker finished it first: every cancel conflicts
            assert set(outcomes) == {"ILLEGAL_TRANSITION"}
        else:
            assert status == "CANCELLED"
            assert sorted(outcomes) == ["ILLEGAL_TRANSITION"] * (CLIENTS - 1) + ["ok"]
        assert_no_call_after(rig, returned, {execution})


def test_creates_racing_a_suppression_of_the_number(rig: Rig) -> None:
    wf = feather_workflow(rig)
    phone = "+12125550100"

    def create() -> object:
        return rig.services.executions.create(
            rig.org, wf, {"customerLeadId": "x", "primaryPhone": phone}
        )

    def suppress() -> Any:
        return rig.services.contacts.suppress(
            rig.org, {"phoneNumber": phone, "channel": "ALL", "reason": "asked to stop"}
        )

    returned, refusals = race(create, suppress)
    statuses = executions_of(rig, wf)
    assert statuses
    assert set(statuses.values()) <= {"CANCELLED", "COMPLETED", "FAILED"}
    assert {code for _, code in refusals} == {"SUPPRESSED"}
    assert_no_call_after(rig, returned, set(statuses))
