"""Pacing and protection of the dispatch stage under the virtual clock: per-agent bounds and
rates, an organization's rate, priority order across the whole queue, the circuit breaker,
and the ``dispatch_waiting`` events that say why a step waits."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from reachflow.agents.port import AgentError, DispatchReceipt, DispatchRequest
from reachflow.agents.simulator import simulate
from reachflow.bootstrap import Services, bootstrap
from reachflow.runtime.clock import VirtualClock
from reachflow.settings import Settings
from reachflow.store.tables import agent_health, contact_attempts, execution_events


class RecordingAgent:
    """Places every call at once; remembers when (engine time) and for which execution."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[tuple[datetime, str, str]] = []
        self.failures_left = 0
        self.requests: Counter[str] = Counter()

    def dispatch(self, request: DispatchRequest) -> DispatchReceipt:
        with self.lock:
            self.requests[request.idempotency_key] += 1
            if self.failures_left > 0:
                self.failures_left -= 1
                raise AgentError("503 from the agent", transient=True)
            self.calls.append((request.now, request.execution_id, request.idempotency_key))
        return simulate(request)


@pytest.fixture
def agent() -> RecordingAgent:
    return RecordingAgent()


def rig(db_url: str, clock: VirtualClock, agent: RecordingAgent, **settings: Any) -> Services:
    return bootstrap(
        Settings(database_url=db_url, **settings),
        clock=clock,
        migrate=False,
        extra_agents={"webhook": agent},
    )


@pytest.fixture
def services(db_url: str, clock: VirtualClock, agent: RecordingAgent) -> Iterator[Services]:
    built = rig(db_url, clock, agent, worker_batch_size=5)
    yield built
    built.close()


def workflow(services: Services, org: str, **config: Any) -> tuple[str, str]:
    made = services.agents.create(
        org,
        {
            "name": "paced",
            "channel": "CALL",
            "provider": "webhook",
            "config": {"url": "http://127.0.0.1:9/never", "ringDurationSecs": 0, **config},
        },
    )
    step = {
        "type": "CALL",
        "order": 1,
        "agentId": made.id,
        "delayInSecs": 0,
        "needsTCPACompliance": False,
    }
    wf = services.workflows.create(
        org, {"name": "paced", "active": True, "definition": {"steps": [step]}}
    )
    return wf.id, made.id


def enrol(services: Services, org: str, wf: str, count: int, **extra: Any) -> list[str]:
    return [
        services.executions.create(
            org, wf, {"customerLeadId": f"l{n}", "primaryPhone": f"+1212555{n:04d}", **extra}
        ).record.id
        for n in range(count)
    ]


def events(services: Services, kind: str) -> list[dict[str, Any]]:
    with services.db.begin() as conn:
        rows = conn.execute(
            sa.select(execution_events.c.data).where(execution_events.c.kind == kind)
        ).all()
    return [dict(r.data) for r in rows]


def most_in_any_second(times: list[datetime]) -> int:
    return max(
        sum(1 for t in times if start <= t < start + timedelta(seconds=1)) for start in times
    )


def test_an_agents_dispatches_per_second_hold_and_waiting_takes_no_cap(
    services: Services, clock: VirtualClock, agent: RecordingAgent
) -> None:
    org, _ = services.accounts.create_api_key("acme")
    wf, _ = workflow(services, org, dispatchesPerSecond=2)
    enrol(services, org, wf, 12)
    services.engine.run_until_idle(clock)
    times = [t for t, _, _ in agent.calls]
    assert len(times) == 12
    assert most_in_any_second(times) <= 2
    assert max(times) - min(times) >= timedelta(seconds=4)  # 12 calls at 2/s
    waiting = events(services, "dispatch_waiting")
    assert waiting
    assert all("dispatches per second" in w["reason"] for w in waiting)
    with services.db.begin() as conn:
        counted = conn.execute(sa.select(sa.func.count()).select_from(contact_attempts)).scalar()
    assert counted == 12  # a call held back for capacity counts no attempt


def test_an_organizations_rate_holds_over_all_its_agents(
    db_url: str, clock: VirtualClock, agent: RecordingAgent
) -> None:
    services = rig(db_url, clock, agent, worker_batch_size=5, org_dispatches_per_second=3)
    try:
        org, _ = services.accounts.create_api_key("acme")
        first, _ = workflow(services, org)
        second, _ = workflow(services, org)
        enrol(services, org, first, 6)
        for n in range(6):
            services.executions.create(
                org, second, {"customerLeadId": f"m{n}", "primaryPhone": f"+1646555{n:04d}"}
            )
        services.engine.run_until_idle(clock)
        times = [t for t, _, _ in agent.calls]
        assert len(times) == 12
        assert most_in_any_second(times) <= 3
    finally:
        services.close()


