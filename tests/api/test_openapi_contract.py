"""The OpenAPI document is a real contract: request bodies, error responses, security schemes,
the seeds' parameter names; and the docs pages work offline."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

ERROR_BODY = {"$ref": "#/components/schemas/ErrorBody"}
#: The public surface (seed 004) answers its errors in the seed's envelope.
PUBLIC_ERROR = {"$ref": "#/components/schemas/PublicError"}
#: The operations that take a body (issue 9 counts 18), and nothing else.
WITH_BODY = {
    ("post", "/api/v1/agents"),
    ("put", "/api/v1/agents/{agentId}"),
    ("post", "/api/v1/workflow"),
    ("patch", "/api/v1/workflow/{workflowId}"),
    ("post", "/api/v1/workflow/{workflowId}/execution"),
    ("post", "/api/v1/workflow/{workflowId}/execution/bulk"),
    ("put", "/api/v1/workflow/{workflowId}/execution/{executionId}"),
    ("post", "/api/v1/workflow/{workflowId}/executions/cancel"),
    ("post", "/api/v1/executions/cancel"),
    ("post", "/api/v1/agent-calls/{callId}/result"),
    ("post", "/api/v1/suppressions"),
    ("post", "/api/v1/consents"),
    ("post", "/api/v1/inbound-texts"),
    ("post", "/v1/workflows"),
    ("patch", "/v1/workflows/{workflowId}"),
    ("post", "/v1/workflows/{workflowId}/nodes"),
    ("patch", "/v1/workflows/{workflowId}/nodes/{nodeId}"),
    ("post", "/v1/workflows/{workflowId}/edges"),
    ("post", "/v1/workflows/{workflowId}/leads"),
    ("post", "/v1/public/workflows/{id}/executions"),
    ("post", "/api/v1/webhooks"),
    ("patch", "/api/v1/webhooks/{webhookId}"),
    ("post", "/api/v1/webhooks/{webhookId}/rotate-secret"),
    ("post", "/api/v1/webhooks/{webhookId}/redeliver"),
    ("post", "/api/v1/workflow/validate"),
    ("post", "/v1/workflows/validate"),
}
UNAUTHENTICATED = {("get", "/healthz")}
#: Read with a client token (``?token=`` or a bearer token), not with an API key.
CLIENT_TOKEN = {("get", "/v1/public/executions/{id}"), ("get", "/v1/public/executions/{id}/stream")}
CAMEL_CASE = re.compile(r"[a-z][a-zA-Z0-9]*")


@pytest.fixture
def document(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]


def refs(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["$ref"]] if isinstance(value.get("$ref"), str) else []
        return found + [r for v in value.values() for r in refs(v)]
    if isinstance(value, list):
        return [r for v in value for r in refs(v)]
    return []


def test_every_operation_with_a_body_declares_its_schema(document: dict[str, Any]) -> None:
    with_body = {(m, p) for m, p, op in operations(document) if "requestBody" in op}
    assert with_body == WITH_BODY
    for method, path, operation in operations(document):
        if (method, path) not in WITH_BODY:
            continue
        body = operation["requestBody"]
        assert body["required"] is True
        schema = body["content"]["application/json"]["schema"]
        assert refs(schema), f"{method} {path}: no model schema"


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for ref in set(refs(document)):
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    assert "HTTPValidationError" not in schemas


def test_lead_upload_takes_json_multipart_csv_and_text_csv(document: dict[str, Any]) -> None:
    content = document["paths"]["/v1/workflows/{workflowId}/leads"]["post"]["requestBody"][
        "content"
    ]
    assert set(content) == {"application/json", "multipart/form-data", "text/csv"}
    assert len(content["application/json"]["schema"]["oneOf"]) == 3
    multipart = content["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[-1]
    file = document["components"]["schemas"][multipart]["properties"]["file"]
    assert file["format"] == "binary"


def test_every_operation_documents_its_errors_with_error_body(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        responses = operation["responses"]
        errors = {code for code in responses if code.startswith(("4", "5"))}
        assert {"400", "503"} <= errors, f"{method} {path}"
        if (method, path) not in UNAUTHENTICATED:
            assert {"401", "429"} <= errors, f"{method} {path}"
        if (method, path) in WITH_BODY:
            assert "413" in errors, f"{method} {path}"
        if "{" in path:
            assert "404" in errors, f"{method} {path}"
        expected = PUBLIC_ERROR if path.startswith("/v1/public/") else ERROR_BODY
        for code in errors:
            content = responses[code]["content"]
            assert content == {"application/json": {"schema": expected}}, (method, path, code)
    metrics = document["paths"]["/metrics"]["get"]["responses"]
    assert "403" in metrics
    assert "409" in document["paths"]["/v1/workflows/{workflowId}/activate"]["post"]["responses"]
    assert (
        "422" in document["paths"]["/api/v1/workflow/{workflowId}/execution"]["post"]["responses"]
    )


def test_error_body_schema(document: dict[str, Any]) -> None:
    schema = document["components"]["schemas"]["ErrorBody"]
    assert {"status", "message", "code"} <= set(schema["required"])
    assert {"success", "field", "errors", "requestId"} <= set(schema["properties"])


def test_security_schemes_are_the_api_key_header_and_bearer(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    by_type = {s["type"]: s for s in schemes.values()}
    assert by_type["apiKey"]["in"] == "header"
    assert by_type["apiKey"]["name"] == "X-API-Key"
    assert by_type["http"]["scheme"] == "bearer"
    for method, path, operation in operations(document):
        if (method, path) in UNAUTHENTICATED:
            continue
        if (method, path) in CLIENT_TOKEN:
            assert "security" not in operation, f"{method} {path}"
            query = {p["name"] for p in operation["parameters"] if p["in"] == "query"}
            assert "token" in query, f"{method} {path}"
            continue
        required = {name for requirement in operation["security"] for name in requirement}
        assert required == set(schemes), f"{method} {path}"


def test_path_parameters_follow_the_seeds(document: dict[str, Any]) -> None:
    names: set[str] = set()
    for method, path, operation in operations(document):
        in_path = set(re.findall(r"{([^}]+)}", path))
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        assert in_path == declared, f"{method} {path}"
        names |= in_path
    assert all(CAMEL_CASE.fullmatch(name) for name in names), names
    assert {"workflowId", "executionId", "nodeId", "edgeId", "leadId", "agentId"} <= names


def test_a_missing_key_is_our_401_body_on_every_scheme(client: TestClient) -> None:
    for headers in ({"X-API-Key": ""}, {"X-API-Key": "", "Authorization": "Basic abc"}):
        response = client.get("/api/v1/agents", headers=headers)
        assert response.status_code == 401
        assert response.json()["code"] == "UNAUTHORIZED"


# -- the docs pages, offline -------------------------------------------------------------------


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "spec-url") and value:
                self.urls.append(value)


LOOPBACK = {"localhost", "127.0.0.1", "::1", "testserver"}


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_use_no_cdn(client: TestClient, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200
    html = response.text
    for url in re.findall(r"https?://[^\s\"'<>)]+", html):
        assert urlsplit(url).hostname in LOOPBACK, url
    links = _Links()
    links.feed(html)
    scripts = [u for u in links.urls if u.endswith(".js")]
    assert scripts, "no script is loaded"
    for url in links.urls:
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert asset.content, url


def test_the_agent_schema_names_every_provider_the_service_takes() -> None:
    from typing import get_args

    from reachflow.api.schemas.feather import Provider
    from reachflow.services.accounts import PROVIDERS

    assert set(get_args(Provider)) == set(PROVIDERS)
