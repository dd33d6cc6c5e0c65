"""Hostile bodies, paths and queries: every one is a 4xx with our JSON error body, never a 5xx,
and nothing stored before is lost. The cases are the ones a reliability review found (issue 9),
sent to every operation that takes a body, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from reachflow.api import create_app
from reachflow.bootstrap import Services
from tests.helpers import lead

LEAD = {"customerLeadId": "x", "primaryPhone": "+12125550123"}

HOSTILE_BODIES: dict[str, bytes] = {
    "5000 digits": b"1" * 5000,
    "nested lists": b"[" * 50_000 + b"]" * 50_000,
    "nested objects": b'{"a":' * 5000 + b"1" + b"}" * 5000,
    "NUL in a string": b'{"name": "a\\u0000b"}',
    "lone surrogate": b'{"name": "\\ud800"}',
    "lone surrogate key": b'{"\\udc00": 1}',
    "201-character name": json.dumps({"name": "x" * 201}).encode(),
    "list for a channel": b'{"channel": []}',
    "1e308": b'{"name": 1e308, "delay_minutes": 1e308}',
    "1e999": b'{"name": 1e999}',
    "NaN": b'{"name": NaN}',
    "long integer": b'{"name": 99999999999999999999999}',
    "startAt at year 1 +14:00": json.dumps(
        {**LEAD, "startAt": "0001-01-01T00:00:00+14:00"}
    ).encode(),
    "startAt at 9999 -14:00": json.dumps({**LEAD, "startAt": "9999-12-31T23:59:59-14:00"}).encode(),
    "not UTF-8": b'{"name": "\xff\xfe"}',
    "a list": b"[]",
    "a string": b'"x"',
    "empty": b"",
    "metadata over its limit": json.dumps({**LEAD, "metadata": {"a": "x" * 70_000}}).encode(),
}


@pytest.fixture
def ids(services: Services, client: TestClient) -> dict[str, str]:
    """A Feather workflow with its agent and an execution, and a DialNexa workflow: the
    parents every operation's path needs."""
    agent = client.post("/api/v1/agents", json={"name": "a", "channel": "CALL"}).json()["id"]
    steps = [{"type": "CALL", "order": 1, "agentId": agent, "delayInSecs": 0}]
    body = {"name": "w", "active": True, "definition": {"steps": steps}}
    wf = client.post("/api/v1/workflow", json=body).json()["id"]
    execution = client.post(f"/api/v1/workflow/{wf}/execution", json=lead()).json()["id"]
    graph = client.post("/v1/workflows", json={"title": "g"}).json()
    hook = client.post(
        "/api/v1/webhooks", json={"url": "https://example.com/events", "events": ["*"]}
    )
    assert hook.status_code == 201, hook.text
    return {
        "agent": agent,
        "workflow": wf,
        "execution": execution,
        "graph": graph.get("id") or graph["data"]["id"],
        "webhook": hook.json()["id"],
    }


def operations(ids: dict[str, str]) -> list[tuple[str, str]]:
    wf, graph = ids["workflow"], ids["graph"]
    return [
        ("POST", "/api/v1/agents"),
        ("PATCH", f"/api/v1/agents/{ids['agent']}"),
        ("POST", "/api/v1/workflow"),
        ("PATCH", f"/api/v1/workflow/{wf}"),
        ("POST", f"/api/v1/workflow/{wf}/execution"),
        ("POST", f"/api/v1/workflow/{wf}/execution/bulk"),
        ("PUT", f"/api/v1/workflow/{wf}/execution/{ids['execution']}"),
        ("POST", "/api/v1/executions/cancel"),
        ("POST", "/api/v1/suppressions"),
        ("POST", "/api/v1/consents"),
        ("POST", "/api/v1/inbound-texts"),
        ("POST", "/v1/workflows"),
        ("PATCH", f"/v1/workflows/{graph}"),
        ("POST", f"/v1/workflows/{graph}/nodes"),
        ("POST", f"/v1/workflows/{graph}/edges"),
        ("POST", f"/v1/workflows/{graph}/leads"),
        ("POST", "/api/v1/workflow/validate"),
        ("POST", "/v1/workflows/validate"),
        ("POST", "/api/v1/webhooks"),
        ("PATCH", f"/api/v1/webhooks/{ids['webhook']}"),
        ("POST", f"/api/v1/webhooks/{ids['webhook']}/rotate-secret"),
        ("POST", f"/api/v1/webhooks/{ids['webhook']}/redeliver"),
    ]