def test_due_steps_go_out_in_priority_order_across_batches(
    services: Services, clock: VirtualClock, agent: RecordingAgent
) -> None:
    org, _ = services.accounts.create_api_key("acme")
    wf, _ = workflow(services, org, dispatchesPerSecond=1)
    # Enrolled in reverse priority: lead 0 is the least urgent.
    base = clock.now() - timedelta(days=30)
    by_priority: dict[str, int] = {}
    for n in range(15):
        priority = (base + timedelta(days=15 - n)).isoformat()
        created = services.executions.create(
            org,
            wf,
            {
                "customerLeadId": f"l{n}",
                "primaryPhone": f"+1212555{n:04d}",
                "priorityDate": priority,
            },
        ).record.id
        by_priority[created] = 15 - n
    services.engine.run_until_idle(clock)
    order = [by_priority[e] for _, e, _ in sorted(agent.calls)]
    assert order == sorted(order), order


def test_a_failing_agent_opens_its_breaker_then_one_probe_closes_it(
    db_url: str, clock: VirtualClock, agent: RecordingAgent
) -> None:
    services = rig(db_url, clock, agent, breaker_threshold=3, breaker_cooldown_seconds=60)
    try:
        org, _ = services.accounts.create_api_key("acme")
        wf, agent_id = workflow(
            services, org, maxConcurrent=1, retry={"maxAttempts": 10, "initialBackoffSecs": 1}
        )
        enrol(services, org, wf, 4)
        agent.failures_left = 3  # three failures in a row open the breaker
        start = clock.now()
        services.engine.run_until_idle(clock)
        assert len(agent.calls) == 4  # every call placed in the end, each once
        assert set(agent.requests.values()) <= {1, 2, 3, 4}
        assert len({k for _, _, k in agent.calls}) == 4
        # While open, nothing went out: the first success came after the cooldown.
        assert min(t for t, _, _ in agent.calls) >= start + timedelta(seconds=60)
        with services.db.begin() as conn:
            health = (
                conn.execute(sa.select(agent_health).where(agent_health.c.agent_id == agent_id))
                .mappings()
                .one()
            )
        assert health["breaker"] == "closed"  # the probe succeeded
        waiting = events(services, "dispatch_waiting")
        assert any("is failing" in w["reason"] for w in waiting)
    finally:
        services.close()


def test_never_more_calls_in_flight_than_an_agents_bound(db_url: str, clock: VirtualClock) -> None:
    gate = threading.Event()
    lock = threading.Lock()
    in_flight = [0, 0]  # now, most

    class SlowAgent:
        def dispatch(self, request: DispatchRequest) -> DispatchReceipt:
            with lock:
                in_flight[0] += 1
                in_flight[1] = max(in_flight[1], in_flight[0])
            gate.wait(10)
            with lock:
                in_flight[0] -= 1
            return simulate(request)

    services = bootstrap(
        Settings(database_url=db_url),
        clock=clock,
        migrate=False,
        extra_agents={"webhook": SlowAgent()},
    )
    try:
        org, _ = services.accounts.create_api_key("acme")
        wf, _ = workflow(services, org, maxConcurrent=3)
        enrol(services, org, wf, 10)
        for _ in range(5):
            services.engine.tick()
        assert services.engine.dispatcher.in_flight == 3
        gate.set()
        services.engine.run_until_idle(clock)
        assert in_flight[1] == 3
    finally:
        gate.set()
        services.close()


def test_an_open_breaker_shows_in_the_agents_health(
    db_url: str, clock: VirtualClock, agent: RecordingAgent
) -> None:
    services = rig(db_url, clock, agent, breaker_threshold=2, breaker_cooldown_seconds=600)
    try:
        org, _ = services.accounts.create_api_key("acme")
        wf, agent_id = workflow(
            services, org, maxConcurrent=1, retry={"maxAttempts": 2, "initialBackoffSecs": 1}
        )
        enrol(services, org, wf, 3)
        agent.failures_left = 1000
        services.engine.run_until_idle(clock, until=clock.now() + timedelta(seconds=30))
        health = services.agent_health.health(agent_id)
        assert health["breaker"]["state"] == "open"
        assert "503" in health["breaker"]["reason"]
        assert health["recentErrorRate"] == 1.0  # the first command failed for good
        assert agent.calls == []
        # Past the cooldown the next call is the probe.
        clock.advance(timedelta(seconds=600))
        assert services.agent_health.health(agent_id)["breaker"]["state"] == "half_open"
    finally:
        services.close()
