"""APPLICATION nodes in the running engine: a signed HTTP call on loopback, suppress, variables."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from reachflow.agents.http_action import signature
from reachflow.bootstrap import Services
from reachflow.runtime.clock import VirtualClock

PHONE = "+12125550123"
SECRET = "s3cret"


class Receiver(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append({"path": self.path, "headers": dict(self.headers), "raw": raw})
        self.send_response(200 if self.path == "/ok" else 500)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        return


@pytest.fixture
def endpoint() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []
    handler = type("Handler", (Receiver,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


def run_graph(
    services: Services, clock: VirtualClock, nodes: list[dict[str, Any]], edges: list[Any]
) -> tuple[str, str, str]:
    org, _ = services.accounts.create_api_key("acme")
    definition = {
        "nodes": nodes,
        "edges": [
            {"id": f"e{i}", "from_node_id": a, "to_node_id": b, "label": label}
            for i, (a, b, label) in enumerate(edges)
        ],
    }
    wf = services.graph_workflows.create(org, {"title": "t", "definition": definition}).id
    services.graph_workflows.activate(org, wf)
    services.leads.enroll(org, wf, [{"phone_number": PHONE, "first_name": "Ann"}])
    services.engine.run_until_idle(clock)
    [lead], _ = services.leads.list(org, wf, page=1, limit=10, status=None, current_node_id=None)
    return org, wf, lead.id


@pytest.mark.parametrize(("path", "outcome"), [("/ok", "converted"), ("/fail", "dropped")])
def test_http_action_sends_a_signed_request_and_branches_on_the_answer(
    services: Services,
    clock: VirtualClock,
    endpoint: tuple[str, list[dict[str, Any]]],
    path: str,
    outcome: str,
) -> None:
    base, received = endpoint
    nodes = [
        {
            "id": "notify",
            "node_type": "APPLICATION",
            "config": {
                "action": "http",
                "url": base + path,
                "secret": SECRET,
                "body": {"event": "lead.qualified"},
            },
        },
        {"id": "won", "node_type": "CONVERTED"},
        {"id": "lost", "node_type": "DROPPED"},
    ]
    org, wf, lead_id = run_graph(
        services, clock, nodes, [("notify", "won", "success"), ("notify", "lost", "failure")]
    )
    assert services.leads.get(org, wf, lead_id).engine.outcome == outcome
    [request] = received
    headers = {k.lower(): v for k, v in request["headers"].items()}
    expected = signature(SECRET, headers["x-reachflow-timestamp"], request["raw"])
    assert headers["x-reachflow-signature"] == expected
    assert headers["x-reachflow-idempotency-key"].endswith(":effect")
    body = json.loads(request["raw"])
    assert body["body"] == {"event": "lead.qualified"}
    assert body["phoneNumber"] == PHONE
    assert body["variables"] == {"first_name": "Ann"}


def test_unreachable_endpoint_takes_the_failure_branch(
    services: Services, clock: VirtualClock
) -> None:
    nodes = [
        {
            "id": "notify",
            "node_type": "APPLICATION",
            "config": {"action": "http", "url": "http://127.0.0.1:9/nothing"},
        },
        {"id": "won", "node_type": "CONVERTED"},
        {"id": "lost", "node_type": "DROPPED"},
    ]
    org, wf, lead_id = run_graph(
        services, clock, nodes, [("notify", "won", "success"), ("notify", "lost", "failure")]
    )
    assert services.leads.get(org, wf, lead_id).engine.outcome == "dropped"


def test_suppress_and_set_variable_actions(services: Services, clock: VirtualClock) -> None:
    nodes = [
        {
            "id": "tag",
            "node_type": "APPLICATION",
            "config": {"action": "set_variable", "key": "tier", "value": "gold"},
        },
        {
            "id": "is_gold",
            "node_type": "CONDITIONAL",
            "config": {
                "conditions": {
                    "logic": "AND",
                    "conditions": [
                        {"field": "variables.tier", "operator": "equals", "value": "gold"}
                    ],
                }
            },
        },
        {
            "id": "optout",
            "node_type": "APPLICATION",
            "config": {"action": "suppress", "channel": "TEXT", "reason": "gold tier: no texts"},
        },
        {"id": "end", "node_type": "DROPPED"},
    ]
    org, wf, lead_id = run_graph(
        services,
        clock,
        nodes,
        [
            ("tag", "is_gold", None),
            ("is_gold", "optout", "true"),
            ("is_gold", "end", "false"),
            ("optout", "end", None),
        ],
    )
    lead = services.leads.get(org, wf, lead_id)
    assert lead.engine.variables["tier"] == "gold"
    check = services.contacts.check(org, PHONE)
    assert check["channels"] == ["TEXT"]
    assert check["entries"][0].reason == "gold tier: no texts"
    assert check["entries"][0].source == "workflow"