def assert_our_4xx(response: Any) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    body = response.json()
    assert body["status"] == response.status_code
    assert body["code"]
    assert body["requestId"] == response.headers["X-Request-Id"]


@pytest.fixture
def state_before(client: TestClient, ids: dict[str, str]) -> Iterator[None]:
    """What was stored before the onslaught is all still there after it."""
    before = client.get(f"/api/v1/workflow/{ids['workflow']}").json()
    hooks = client.get("/api/v1/webhooks").json()
    yield
    assert client.get(f"/api/v1/workflow/{ids['workflow']}").json() == before
    assert client.get("/api/v1/webhooks").json() == hooks
    execution = client.get(f"/api/v1/workflow/{ids['workflow']}/execution/{ids['execution']}")
    assert execution.status_code == 200


@pytest.mark.usefixtures("state_before")
def test_every_hostile_body_on_every_operation_is_a_4xx(
    client: TestClient, ids: dict[str, str]
) -> None:
    for method, path in operations(ids):
        for name, body in HOSTILE_BODIES.items():
            response = client.request(
                method, path, content=body, headers={"Content-Type": "application/json"}
            )
            if path.endswith("/validate") and response.status_code == 200:
                # A body that parses is answered with its problems, never stored.
                assert response.json()["valid"] is False, (path, name)
                continue
            assert 400 <= response.status_code < 500, (method, path, name, response.text[:300])
            assert_our_4xx(response)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/agents/a%00b",
        "/api/v1/workflow/a%00b",
        "/v1/workflows/a%00b",
        "/api/v1/agents/%ED%A0%80",
        "/api/v1/workflow/" + "x" * 5000,
        "/api/v1/workflow?offset=99999999999999999999",
        "/api/v1/workflow?limit=9223372036854775807",
        "/api/v1/workflow?offset=-1",
        "/v1/workflows?page=9223372036854775807",
        "/api/v1/suppressions?cursor=%00",
        "/api/v1/compliance/window?phone=%2B12125550123&at=0001-01-01T00:00:00%2B14:00",
        "/api/v1/compliance/window?phone=%2B12125550123&at=9999-12-31T23:59:59-14:00",
    ],
)
def test_hostile_paths_and_queries_are_a_4xx(client: TestClient, path: str) -> None:
    assert_our_4xx(client.get(path))


def test_json_over_the_size_limits_names_the_field(client: TestClient, ids: dict[str, str]) -> None:
    big = {"a": "x" * 70_000}
    wf, execution = ids["workflow"], ids["execution"]
    refused = [
        client.post(f"/api/v1/workflow/{wf}/execution", json={**LEAD, "metadata": big}),
        client.post(f"/api/v1/workflow/{wf}/execution", json={**LEAD, "variables": big}),
        client.post("/api/v1/agents", json={"name": "a", "channel": "CALL", "config": big}),
        client.post(
            f"/v1/workflows/{ids['graph']}/leads", json=[{"phone_number": "+12125550100", **big}]
        ),
    ]
    for response in refused:
        assert response.status_code == 400, response.text[:300]
        assert "bytes" in response.text
    # A PUT merge that would grow metadata past the limit is refused too, in two halves.
    half = {"b": "y" * 40_000}
    path = f"/api/v1/workflow/{wf}/execution/{execution}"
    assert client.put(path, json={"metadata": half}).status_code == 200
    second = client.put(path, json={"metadata": {"c": "z" * 40_000}})
    assert second.status_code == 400
    assert second.json()["field"] == "metadata"


def test_an_unexpected_error_is_our_json_500_and_the_next_request_is_served(
    services: Services, org_key: tuple[str, str]
) -> None:
    app = create_app(services)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("+12125550123 is not in any log")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom")
        assert response.status_code == 500
        assert response.json()["code"] == "INTERNAL"
        assert response.json()["requestId"] == response.headers["X-Request-Id"]
        assert client.get("/healthz").status_code == 200


