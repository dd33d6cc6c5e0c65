"""The dispatch stage: fenced per-item leases, renewal, stale results, per-agent bounds.

Two ``bootstrap`` calls on one database are two workers. ``GatedAgent`` stands for an outside
agent service that honours idempotency keys: it holds every call until the test opens its gate,
records every request it receives and places each key's call once.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa

from reachflow.agents.port import DispatchReceipt, DispatchRequest
from reachflow.agents.simulator import simulate
from reachflow.bootstrap import Services, bootstrap
from reachflow.runtime.clock import VirtualClock
from reachflow.settings import Settings
from reachflow.store.tables import inbox, outbox
from tests.helpers import lead

LEASE = 30


class GatedAgent:
    def __init__(self) -> None:
        self.gate = threading.Event()
        self.lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.placed: dict[str, DispatchReceipt] = {}
        self.in_flight = 0
        self.most_in_flight = 0
        self.arrived = threading.Condition(self.lock)

    def dispatch(self, request: DispatchRequest) -> DispatchReceipt:
        with self.lock:
            self.requests[request.idempotency_key] += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            self.arrived.notify_all()
        self.gate.wait()
        with self.lock:
            self.in_flight -= 1
            return self.placed.setdefault(request.idempotency_key, simulate(request))

    def wait_for_requests(self, count: int) -> None:
        """Block until ``count`` requests have arrived (the calls are on their way)."""
        with self.arrived:
            assert self.arrived.wait_for(lambda: sum(self.requests.values()) >= count, 30)


@pytest.fixture
def gated() -> Iterator[GatedAgent]:
    agent = GatedAgent()
    yield agent
    agent.gate.set()  # never leave a pool thread waiting


def worker(db_url: str, clock: VirtualClock, agent: GatedAgent) -> Services:
    return bootstrap(
        Settings(database_url=db_url, lease_seconds=LEASE),
        clock=clock,
        migrate=False,
        extra_agents={"webhook": agent},
    )


def one_call_workflow(
    services: Services, org: str, *, provider: str = "webhook", **config: object
) -> str:
    settings = {"url": "http://127.0.0.1:9/never"} if provider == "webhook" else {}
    agent = services.agents.create(
        org,
        {
            "name": f"{provider} agent",
            "channel": "CALL",
            "provider": provider,
            "config": {**settings, **config},
        },
    )
    return services.workflows.create(
        org,
        {
            "name": "one call",
            "active": True,
            "timezone": "America/New_York",
            "definition": {
                "steps": [
                    {
                        "type": "CALL",
                        "order": 1,
                        "agentId": agent.id,
                        "delayInSecs": 0,
                        "needsTCPACompliance": False,
                    }
                ]
            },
        },
    ).id


def outbox_rows(services: Services) -> list[tuple[str, int, int]]:
    with services.db.begin() as conn:
        rows = conn.execute(
            sa.select(outbox.c.status, outbox.c.attempts, outbox.c.fence).order_by(outbox.c.id)
        ).all()
    return [(r.status, r.attempts, r.fence) for r in rows]


def test_a_call_that_outlives_its_lease_is_renewed_and_never_sent_twice(
    db_url: str, clock: VirtualClock, gated: GatedAgent
) -> None:
    first, second = worker(db_url, clock, gated), worker(db_url, clock, gated)
    try:
        org, _ = first.accounts.create_api_key("acme")
        wf = one_call_workflow(first, org)
        execution = first.executions.create(org, wf, lead()).record.id
        first.engine.tick()  # decides and starts the call, which hangs at the agent
        gated.wait_for_requests(1)
        # Ten lease terms pass while the call is in flight; the first worker keeps renewing.
        for _ in range(30):
            clock.advance(timedelta(seconds=LEASE / 3))
            first.engine.tick()
            assert second.engine.tick() == 0
        assert outbox_rows(first) == [("in_flight", 1, 1)]
        gated.gate.set()
        first.engine.run_until_idle(clock)
        assert first.executions.get(org, wf, execution).record.status == "COMPLETED"
        assert list(gated.requests.values()) == [1]
        assert outbox_rows(first) == [("done", 1, 1)]
        assert second.engine.stats.dispatches == 0
        assert first.engine.stats.resent == second.engine.stats.resent == 0
    finally:
        gated.gate.set()
        first.close()
        second.close()


def test_a_stale_workers_late_result_is_discarded(
    db_url: str, clock: VirtualClock, gated: GatedAgent
) -> None:
    first, second = worker(db_url, clock, gated), worker(db_url, clock, gated)
    try:
        org, _ = first.accounts.create_api_key("acme")
        wf = one_call_workflow(first, org)
        execution = first.executions.create(org, wf, lead()).record.id
        first.engine.tick()
        gated.wait_for_requests(1)
        # The first worker stalls (no renewal); its lease lapses and the second takes over,
        # re-sending under the same key with a higher fencing token.
        clock.advance(timedelta(seconds=LEASE + 1))
        assert second.engine.tick() == 1
        gated.wait_for_requests(2)
        assert outbox_rows(first) == [("in_flight", 2, 2)]
        gated.gate.set()
        first.engine.dispatcher.wait_idle()
        first.engine.dispatcher.record_results()  # the stale worker wakes up: discarded
        assert first.engine.stats.stale_results == 1
        assert outbox_rows(first) == [("in_flight", 2, 2)]
        second.engine.run_until_idle(clock)
        assert second.engine.stats.resent == 1
        assert second.engine.stats.stale_results == 0
        assert outbox_rows(first) == [("done", 2, 2)]
        [key] = gated.requests
        assert gated.requests[key] == 2  # sent twice under one key ...
        assert list(gated.placed) == [key]  # ... placed once
        view = first.executions.get(org, wf, execution)
        assert view.record.status == "COMPLETED"
        assert [s.status for s in view.steps] == ["COMPLETED"]
        with first.db.begin() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(inbox)).scalar() == 0
    finally:
        gated.gate.set()
        first.close()
        second.close()


def test_a_slow_agent_holds_only_its_own_calls(
    db_url: str, clock: VirtualClock, gated: GatedAgent
) -> None:
    services = worker(db_url, clock, gated)
    try:
        org, _ = services.accounts.create_api_key("acme")
        slow_wf = one_call_workflow(services, org, maxConcurrent=2)
        [slow_agent] = [a.id for a in services.agents.list(org) if a.provider == "webhook"]
        fast = services.agents.create(
            org, {"name": "fast", "channel": "CALL", "config": {"defaultDisposition": "CALENDLY"}}
        )
        fast_wf = services.workflows.create(
            org,
            {
                "name": "fast",
                "active": True,
                "timezone": "America/New_York",
                "definition": {
                    "steps": [
                        {
                            "type": "CALL",
                            "order": 1,
                            "agentId": fast.id,
                            "needsTCPACompliance": False,
                        },
                        {
                            "type": "CALL",
                            "order": 2,
                            "agentId": fast.id,
                            "needsTCPACompliance": False,
                        },
                    ]
                },
            },
        ).id
        services.executions.create_bulk(
            org, slow_wf, [lead(f"+1415555{i:04d}", f"slow-{i}") for i in range(5)]
        )
        services.executions.create_bulk(
            org, fast_wf, [lead(f"+1415666{i:04d}", f"fast-{i}") for i in range(40)]
        )
        engine = services.engine
        ignoring = frozenset({slow_agent})
        # Drive the virtual clock while the slow agent holds every call it is given.
        for _ in range(200):
            engine.tick()
            engine.dispatcher.wait_idle(ignoring=ignoring)
            engine.tick()
            with services.db.begin() as conn:
                counts = services.store.executions.count_by_status(conn, org)
            if counts.get("COMPLETED", 0) == 40:
                break
            upcoming = engine.next_work_at()
            assert upcoming is not None
            clock.advance_to(max(upcoming, clock.now()))
        assert counts == {"COMPLETED": 40, "RUNNING": 5}
        # The slow agent was given its bound, no more; the rest of its calls wait unclaimed.
        assert gated.most_in_flight == 2
        assert sorted(status for status, _, _ in outbox_rows(services)).count("pending") == 3
        gated.gate.set()
        engine.run_until_idle(clock)
        with services.db.begin() as conn:
            counts = services.store.executions.count_by_status(conn, org)
        assert counts == {"COMPLETED": 45}
        assert gated.most_in_flight == 2
        assert sorted(gated.requests.values()) == [1] * 5
    finally:
        gated.gate.set()
        services.close()


def test_a_worker_with_a_backlog_stops_when_asked(db_url: str, clock: VirtualClock) -> None:
    services = bootstrap(Settings(database_url=db_url, bulk_limit=1000), clock=clock, migrate=False)
    try:
        org, _ = services.accounts.create_api_key("acme")
        wf = one_call_workflow(services, org, provider="simulator")
        services.executions.create_bulk(
            org, wf, [lead(f"+1212555{i:04d}", f"lead-{i}") for i in range(1000)]
        )
        services.worker.start()
        thread = services.worker._thread
        assert thread is not None
        services.engine.wakeup.set()
        services.worker.stop(timeout=30)
        # It stopped between two stages, not after draining the backlog.
        assert not thread.is_alive()
        with services.db.begin() as conn:
            counts = services.store.executions.count_by_status(conn, org)
        assert counts.get("CREATED", 0) > 0
    finally:
        services.close()
