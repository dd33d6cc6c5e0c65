"""Seed 004 (B3OS public execution sessions) as a conformance suite: its request examples sent
verbatim, its request fields, its status enum and its 200 response example's shape, against the
app on SQLite and PostgreSQL.

The examples are copied here as the seed prints them (the seed file, when present beside the
project in ``../shared/seeds``, is checked to still hold them).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from reachflow.api.schemas.public import PublicExecutionCreate
from reachflow.bootstrap import Services
from reachflow.domain.public_sessions import PublicStatus

SEEDS = Path(__file__).resolve().parents[3] / "shared" / "seeds"

#: The seed's four samples (curl, fetch, requests, Go) send this one request.
SEED_CURL = (
    "curl -X POST 'https://api.example.com/v1/public/workflows/string/executions' \\"
    "  -H 'Authorization: Bearer YOUR_API_TOKEN' \\"
    "  -H 'Content-Type: application/json' \\"
    "  -d '{}'"
)
SEED_REQUEST = {
    "method": "POST",
    "path": "/v1/public/workflows/string/executions",
    "headers": {"Authorization": "Bearer YOUR_API_TOKEN", "Content-Type": "application/json"},
    "body": "{}",
}
#: The seed's "200 Response", verbatim.
SEED_200 = (
    '{  "code": 200,  "data": {    "clientToken": "<string>",    "execution": {      '
    '"checkoutSessionId": "<string>",      "clientSafeMetadata": "<object>",      '
    '"createdAt": "<string>",      "externalRef": "<string>",      "finishedAt": "<string>",'
    '      "id": "<string>",      "idempotencyKey": "<string>",      "initiatedById": '
    '"<string>",      "initiatedByType": "<string>",      "orderId": "<string>",      '
    '"organizationId": "<string>",      "paymentStatus": "<string>",      "requestPayload": '
    '"<object>",      "responsePayload": "<object>",      "runId": "<string>",      '
    '"sourceEntityId": "<string>",      "sourceEntityType": "<string>",      "sourceSystem": '
    '"<string>",      "startedAt": "<string>",      "status": "awaiting_payment",      '
    '"statusReason": "<string>",      "updatedAt": "<string>",      "workflowId": "<string>"'
    '    }  },  "message": "success",  "requestId": "abc-123"}'
)
SEED_FIELDS = {
    "clientSafeMetadata": "object",
    "externalRef": "string",
    "idempotencyKey": "string",
    "requestPayload": "object",
    "sourceEntityId": "string",
    "sourceEntityType": "string",
    "sourceSystem": "string",
}
SEED_REQUIRED = {"sourceEntityType", "sourceSystem"}
SEED_ENUM = (
    "awaiting_payment, payment_confirmed, workflow_queued, workflow_running, "
    "workflow_waiting, workflow_succeeded, workflow_failed, workflow_cancelled"
)
SEED_ERRORS = {"400", "403", "404", "429"}
ENVELOPE = {"code", "data", "message", "requestId"}


def _seed_text() -> str | None:
    found = sorted(SEEDS.glob("004_*.txt"))
    return found[0].read_text() if found else None


def test_the_examples_here_are_the_seeds() -> None:
    text = _seed_text()
    if text is None:
        pytest.skip("the seeds are not beside the project")
    assert SEED_CURL in text
    assert SEED_200 in text
    assert f"Enum: {SEED_ENUM}" in text
    assert "requests.post('https://api.example.com/v1/public/workflows/string/executions', " in (
        text
    )
    body = text[text.index("Request Body required") : text.index("Responses")]
    fields = dict(re.findall(r"^(\w+) (object|string)(?: REQUIRED)?$", body, re.MULTILINE))
    assert fields == SEED_FIELDS
    assert set(re.findall(r"^(\w+) \w+ REQUIRED$", body, re.MULTILINE)) == SEED_REQUIRED


def _send(client: TestClient, token: str | None = None) -> Any:
    headers = dict(SEED_REQUEST["headers"])  # type: ignore[call-overload]
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    headers["X-API-Key"] = ""  # only the seed's headers count
    return client.request(
        str(SEED_REQUEST["method"]),
        str(SEED_REQUEST["path"]),
        content=str(SEED_REQUEST["body"]).encode(),
        headers=headers,
    )


def _envelope(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == ENVELOPE
    assert body["code"] == status
    assert isinstance(body["message"], str)
    assert body["requestId"] == response.headers["x-request-id"]
    return body


def test_the_seed_request_verbatim_is_refused_without_a_real_key(client: TestClient) -> None:
    body = _envelope(_send(client), 401)
    assert body["data"]["error"] == "UNAUTHORIZED"


def test_the_seed_request_with_a_publishable_key_names_the_required_fields(
    client: TestClient, services: Services
) -> None:
    key = services.accounts.create_api_key("acme", scope="publishable")[1]
    body = _envelope(_send(client, key), 400)
    assert {e["field"] for e in body["data"]["errors"]} == SEED_REQUIRED


def test_the_seed_request_with_its_required_fields_finds_no_workflow_string(
    client: TestClient, services: Services
) -> None:
    key = services.accounts.create_api_key("acme", scope="publishable")[1]
    response = client.post(
        str(SEED_REQUEST["path"]),
        json={
            "sourceSystem": "s",
            "sourceEntityType": "t",
            "requestPayload": {"primaryPhone": "+12125550123"},
        },
        headers={"Authorization": f"Bearer {key}", "X-API-Key": ""},
    )
    _envelope(response, 404)


def test_the_request_fields_are_the_seeds() -> None:
    schema = PublicExecutionCreate.model_json_schema()
    assert set(schema["properties"]) == set(SEED_FIELDS)
    assert set(schema["required"]) == SEED_REQUIRED


def test_the_status_enum_is_the_seeds() -> None:
    assert ", ".join(s.value for s in PublicStatus) == SEED_ENUM


def test_the_operation_documents_the_seeds_errors(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    operation = document["paths"]["/v1/public/workflows/{id}/executions"]["post"]
    assert set(operation["responses"]) >= SEED_ERRORS
    assert "200" in operation["responses"]
    assert [p["name"] for p in operation["parameters"] if p["in"] == "path"] == ["id"]


def test_a_200_answer_has_the_seed_example_shape(client: TestClient, services: Services) -> None:
    example = json.loads(SEED_200)
    agent = client.post(
        "/api/v1/agents",
        json={"name": "c", "channel": "CALL", "config": {"defaultDisposition": "ENDED"}},
    ).json()["id"]
    workflow = client.post(
        "/api/v1/workflow",
        json={
            "name": "priced",
            "publicExecute": True,
            "price": {"amount": 1500, "currency": "usd"},
            "definition": {"steps": [{"type": "CALL", "order": 1, "agentId": agent}]},
        },
    ).json()["id"]
    key = services.accounts.create_api_key("acme", scope="publishable")[1]
    response = client.post(
        f"/v1/public/workflows/{workflow}/executions",
        json={
            "sourceSystem": "s",
            "sourceEntityType": "t",
            "requestPayload": {"primaryPhone": "+12125550123"},
        },
        headers={"Authorization": f"Bearer {key}", "X-API-Key": ""},
    )
    answer = _envelope(response, 200)
    assert set(answer) == set(example)
    assert set(answer["data"]) == set(example["data"])
    assert set(answer["data"]["execution"]) == set(example["data"]["execution"])
    assert answer["message"] == example["message"]
    assert answer["data"]["execution"]["status"] == example["data"]["execution"]["status"]
    kinds = {"<string>": str, "<object>": dict}
    execution = answer["data"]["execution"]
    for name, placeholder in example["data"]["execution"].items():
        if execution[name] is not None and placeholder in kinds:
            assert isinstance(execution[name], kinds[placeholder]), name
    assert isinstance(answer["data"]["clientToken"], str)