def test_30_mb_bodies_on_the_webhook_and_validate_endpoints_are_413(
    client: TestClient, ids: dict[str, str]
) -> None:
    huge = b'{"name": "' + b"x" * (30 * 1024 * 1024) + b'"}'
    for path in (
        "/api/v1/workflow/validate",
        "/v1/workflows/validate",
        "/api/v1/webhooks",
        f"/api/v1/webhooks/{ids['webhook']}/redeliver",
    ):
        response = client.post(path, content=huge, headers={"Content-Type": "application/json"})
        assert response.status_code == 413, (path, response.text[:300])
        assert_our_4xx(response)
    assert len(client.get("/api/v1/webhooks").json()["webhooks"]) == 1


JSON = {"Content-Type": "application/json"}


def as_json(body: object) -> bytes:
    """JSON text with every non-ASCII character escaped: lone surrogates and NULs go as
    ``\\u`` escapes, as a hostile client would send them."""
    return json.dumps(body).encode()


def test_validate_answers_deep_huge_and_odd_definitions_with_problems(
    client: TestClient, ids: dict[str, str]
) -> None:
    """Valid JSON that is a hostile definition: problems (200 ``valid: false``) or a 400,
    never a 5xx, and nothing stored."""
    agent = ids["agent"]
    step = {"type": "CALL", "order": 1, "agentId": agent}
    nested: object = 1
    for _ in range(200):
        nested = {"a": nested}
    feather = [
        {"name": "w", "definition": {"steps": [{**step, "delayInSecs": 10**30}]}},
        {"name": "w", "definition": {"steps": [{**step, "delayInSecs": 1e308}]}},
        {"name": "w", "definition": {"steps": [{**step, "conditions": nested}]}},
        {"name": "a\u0000b", "definition": {"steps": [step]}},
        {"name": "w", "definition": {"steps": [{**step, "retryPolicy": {"NO_ANSWER": nested}}]}},
        {"name": "w", "definition": {"steps": [step] * 5000}},
    ]
    for body in feather:
        response = client.post("/api/v1/workflow/validate", content=as_json(body), headers=JSON)
        assert response.status_code in (200, 400), response.text[:300]
        if response.status_code == 200:
            assert response.json()["valid"] is False
        else:
            assert_our_4xx(response)
    wait = {"timeout_days": 1e308, "branches": [{"label": "x\ud800", "regex": "(a+)+$"}]}
    graphs = [
        {
            "title": "g",
            "definition": {
                "nodes": [{"id": "w", "node_type": "TIME", "config": {"delay_days": 10**30}}]
            },
        },
        {
            "title": "g",
            "definition": {"nodes": [{"id": "w", "node_type": "WAIT_FOR_REPLY", "config": wait}]},
        },
        {
            "title": "g",
            "definition": {
                "nodes": [{"id": "c", "node_type": "CONDITIONAL", "config": {"conditions": nested}}]
            },
        },
    ]
    for body in graphs:
        response = client.post("/v1/workflows/validate", content=as_json(body), headers=JSON)
        assert response.status_code in (200, 400), response.text[:300]
        if response.status_code == 200:
            assert response.json()["valid"] is False
        else:
            assert_our_4xx(response)
    # A lone surrogate and a NUL sent as raw JSON escapes.
    for path in ("/api/v1/workflow/validate", "/v1/workflows/validate"):
        for raw in (b'{"name": "\\ud800", "title": "\\ud800"}', b'{"title": "a\\u0000"}'):
            response = client.post(path, content=raw, headers={"Content-Type": "application/json"})
            assert response.status_code < 500, (path, raw, response.text[:300])


def test_a_revoked_key_creates_no_subscription(
    client: TestClient, services: Services, org_key: tuple[str, str]
) -> None:
    _, other = services.accounts.create_api_key("acme")
    services.accounts.revoke_api_key(org_key[1][:10])
    body = {"url": "https://example.com/events", "events": ["*"]}
    refused = client.post("/api/v1/webhooks", json=body)
    assert refused.status_code == 401
    assert_our_4xx(refused)
    assert (
        client.post(
            "/api/v1/webhooks",
            json=body,
            headers={"X-API-Key": "", "Authorization": f"Bearer {org_key[1]}"},
        ).status_code
        == 401
    )
    listed = client.get("/api/v1/webhooks", headers={"X-API-Key": other})
    assert listed.status_code == 200
    assert listed.json()["webhooks"] == []
