"""The Temporal runtime against a real dev server: one workflow per execution driving the same
``decide``; the API answers as on the embedded runtime. Short delays, real time."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from temporalio import workflow
from temporalio.client import Client

from reachflow.api import create_app
from reachflow.bootstrap import Services, bootstrap
from reachflow.runtime.temporal.client import workflow_id_of
from reachflow.runtime.temporal.devserver import DevServer
from reachflow.runtime.temporal.worker import run_worker
from reachflow.runtime.temporal.workflow import WORKFLOW_NAME, RunInput
from reachflow.settings import Settings
from tests.helpers import make_agent

PLACES = [("10001", "NY", "+12125550123", "America/New_York")]


def open_place() -> tuple[str, str, str, str]:
    """The contact's location. The steps skip the TCPA window (``needsTCPACompliance: false``)
    and the workflows have no schedule, so they run at any hour of the real clock."""
    return PLACES[0]


class Runtime:
    def __init__(self, services: Services, client: TestClient, org: str) -> None:
        self.services = services
        self.client = client
        self.org = org

    def wait_for(self, check: Callable[[], Any], timeout: float = 25.0, every: float = 0.1) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(every)
        raise AssertionError("timed out")


@pytest.fixture
def runtime(temporal_server: DevServer, tmp_path: Path, sqlite_template: Path) -> Iterator[Runtime]:
    import shutil

    db = tmp_path / "reachflow.db"
    shutil.copy(sqlite_template, db)
    queue = f"reachflow-test-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        database_url=f"sqlite:///{db}",
        runtime="temporal",
        temporal_address=temporal_server.address,
        temporal_task_queue=queue,
    )
    services = bootstrap(settings, migrate=False)
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()

    def work() -> None:
        loop.run_until_complete(
            run_worker(
                services.engine, temporal_server.address, "default", queue, threads=8, stop=stop
            )
        )

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    org, key = services.accounts.create_api_key("acme")
    with TestClient(create_app(services, run_worker=False)) as client:
        client.headers["X-API-Key"] = key
        yield Runtime(services, client, org)
    loop.call_soon_threadsafe(stop.set)
    thread.join(15)
    services.close()


@workflow.defn(name=WORKFLOW_NAME, sandboxed=False)
class ChangedWorkflow:
    """A changed loop (it sleeps before its first sync): replaying an old history must fail."""

    @workflow.run
    async def run(self, spec: RunInput) -> str | None:
        await workflow.sleep(timedelta(seconds=1))
        return None


def _workflow(runtime: Runtime, steps: list[dict[str, Any]], tz: str) -> str:
    agent = make_agent(
        runtime.services, runtime.org, defaultDisposition="NO_ANSWER", ringDurationSecs=1
    )
    for step in steps:
        step.setdefault("agentId", agent)
    response = runtime.client.post(
        "/api/v1/workflow",
        json={"name": "t", "active": True, "timezone": tz, "definition": {"steps": steps}},
    )
    assert response.status_code in (200, 201), response.text
    return str(response.json()["id"])


def _start(runtime: Runtime, workflow_id: str, place: tuple[str, str, str, str]) -> dict[str, Any]:
    zipcode, state, phone, _ = place
    response = runtime.client.post(
        f"/api/v1/workflow/{workflow_id}/execution",
        json={
            "customerLeadId": "lead-1",
            "primaryPhone": phone,
            "zipcode": zipcode,
            "state": state,
        },
    )
    assert response.status_code in (200, 201), response.text
    assert runtime.services.temporal is not None
    runtime.services.temporal.flush()  # its workflow is started (it is sent after the commit)
    body: dict[str, Any] = response.json()
    return body


def _get(runtime: Runtime, workflow_id: str, execution_id: str) -> dict[str, Any]:
    response = runtime.client.get(f"/api/v1/workflow/{workflow_id}/execution/{execution_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _call(step: int) -> dict[str, Any]:
    return {
        "type": "CALL",
        "order": step,
        "delayInSecs": 1,
        "leaveVoicemail": False,
        "needsTCPACompliance": False,
    }


def test_linear_workflow_runs_to_completion(runtime: Runtime) -> None:
    place = open_place()
    workflow_id = _workflow(runtime, [_call(1), _call(2)], place[3])
    created = _start(runtime, workflow_id, place)
    execution_id = created["id"]
    assert created["temporalWorkflowId"] == workflow_id_of(execution_id)

    done = runtime.wait_for(
        lambda: (b := _get(runtime, workflow_id, execution_id))["status"] == "COMPLETED" and b
    )
    assert [s["status"] for s in done["stepExecutions"]] == ["COMPLETED", "COMPLETED"]
    # exactly one call per step
    assert sum(runtime.services.simulator.calls_placed.values()) == 2

    async def result() -> Any:
        client = await Client.connect(runtime.services.settings.temporal_address)
        return await client.get_workflow_handle(created["temporalWorkflowId"]).result()

    assert asyncio.run(result()) == "COMPLETED"


def _put(runtime: Runtime, workflow_id: str, execution_id: str, status: str) -> dict[str, Any]:
    response = runtime.client.put(
        f"/api/v1/workflow/{workflow_id}/execution/{execution_id}", json={"status": status}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_pause_resume_and_cancel_reach_the_workflow(runtime: Runtime) -> None:
    place = open_place()
    # a long delay: the execution waits on a durable timer when paused
    workflow_id = _workflow(runtime, [{**_call(1), "delayInSecs": 3}, _call(2)], place[3])
    first = _start(runtime, workflow_id, place)["id"]
    second = _start(runtime, workflow_id, place)["id"]

    assert _put(runtime, workflow_id, first, "PAUSED")["status"] == "PAUSED"
    cancelled = runtime.client.post(
        f"/api/v1/workflow/{workflow_id}/executions/{second}/cancel"
    ).json()
    assert cancelled["status"] == "CANCELLED"
    time.sleep(4)  # past the delay: a paused execution does not move
    assert _get(runtime, workflow_id, first)["status"] == "PAUSED"
    assert sum(runtime.services.simulator.calls_placed.values()) == 0
    _put(runtime, workflow_id, first, "RUNNING")
    runtime.wait_for(lambda: _get(runtime, workflow_id, first)["status"] == "COMPLETED")

    async def status(execution_id: str) -> Any:
        client = await Client.connect(runtime.services.settings.temporal_address)
        return await client.get_workflow_handle(workflow_id_of(execution_id)).result()

    assert asyncio.run(status(first)) == "COMPLETED"
    assert asyncio.run(status(second)) == "CANCELLED"
    assert sum(runtime.services.simulator.calls_placed.values()) == 2  # first's two steps


def test_replay_of_a_recorded_history_catches_non_determinism(runtime: Runtime) -> None:
    from temporalio.worker import Replayer

    from reachflow.runtime.temporal.workflow import ExecutionWorkflow

    place = open_place()
    workflow_id = _workflow(runtime, [_call(1)], place[3])
    created = _start(runtime, workflow_id, place)

    async def history() -> Any:
        client = await Client.connect(runtime.services.settings.temporal_address)
        handle = client.get_workflow_handle(created["temporalWorkflowId"])
        assert await handle.result() == "COMPLETED"
        return await handle.fetch_history()

    recorded = asyncio.run(history())

    async def replay() -> None:
        await Replayer(workflows=[ExecutionWorkflow]).replay_workflow(recorded)
        outcome = await Replayer(workflows=[ChangedWorkflow]).replay_workflow(
            recorded, raise_on_replay_failure=False
        )
        assert outcome.replay_failure is not None
        assert "nondetermin" in str(outcome.replay_failure).lower()

    asyncio.run(replay())


def _placed_at(runtime: Runtime) -> list[Any]:
    """When the simulator placed each call, in order (its durable ledger)."""
    import sqlalchemy as sa

    from reachflow.store.tables import simulator_calls

    with runtime.services.ledger.db.begin() as conn:
        return sorted(conn.execute(sa.select(simulator_calls.c.placed_at)).scalars())


def _short_cap(runtime: Runtime, seconds: float) -> None:
    """Replace the rules with one NY cap of one attempt per ``seconds`` (the shipped caps are
    hours long): the second step's call is then deferred by the gate, never skipped."""
    from reachflow.domain.compliance import parse_rules

    compliance = runtime.services.compliance
    compliance.rules = parse_rules(
        {
            "version": "test",
            "rules": [
                {
                    "id": "US-NY-test-cap",
                    "version": "1",
                    "jurisdiction": "NY",
                    "channels": ["CALL", "TEXT"],
                    "cap": {"max": 1, "hours": seconds / 3600},
                    "consent_waives": False,
                    "citation": "test",
                    "source": "test",
                    "confidence": "high",
                }
            ],
        }
    )
    compliance.lookback = timedelta(seconds=seconds)
    compliance._windows.clear()
    compliance._cap_memo.clear()


