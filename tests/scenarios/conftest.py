"""One harness, both runtimes: each scenario in this folder runs on the embedded runtime (its
worker thread) and on Temporal (a worker against the session's real dev server), each on SQLite
and PostgreSQL, through a live API on loopback, on the real clock with short waits."""

from __future__ import annotations

import asyncio
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from reachflow.api import create_app
from reachflow.bootstrap import Services, bootstrap
from reachflow.settings import Settings
from tests.agents.test_webhook_agent import Endpoint, Received, Reply
from tests.conftest import empty_postgres
from tests.helpers import serve

#: Longest wait for a scenario's next state (a loaded machine is slow; nothing sleeps this).
WAIT = 45.0
#: (runtime, database). The embedded runtime on PostgreSQL is covered across tests/runtime; here
#: it is the Temporal runtime's production store that matters (and the suite's time).
RIGS = [
    pytest.param(("embedded", "sqlite"), id="embedded-sqlite"),
    pytest.param(("temporal", "sqlite"), id="temporal-sqlite", marks=pytest.mark.temporal),
    pytest.param(
        ("temporal", "postgresql"),
        id="temporal-postgresql",
        marks=[pytest.mark.temporal, pytest.mark.postgres],
    ),
]


@dataclass
class Rig:
    runtime: str
    services: Services
    api: str
    org: str
    http: httpx.Client
    endpoints: list[Endpoint] = field(default_factory=list)

    def wait_for(self, check: Callable[[], Any], timeout: float = WAIT) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out on the {self.runtime} runtime")

    def endpoint(self, respond: Callable[[Endpoint, Received], Reply]) -> Endpoint:
        made = Endpoint(respond)
        self.endpoints.append(made)
        return made

    def flush(self) -> None:
        """On Temporal, a create's workflow start is sent after its commit: wait for it."""
        if self.services.temporal is not None:
            self.services.temporal.flush()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(params=RIGS)
def rig(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[Rig]:
    runtime, database = request.param
    if database == "sqlite":
        shutil.copy(sqlite_template, tmp_path / "reachflow.db")
        db_url = f"sqlite:///{tmp_path / 'reachflow.db'}"
    else:
        db_url = request.getfixturevalue("pg_url")
        empty_postgres(db_url)
    # The callback URL must be known before the API listens: pick a port, then serve on it.
    port = _free_port()
    settings: dict[str, Any] = {
        "database_url": db_url,
        "public_url": f"http://127.0.0.1:{port}",
        "report_timeout_seconds": 60,
        # the scenarios poll the API for their next state; rate limits are tested elsewhere
        "rate_limit_per_key": "100000/minute",
    }
    stop = asyncio.Event()
    worker: threading.Thread | None = None
    loop: asyncio.AbstractEventLoop | None = None
    if runtime == "temporal":
        server = request.getfixturevalue("temporal_server")
        queue = f"reachflow-scenario-{uuid.uuid4().hex[:8]}"
        settings |= {
            "runtime": "temporal",
            "temporal_address": server.address,
            "temporal_task_queue": queue,
        }
    services = bootstrap(Settings(**settings), migrate=False)
    if runtime == "temporal":
        from reachflow.runtime.temporal.worker import run_worker

        loop = asyncio.new_event_loop()
        address = services.settings.temporal_address
        task_queue = services.settings.temporal_task_queue

        def work() -> None:
            assert loop is not None
            loop.run_until_complete(
                run_worker(services.engine, address, "default", task_queue, threads=8, stop=stop)
            )

        worker = threading.Thread(target=work, daemon=True)
        worker.start()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    api_server, api_thread = serve(
        create_app(services, run_worker=runtime == "embedded"), sock, WAIT
    )
    api = f"http://127.0.0.1:{port}"
    org, key = services.accounts.create_api_key("acme")
    http = httpx.Client(base_url=api, headers={"X-API-Key": key}, timeout=WAIT)
    made = Rig(runtime, services, api, org, http)
    try:
        yield made
    finally:
        for endpoint in made.endpoints:
            endpoint.gate.set()
        http.close()
        api_server.should_exit = True
        api_thread.join(WAIT)
        if loop is not None and worker is not None:
            loop.call_soon_threadsafe(stop.set)
            worker.join(WAIT)
        services.close()
        for endpoint in made.endpoints:
            endpoint.close()
        sock.close()
