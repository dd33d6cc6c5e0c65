"""The app over real HTTP for the seed conformance suites (seeds 000-003).

``live`` serves ``reachflow.api.create_app(services)`` with uvicorn in a thread on 127.0.0.1,
port 0 (the kernel picks a free one), on the test's database (SQLite or PostgreSQL, the
``db_url`` fixture) and a virtual clock. Rate limits are off: the suites replay many requests
from one address. The engine does not run in the background: a test moves executions on with
``live.run(...)`` (the virtual clock makes every step deterministic).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import pytest
import uvicorn

from reachflow.api import create_app
from reachflow.bootstrap import Services, bootstrap
from reachflow.runtime.clock import VirtualClock
from reachflow.settings import Settings


@dataclass
class Live:
    services: Services
    clock: VirtualClock
    base_url: str
    organization_id: str
    api_key: str

    def client(self, **headers: str) -> httpx.Client:
        """A plain HTTP client on the server; no default headers (each test sends the seed's)."""
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30)

    def run(self, until: datetime | None = None, *, for_: timedelta | None = None) -> None:
        """Let the engine do what is due, up to ``until`` (or ``for_`` from now, or idle)."""
        if for_ is not None:
            until = self.clock.now() + for_
        self.services.engine.run_until_idle(self.clock, until=until)


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # a thread cannot take signals
        pass


@pytest.fixture
def live(db_url: str, clock: VirtualClock) -> Iterator[Live]:
    settings = Settings(database_url=db_url, rate_limit_enabled=False, bulk_limit=25)
    services = bootstrap(settings, clock=clock, migrate=False)
    organization_id, api_key = services.accounts.create_api_key("conformance")
    config = uvicorn.Config(
        create_app(services),
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="on",
    )
    server = _Server(config)
    thread = threading.Thread(target=server.run, name="conformance-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Live(services, clock, f"http://127.0.0.1:{port}", organization_id, api_key)
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        services.close()
