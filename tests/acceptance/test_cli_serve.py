"""The real CLI as subprocesses and real HTTP on loopback: the README's main job."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import lead, seed_002_workflow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reachflow.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    port = _free_port()
    env = {
        **os.environ,
        "REACHFLOW_DATABASE_URL": f"sqlite:///{tmp_path / 'reachflow.db'}",
        "REACHFLOW_PORT": str(port),
        "REACHFLOW_WORKER_POLL_SECONDS": "0.05",
    }
    key = _cli("api-key", "create", "--org", "acme", env=env).stdout.strip().splitlines()[-1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "reachflow.cli", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.05)
        yield base, key
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_serve_runs_an_execution_to_completion_over_http(server: tuple[str, str]) -> None:
    base, key = server
    with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=10) as http:
        call = http.post(
            "/api/v1/agents",
            json={
                "name": "c",
                "channel": "CALL",
                "config": {"defaultDisposition": "CALENDLY", "callDurationSecs": 0},
            },
        ).json()["id"]
        text = http.post("/api/v1/agents", json={"name": "t", "channel": "TEXT"}).json()["id"]
        body = seed_002_workflow(call, text)
        # The wall clock may be outside business hours and the contact's calling window.
        body.pop("workflowSchedule")
        for step in body["definition"]["steps"]:
            step["needsTCPACompliance"] = False
        wf = http.post("/api/v1/workflow", json=body).json()
        ex = http.post(f"/api/v1/workflow/{wf['id']}/execution", json=lead()).json()
        url = f"/api/v1/workflow/{wf['id']}/execution/{ex['id']}"
        events: list[str] = []
        for _ in range(200):  # the worker polls every 50 ms; wait on the observable state
            got = http.get(url).json()
            if got["status"] == "COMPLETED":
                events = [e["type"] for e in http.get(f"{url}/events").json()["events"]]
                break
            time.sleep(0.05)
        assert got["status"] == "COMPLETED"
        assert got["disposition"] == "CALENDLY"
        assert events[-1] == "finished"
        assert http.get(url, headers={"X-API-Key": "wrong"}).status_code == 401