def test_a_deferred_step_waits_on_a_durable_timer_then_completes(runtime: Runtime) -> None:
    place = open_place()
    cap = 5.0
    _short_cap(runtime, cap)
    workflow_id = _workflow(runtime, [_call(1), {**_call(2), "delayInSecs": 0}], place[3])
    created = _start(runtime, workflow_id, place)
    execution_id = created["id"]

    done = runtime.wait_for(
        lambda: (b := _get(runtime, workflow_id, execution_id))["status"] == "COMPLETED" and b
    )
    assert [s["status"] for s in done["stepExecutions"]] == ["COMPLETED", "COMPLETED"]
    assert sum(runtime.services.simulator.calls_placed.values()) == 2
    # the second call went out no sooner than the cap allowed: it was held, then released
    placed = _placed_at(runtime)
    assert len(placed) == 2
    gap = (placed[1] - placed[0]).total_seconds()
    assert cap - 0.1 <= gap < cap + 5, gap

    async def history() -> Any:
        client = await Client.connect(runtime.services.settings.temporal_address)
        handle = client.get_workflow_handle(created["temporalWorkflowId"])
        assert await handle.result() == "COMPLETED"
        return await handle.fetch_history()

    timers = [
        e for e in asyncio.run(history()).events if e.HasField("timer_started_event_attributes")
    ]
    assert timers, "the deferral is a durable timer"


