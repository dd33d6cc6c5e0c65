"""A Temporal worker PROCESS killed mid-run (SIGKILL): another worker process takes over and
every execution completes with exactly one dispatch per step attempt (the simulator's durable
ledger counts placements per idempotency key, however often a key is re-sent)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from reachflow.api import create_app
from reachflow.bootstrap import Services, bootstrap
from reachflow.runtime.temporal.devserver import DevServer
from reachflow.settings import Settings
from tests.helpers import make_agent

N = 6
STEPS = 3


def wait_for(check: Callable[[], Any], timeout: float, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out")


class Setup:
    def __init__(self, services: Services, client: TestClient, org: str, env: dict[str, str]):
        self.services = services
        self.client = client
        self.org = org
        self.env = env
        self.workers: list[subprocess.Popen[bytes]] = []

    def start_worker(self) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "reachflow.cli", "temporal-worker"],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.workers.append(process)
        return process


@pytest.fixture
def setup(temporal_server: DevServer, tmp_path: Path, sqlite_template: Path) -> Iterator[Setup]:
    db = tmp_path / "reachflow.db"
    shutil.copy(sqlite_template, db)
    queue = f"reachflow-kill-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        database_url=f"sqlite:///{db}",
        runtime="temporal",
        temporal_address=temporal_server.address,
        temporal_task_queue=queue,
    )
    env = {
        **os.environ,
        "REACHFLOW_DATABASE_URL": settings.database_url,
        "REACHFLOW_RUNTIME": "temporal",
        "REACHFLOW_TEMPORAL_ADDRESS": temporal_server.address,
        "REACHFLOW_TEMPORAL_TASK_QUEUE": queue,
        "REACHFLOW_TEMPORAL_ACTIVITY_THREADS": "8",
        "REACHFLOW_LOG_LEVEL": "WARNING",
    }
    services = bootstrap(settings, migrate=False)
    org, key = services.accounts.create_api_key("acme")
    with TestClient(create_app(services, run_worker=False)) as client:
        client.headers["X-API-Key"] = key
        ready = Setup(services, client, org, env)
        try:
            yield ready
        finally:
            for process in ready.workers:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in ready.workers:
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)
    services.close()


def _statuses(setup: Setup, workflow_id: str, ids: list[str]) -> dict[str, str]:
    out = {}
    for execution_id in ids:
        response = setup.client.get(f"/api/v1/workflow/{workflow_id}/execution/{execution_id}")
        assert response.status_code == 200, response.text
        out[execution_id] = response.json()["status"]
    return out


def test_a_killed_worker_process_loses_nothing_and_repeats_no_dispatch(setup: Setup) -> None:
    agent = make_agent(
        setup.services, setup.org, defaultDisposition="NO_ANSWER", ringDurationSecs=1
    )
    steps = [
        {
            "type": "CALL",
            "order": order,
            "delayInSecs": 1,
            "leaveVoicemail": False,
            "needsTCPACompliance": False,
            "agentId": agent,
        }
        for order in range(1, STEPS + 1)
    ]
    response = setup.client.post(
        "/api/v1/workflow",
        json={
            "name": "kill",
            "active": True,
            "timezone": "America/New_York",
            "definition": {"steps": steps},
        },
    )
    assert response.status_code in (200, 201), response.text
    workflow_id = response.json()["id"]

    first = setup.start_worker()
    ids = []
    for i in range(N):
        created = setup.client.post(
            f"/api/v1/workflow/{workflow_id}/execution",
            json={
                "customerLeadId": f"lead-{i}",
                "primaryPhone": f"+1212555{i:04d}",
                "zipcode": "10001",
                "state": "NY",
            },
        )
        assert created.status_code in (200, 201), created.text
        ids.append(created.json()["id"])

    ledger = setup.services.ledger
    # mid-run: some calls placed, not all
    wait_for(lambda: len(ledger.placements()) >= N, timeout=30)
    assert len(ledger.placements()) < N * STEPS
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    assert first.returncode == -signal.SIGKILL

    setup.start_worker()
    wait_for(
        lambda: set(_statuses(setup, workflow_id, ids).values()) == {"COMPLETED"},
        timeout=60,
        every=0.25,
    )
    placements = ledger.placements()
    # one step attempt per step (NO_ANSWER does not retry a step) and one placement per attempt
    attempts = 0
    for execution_id in ids:
        body = setup.client.get(f"/api/v1/workflow/{workflow_id}/execution/{execution_id}").json()
        assert [s["status"] for s in body["stepExecutions"]] == ["COMPLETED"] * STEPS
        attempts += len(body["stepExecutions"])
    assert attempts == N * STEPS
    assert len(placements) == N * STEPS
