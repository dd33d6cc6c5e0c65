"""The status stream against a real server on loopback: a client connected before the payment
sees every status change of the session, in order, as it happens, and the stream ends at the
terminal status; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn

from reachflow.agents.signing import new_secret, sign
from reachflow.api import create_app
from reachflow.bootstrap import Services, bootstrap
from reachflow.runtime.clock import VirtualClock
from reachflow.settings import Settings

SECRET = new_secret()


@pytest.fixture
def services(db_url: str, clock: VirtualClock) -> Iterator[Services]:
    settings = Settings(
        database_url=db_url,
        payment_webhook_secret=SECRET,
        public_stream_poll_seconds=0.02,
        public_stream_keepalive_seconds=0.05,
    )
    built = bootstrap(settings, clock=clock, migrate=False)
    yield built
    built.close()


@pytest.fixture
def base_url(services: Services) -> Iterator[str]:
    server = uvicorn.Server(
        uvicorn.Config(create_app(services), host="127.0.0.1", port=0, log_config=None)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


class Listener(threading.Thread):
    """Reads the stream to its end, keeping each status event and each keep-alive."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__(daemon=True)
        self.url, self.token = url, token
        self.events: list[dict[str, Any]] = []
        self.ids: list[int] = []
        self.keepalives = 0
        self.first = threading.Event()

    def run(self) -> None:
        with (
            httpx.Client(timeout=60) as client,
            client.stream("GET", self.url, params={"token": self.token}) as response,
        ):
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            fields: dict[str, str] = {}
            for line in response.iter_lines():
                if line.startswith(":"):
                    self.keepalives += 1
                elif line == "":
                    if fields.get("event") == "status":
                        self.events.append(json.loads(fields["data"]))
                        self.ids.append(int(fields["id"]))
                        self.first.set()
                    fields = {}
                else:
                    name, _, value = line.partition(": ")
                    fields[name] = value


def test_a_live_client_sees_every_status_change_in_order(
    services: Services, clock: VirtualClock, base_url: str
) -> None:
    secret_key = services.accounts.create_api_key("acme")[1]
    publishable = services.accounts.create_api_key("acme", scope="publishable")[1]
    api = httpx.Client(base_url=base_url, headers={"X-API-Key": secret_key}, timeout=30)
    agent = api.post(
        "/api/v1/agents",
        json={"name": "c", "channel": "CALL", "config": {"defaultDisposition": "NO_ANSWER"}},
    ).json()["id"]
    step = {"type": "CALL", "agentId": agent, "needsTCPACompliance": False}
    workflow = api.post(
        "/api/v1/workflow",
        json={
            "name": "paid callback",
            "publicExecute": True,
            "price": {"amount": 900, "currency": "usd"},
            "tcpaSchedule": None,
            "definition": {
                "steps": [{**step, "order": 1}, {**step, "order": 2, "delayInSecs": 600}]
            },
        },
    )
    assert workflow.status_code == 201, workflow.text
    started = api.post(
        f"/v1/public/workflows/{workflow.json()['id']}/executions",
        headers={"Authorization": f"Bearer {publishable}", "X-API-Key": ""},
        json={
            "sourceSystem": "shop",
            "sourceEntityType": "order",
            "requestPayload": {"primaryPhone": "+12125550123"},
        },
    ).json()["data"]
    session = started["execution"]

    listener = Listener(
        f"{base_url}/v1/public/executions/{session['id']}/stream", started["clientToken"]
    )
    listener.start()
    assert listener.first.wait(10)
    assert [e["status"] for e in listener.events] == ["awaiting_payment"]

    raw = json.dumps({"checkoutSessionId": session["checkoutSessionId"], "paymentStatus": "paid"})
    paid = api.post(
        "/v1/public/payments/webhook",
        content=raw,
        headers={
            **sign(SECRET, raw, datetime.now(UTC)),
            "content-type": "application/json",
            "X-API-Key": "",
        },
    )
    assert paid.status_code == 200, paid.text
    # The first call, then the wait before the second: the listener sees it waiting.
    services.engine.run_until_idle(clock, until=clock.now() + timedelta(minutes=1))
    deadline = time.monotonic() + 10
    while listener.events[-1]["status"] != "workflow_waiting":
        assert time.monotonic() < deadline, listener.events
        time.sleep(0.02)
    services.engine.run_until_idle(clock)
    listener.join(timeout=20)
    assert not listener.is_alive(), "the stream did not end at the terminal status"

    assert [e["status"] for e in listener.events] == [
        "awaiting_payment",
        "payment_confirmed",
        "workflow_queued",
        "workflow_running",
        "workflow_waiting",
        "workflow_running",
        "workflow_succeeded",
    ]
    assert listener.ids == list(range(1, 8))
    assert [e["sequence"] for e in listener.events] == listener.ids
    assert listener.keepalives >= 1
    assert all(e["id"] == session["id"] for e in listener.events)
    api.close()
