"""What the console's tests share: a real HTTP server over the test's services (uvicorn in a
thread), Debian's Chromium driven by Playwright, and a small organization with data to show."""

from __future__ import annotations

import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import uvicorn
from fastapi.testclient import TestClient

from reachflow.api import create_app
from reachflow.bootstrap import Services
from reachflow.runtime.clock import VirtualClock
from tests.helpers import lead, make_agent, seed_002_workflow

#: Debian's Chromium (``apt-get install chromium``); never a browser Playwright downloads.
CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


def chromium_path() -> str | None:
    for path in CHROMIUM_PATHS:
        if shutil.which(path):
            return path
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serve(services: Services) -> Iterator[str]:
    """The API and console over ``services`` on a loopback port; yields the base URL."""
    port = _free_port()
    config = uvicorn.Config(
        create_app(services), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="console-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def hook_receiver(status: int = 200) -> Iterator[str]:
    """An HTTP endpoint on loopback that answers every POST with ``status`` (a webhook
    subscriber); yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="hook-receiver", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/events"
    finally:
        server.shutdown()
        server.server_close()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, "no CSRF field in the page"
    return found.group(1)


def sign_in(client: TestClient, key: str) -> TestClient:
    """Sign ``client`` in to the console with ``key`` (as a browser would)."""
    page = client.get("/console/sign-in")
    answer = client.post(
        "/console/sign-in",
        data={"csrf": csrf_of(page.text), "api_key": key, "next": "/console/executions"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return client


@dataclass
class Demo:
    org: str
    key: str
    call_agent: str
    text_agent: str
    workflow: str
    graph_workflow: str
    deferred: str  # an execution waiting for its window (a deferral with rules)
    finished: str  # an execution that ran to the end
    paused: str


def demo(services: Services, clock: VirtualClock, org_name: str = "acme") -> Demo:
    """One organization's data: seed 002's workflow, a DialNexa graph, executions in several
    states (one deferred to the next window by the calling rules), a suppression."""
    org, key = services.accounts.create_api_key(org_name)
    call = make_agent(services, org, "CALL", defaultDisposition="NO_ANSWER", callDurationSecs=42)
    text = make_agent(services, org, "TEXT", defaultDisposition="ENDED")
    workflow = services.workflows.create(org, seed_002_workflow(call, text)).id
    graph = services.graph_workflows.create(
        org, {"title": "Nurture (graph)", "status": "active", "definition": nurture(call)}
    ).id
    finished = services.executions.create(
        org, workflow, lead("+12125550101", "lead-finished", zipcode="10001")
    ).record.id
    paused = services.executions.create(
        org, workflow, lead("+12125550102", "lead-paused", zipcode="10001")
    ).record.id
    services.executions.update(org, workflow, paused, {"status": "PAUSED"})
    services.leads.enroll(org, graph, [{"phone_number": "+13125550103"}])
    services.engine.run_until_idle(clock, until=clock.now() + timedelta(days=2))
    # Late on Tuesday evening in Los Angeles: deferred to Wednesday morning by the rules.
    deferred = services.executions.create(
        org, workflow, lead("+13105550104", "lead-deferred", zipcode="90001")
    ).record.id
    services.engine.run_until_idle(clock, until=clock.now())
    services.contacts.suppress(
        org, {"phoneNumber": "+12125550199", "reason": "asked not to be called"}
    )
    return Demo(org, key, call, text, workflow, graph, deferred, finished, paused)


def nurture(agent: str) -> dict[str, Any]:
    """Seed 003's nurture graph: call, and if nobody answers wait 2 days and call again, at
    most three times."""
    three = {
        "logic": "AND",
        "conditions": [{"field": "attempts.call", "operator": "greater_than", "value": 2}],
    }
    nodes = [
        {"id": "call", "node_type": "VOICE_CALL", "label": "Call", "config": {"agent_id": agent}},
        {
            "id": "check",
            "node_type": "CONDITIONAL",
            "label": "3 tries?",
            "config": {"conditions": three},
        },
        {"id": "wait", "node_type": "TIME", "label": "Wait 2 days", "config": {"delay_days": 2}},
        {"id": "won", "node_type": "CONVERTED", "label": "Converted", "config": {}},
        {"id": "lost", "node_type": "DROPPED", "label": "Unresponsive", "config": {}},
    ]
    edges = [
        ("call", "won", "COMPLETED"),
        ("call", "check", None),
        ("check", "lost", "true"),
        ("check", "wait", "false"),
        ("wait", "call", None),
    ]
    return {
        "nodes": nodes,
        "edges": [
            {"id": f"e{i}", "from_node_id": a, "to_node_id": b, "label": label}
            for i, (a, b, label) in enumerate(edges, start=1)
        ],
    }
