"""What is Temporal's own in the Temporal runtime, against a real dev server: workflow results,
durable timers, the ``changed`` signal, replay. The scenarios both runtimes share are in
tests/scenarios. Short delays, real time."""

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
from reachflow.runtime.temporal.devserver import DevServer
from reachflow.runtime.temporal.worker import run_worker
from reachflow.runtime.temporal.workflow import WORKFLOW_NAME, ExecutionWorkflow, RunInput
from reachflow.settings import Settings
from tests.helpers import make_agent, short_cap

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


def _put(runtime: Runtime, workflow_id: str, execution_id: str, status: str) -> dict[str, Any]:
    response = runtime.client.put(
        f"/api/v1/workflow/{workflow_id}/execution/{execution_id}", json={"status": status}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_replay_of_a_recorded_history_catches_non_determinism(runtime: Runtime) -> None:
    from temporalio.worker import Replayer

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


def test_a_deferred_step_waits_on_a_durable_timer_then_completes(runtime: Runtime) -> None:
    place = open_place()
    cap = 5.0
    short_cap(runtime.services, cap)
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


def test_commands_reach_the_workflow_as_signals_carrying_what_changed(runtime: Runtime) -> None:
    place = open_place()
    workflow_id = _workflow(runtime, [{**_call(1), "delayInSecs": 3}, _call(2)], place[3])
    created = _start(runtime, workflow_id, place)
    execution_id = created["id"]

    async def changes() -> list[str]:
        client = await Client.connect(runtime.services.settings.temporal_address)
        handle = client.get_workflow_handle(created["temporalWorkflowId"])
        found: list[str] = await handle.query(ExecutionWorkflow.changes)
        return found

    assert _put(runtime, workflow_id, execution_id, "PAUSED")["status"] == "PAUSED"
    runtime.wait_for(lambda: "paused" in asyncio.run(changes()))
    assert _put(runtime, workflow_id, execution_id, "RUNNING")["status"] != "PAUSED"
    runtime.wait_for(lambda: "resumed" in asyncio.run(changes()))
    cancelled = runtime.client.post(
        f"/api/v1/workflow/{workflow_id}/executions/{execution_id}/cancel"
    ).json()
    assert cancelled["status"] == "CANCELLED"

    async def result() -> Any:
        client = await Client.connect(runtime.services.settings.temporal_address)
        handle = client.get_workflow_handle(created["temporalWorkflowId"])
        outcome = await handle.result()
        history = await handle.fetch_history()
        return outcome, history

    outcome, history = asyncio.run(result())
    assert outcome == "CANCELLED"
    signals = [
        e.workflow_execution_signaled_event_attributes
        for e in history.events
        if e.HasField("workflow_execution_signaled_event_attributes")
    ]
    assert {s.signal_name for s in signals} == {"changed"}
    assert sum(runtime.services.simulator.calls_placed.values()) == 0
