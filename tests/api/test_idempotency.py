"""Idempotency keys on every creating POST: the same key and body answer the original result,
another body is a 409, keys expire, and racing duplicates create one resource, on SQLite and
PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from reachflow.bootstrap import Services
from reachflow.runtime.clock import VirtualClock
from tests.helpers import lead, seed_002_workflow

RACERS = 8


def _workflow(client: TestClient, **extra: Any) -> str:
    agents = [
        client.post(
            "/api/v1/agents",
            json={"name": channel, "channel": channel, "config": {"defaultDisposition": "ENDED"}},
        ).json()["id"]
        for channel in ("CALL", "TEXT")
    ]
    created = client.post("/api/v1/workflow", json={**seed_002_workflow(*agents), **extra})
    assert created.status_code == 201, created.text
    workflow_id: str = created.json()["id"]
    return workflow_id


def _count(services: Services, table: str) -> int:
    with services.db.engine.connect() as conn:
        return int(conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one())


def _race(call: Callable[[], Any], n: int = RACERS) -> list[Any]:
    """``n`` threads make the same call at once; their answers."""
    barrier = threading.Barrier(n)
    answers: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        answers[i] = call()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return answers


def test_the_same_key_and_body_answer_the_first_execution(
    client: TestClient, services: Services
) -> None:
    workflow_id = _workflow(client)
    url = f"/api/v1/workflow/{workflow_id}/execution"
    first = client.post(url, json=lead(), headers={"Idempotency-Key": "k-1"})
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    again = client.post(url, json=lead(), headers={"Idempotency-Key": "k-1"})
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    # The same JSON with its keys in another order is the same request.
    reordered = dict(reversed(list(lead().items())))
    assert (
        client.post(url, json=reordered, headers={"Idempotency-Key": "k-1"}).json()["id"]
        == (first.json()["id"])
    )
    assert _count(services, "executions") == 1
    # Without a key, every request creates.
    client.post(url, json=lead())
    assert _count(services, "executions") == 2


def test_the_same_key_with_another_request_is_a_409(client: TestClient, services: Services) -> None:
    workflow_id = _workflow(client)
    url = f"/api/v1/workflow/{workflow_id}/execution"
    assert client.post(url, json=lead(), headers={"Idempotency-Key": "k-2"}).status_code == 201
    for other in (
        client.post(url, json=lead(lead_id="other"), headers={"Idempotency-Key": "k-2"}),
        client.post(f"{url}/bulk", json={"leads": [lead()]}, headers={"Idempotency-Key": "k-2"}),
    ):
        assert other.status_code == 409, other.text
        body = other.json()
        assert body["code"] == "IDEMPOTENCY_KEY_REUSED"
        assert body["field"] == "Idempotency-Key"
    assert _count(services, "executions") == 1


def test_a_key_is_per_organization(client: TestClient, services: Services) -> None:
    workflow_id = _workflow(client)
    url = f"/api/v1/workflow/{workflow_id}/execution"
    assert client.post(url, json=lead(), headers={"Idempotency-Key": "shared"}).status_code == 201
    other = services.accounts.create_api_key("globex")[1]
    # Another organization's request with the same key is its own (here: a 404 workflow).
    response = client.post(
        url, json=lead(), headers={"Idempotency-Key": "shared", "X-API-Key": other}
    )
    assert response.status_code == 404


def test_keys_expire(client: TestClient, services: Services, clock: VirtualClock) -> None:
    workflow_id = _workflow(client)
    url = f"/api/v1/workflow/{workflow_id}/execution"
    first = client.post(url, json=lead(), headers={"Idempotency-Key": "k-3"}).json()["id"]
    clock.advance(timedelta(hours=23, minutes=59))
    assert client.post(url, json=lead(), headers={"Idempotency-Key": "k-3"}).json()["id"] == first
    clock.advance(timedelta(minutes=1))
    later = client.post(url, json=lead(lead_id="new"), headers={"Idempotency-Key": "k-3"})
    assert later.status_code == 201
    assert later.json()["id"] != first
    assert _count(services, "idempotency_keys") == 1


@pytest.mark.parametrize("key", [b"", b"has space", b"x" * 256, "é".encode()])
def test_a_malformed_key_is_a_400(client: TestClient, key: bytes) -> None:
    workflow_id = _workflow(client)
    response = client.post(
        f"/api/v1/workflow/{workflow_id}/execution",
        json=lead(),
        headers={"Idempotency-Key": key},
    )
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "Idempotency-Key"


def test_a_bulk_replay_answers_the_original_rows(client: TestClient, services: Services) -> None:
    workflow_id = _workflow(client)
    body = {"leads": [lead(), lead(phone="+1212", lead_id="bad"), lead("+12125550124", "b")]}
    url = f"/api/v1/workflow/{workflow_id}/execution/bulk"
    first = client.post(url, json=body, headers={"Idempotency-Key": "bulk-1"})
    assert first.status_code == 201, first.text
    again = client.post(url, json=body, headers={"Idempotency-Key": "bulk-1"})
    assert again.status_code == 201
    assert again.json() == first.json()
    assert _count(services, "executions") == 2


def test_a_workflow_create_replays(client: TestClient, services: Services) -> None:
    _workflow(client)
    before = _count(services, "workflows")
    body = client.get("/api/v1/workflow").json()["workflows"][0]
    create = {k: body[k] for k in ("name", "definition", "timezone")}
    first = client.post("/api/v1/workflow", json=create, headers={"Idempotency-Key": "wf-1"})
    again = client.post("/api/v1/workflow", json=create, headers={"Idempotency-Key": "wf-1"})
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert _count(services, "workflows") == before + 1


def test_racing_duplicate_creates_make_one_execution(
    client: TestClient, services: Services
) -> None:
    workflow_id = _workflow(client)
    url = f"/api/v1/workflow/{workflow_id}/execution"
    answers = _race(lambda: client.post(url, json=lead(), headers={"Idempotency-Key": "race"}))
    assert [a.status_code for a in answers] == [201] * RACERS, [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    assert sum(a.headers.get("idempotent-replayed") == "true" for a in answers) == RACERS - 1
    assert _count(services, "executions") == 1
    assert _count(services, "idempotency_keys") == 1


def test_racing_duplicate_bulk_creates_make_one_batch(
    client: TestClient, services: Services
) -> None:
    workflow_id = _workflow(client)
    body = {"leads": [lead(f"+1212555{n:04d}", f"lead-{n}") for n in range(20)]}
    url = f"/api/v1/workflow/{workflow_id}/execution/bulk"
    answers = _race(lambda: client.post(url, json=body, headers={"Idempotency-Key": "bulk"}))
    assert [a.status_code for a in answers] == [201] * RACERS
    assert len({str(a.json()) for a in answers}) == 1
    assert _count(services, "executions") == 20


def test_racing_public_sessions_make_one_session(client: TestClient, services: Services) -> None:
    workflow_id = _workflow(client, publicExecute=True, tcpaSchedule=None)
    key = services.accounts.create_api_key("acme", scope="publishable")[1]
    body = {
        "sourceSystem": "checkout",
        "sourceEntityType": "order",
        "idempotencyKey": "order-9",
        "requestPayload": {"primaryPhone": "+12125550123", "customerLeadId": "c-9"},
    }
    url = f"/v1/public/workflows/{workflow_id}/executions"
    answers = _race(
        lambda: client.post(
            url, json=body, headers={"Authorization": f"Bearer {key}", "X-API-Key": ""}
        )
    )
    assert [a.status_code for a in answers] == [200] * RACERS, [a.text for a in answers]
    assert len({a.json()["data"]["execution"]["id"] for a in answers}) == 1
    assert len({a.json()["data"]["clientToken"] for a in answers}) == RACERS
    assert _count(services, "public_sessions") == 1
    assert _count(services, "executions") == 1


def test_dialnexa_workflow_creates_and_lead_uploads_replay(
    client: TestClient, services: Services
) -> None:
    first = client.post("/v1/workflows", json={"title": "graph"}, headers={"Idempotency-Key": "g"})
    again = client.post("/v1/workflows", json={"title": "graph"}, headers={"Idempotency-Key": "g"})
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    other = client.post("/v1/workflows", json={"title": "other"}, headers={"Idempotency-Key": "g"})
    assert other.status_code == 409
    workflow_id = first.json()["id"]
    url = f"/v1/workflows/{workflow_id}/leads"
    csv = b"phone_number,first_name\n+12125550123,Ada\n+12125550124,Grace\n"
    headers = {"content-type": "text/csv", "Idempotency-Key": "upload-1"}
    uploaded = [client.post(url, content=csv, headers=headers) for _ in range(2)]
    assert [u.status_code for u in uploaded] == [201, 201]
    assert uploaded[0].json() == uploaded[1].json()
    assert uploaded[0].json()["leads_enrolled"] == 2
    assert _count(services, "executions") == 2
    changed = client.post(url, content=csv + b"+12125550125,Alan\n", headers=headers)
    assert changed.status_code == 409


def test_an_agent_create_replays_with_its_credentials(
    client: TestClient, services: Services
) -> None:
    body = {
        "name": "hook",
        "channel": "CALL",
        "provider": "webhook",
        "config": {"url": "https://example.com/x"},
    }
    first = client.post("/api/v1/agents", json=body, headers={"Idempotency-Key": "agent-1"})
    again = client.post("/api/v1/agents", json=body, headers={"Idempotency-Key": "agent-1"})
    assert first.status_code == again.status_code == 201, first.text
    assert again.json() == first.json()  # the generated secret shown again, as at first
    assert first.json()["config"]["secret"].startswith("whsec_")
    assert _count(services, "agents") == 1


def test_graph_nodes_edges_and_duplicates_replay(client: TestClient, services: Services) -> None:
    workflow_id = client.post("/v1/workflows", json={"title": "graph"}).json()["id"]
    base = f"/v1/workflows/{workflow_id}"
    node = {"node_type": "CONVERTED", "label": "won"}
    made = [
        client.post(f"{base}/nodes", json=node, headers={"Idempotency-Key": "n-1"})
        for _ in range(2)
    ]
    assert [m.status_code for m in made] == [201, 201], made[0].text
    assert made[0].json()["id"] == made[1].json()["id"]
    nodes = client.get(f"{base}/nodes").json()["data"]
    assert sum(n["label"] == "won" for n in nodes) == 1
    agent = client.post(
        "/api/v1/agents", json={"name": "c", "channel": "CALL", "config": {}}
    ).json()["id"]
    call = client.post(
        f"{base}/nodes", json={"node_type": "VOICE_CALL", "config": {"agent_id": agent}}
    ).json()["id"]
    edge = {"from_node_id": call, "to_node_id": made[0].json()["id"]}
    edges = [
        client.post(f"{base}/edges", json=edge, headers={"Idempotency-Key": "e-1"})
        for _ in range(2)
    ]
    assert [e.status_code for e in edges] == [201, 201], edges[0].text
    assert edges[0].json() == edges[1].json()
    assert len(client.get(f"{base}/edges").json()["data"]) == 1
    copies = [
        client.post(f"{base}/duplicate", headers={"Idempotency-Key": "d-1"}) for _ in range(2)
    ]
    assert [c.status_code for c in copies] == [201, 201]
    assert copies[0].json()["id"] == copies[1].json()["id"]
    assert _count(services, "workflows") == 2