def test_graph_workflow_call_wait_call_runs_to_completion(runtime: Runtime) -> None:
    services, org = runtime.services, runtime.org
    agent = make_agent(services, org, defaultDisposition="NO_ANSWER", ringDurationSecs=1)

    def voice(node_id: str) -> dict[str, Any]:
        config = {"agent_id": agent, "needs_tcpa_compliance": False}
        return {"id": node_id, "node_type": "VOICE_CALL", "config": config}

    wait_secs = 2.0
    nodes = [
        voice("first"),
        {"id": "wait", "node_type": "TIME", "config": {"delay_minutes": wait_secs / 60}},
        voice("second"),
        {"id": "lost", "node_type": "DROPPED", "config": {}},
    ]
    edges = [("first", "wait", None), ("wait", "second", None), ("second", "lost", None)]
    definition = {
        "nodes": nodes,
        "edges": [
            {"id": f"e{i}", "from_node_id": a, "to_node_id": b, "label": label}
            for i, (a, b, label) in enumerate(edges, start=1)
        ],
    }
    response = runtime.client.post(
        "/v1/workflows",
        json={"title": "call, wait, call", "definition": definition, "status": "active"},
    )
    assert response.status_code in (200, 201), response.text
    wf = response.json()["id"]
    services.leads.enroll(org, wf, [{"phone_number": "+12125550123"}])
    rows, _ = services.leads.list(org, wf, page=1, limit=10, status=None, current_node_id=None)
    (lead_id,) = [r.id for r in rows]

    record = runtime.wait_for(
        lambda: (r := services.leads.get(org, wf, lead_id)).status == "COMPLETED" and r
    )
    assert record.engine.outcome == "dropped"
    path = [v["node_id"] for v in services.leads.history(org, wf, lead_id)["history"]]
    assert path == ["first", "wait", "second", "lost"]
    placed = _placed_at(runtime)
    assert len(placed) == 2
    # the second call waited for the first's ring (1 s) and the TIME node's durable timer
    assert (placed[1] - placed[0]).total_seconds() >= wait_secs
