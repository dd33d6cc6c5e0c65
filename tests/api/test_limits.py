"""Body size limits (413) and rate limits (429 with Retry-After), in process and over real HTTP
(uvicorn on loopback), on SQLite and PostgreSQL."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from reachflow.api.app import create_app
from reachflow.api.ratelimit import RateLimiter
from reachflow.bootstrap import Services

MIB = 1024 * 1024
AGENT = {"name": "caller", "channel": "CALL", "config": {}}


def app_with(services: Services, **settings: Any) -> FastAPI:
    """The application over ``services``, with these settings changed."""
    services.settings = services.settings.model_copy(update=settings)
    return create_app(services)


@contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """``app`` served by uvicorn on a free loopback port; yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert (body["status"], body["code"], body["success"]) == (status, code, False)
    assert body["requestId"] == response.headers["X-Request-Id"]
    return body


def chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    """``total`` bytes as a stream (httpx sends it chunked, with no Content-Length)."""
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        sent += n
        yield b" " * n


def lead_csv(size: int) -> bytes:
    """A CSV of at least ``size`` bytes: leads with a 100 KB ``notes`` variable each (under
    the csv module's field limit)."""
    rows = [b"phone_number,first_name,notes"]
    while sum(len(r) + 1 for r in rows) < size:
        rows.append(b"+1212555%04d,Ann,%s" % (len(rows), b"x" * 100_000))
    return b"\n".join(rows) + b"\n"


# -- body size -----------------------------------------------------------------------------


def test_a_body_over_the_limit_is_413_from_content_length(
    services: Services, org_key: tuple[str, str]
) -> None:
    with TestClient(app_with(services)) as client:
        client.headers["X-API-Key"] = org_key[1]
        response = client.post(
            "/api/v1/agents",
            content=b" " * (MIB + 1),
            headers={"Content-Type": "application/json"},
        )
        body = error(response, 413, "PAYLOAD_TOO_LARGE")
        assert body["field"] == "body"
        assert body["message"] == f"the request body is larger than {MIB} bytes"
        assert response.headers["Connection"] == "close"
        # At the limit it is the application's to judge (here: a valid agent, padded).
        padded = b'{"name": "a", "channel": "CALL", "config": {}}'.ljust(MIB)
        at_limit = client.post(
            "/api/v1/agents", content=padded, headers={"Content-Type": "application/json"}
        )
        assert at_limit.status_code == 201, at_limit.text
    assert [a.name for a in services.agents.list(org_key[0])] == ["a"]


def test_a_chunked_body_is_counted_as_it_streams_and_cut_at_the_limit(
    services: Services, org_key: tuple[str, str]
) -> None:
    app = app_with(services, max_body_bytes=256 * 1024)
    seen: list[int] = []

    @app.post("/test/sink")
    async def sink(request: Request) -> dict[str, int]:
        async for chunk in request.stream():
            seen.append(len(chunk))
        return {"bytes": sum(seen)}

    with live_server(app) as base, httpx.Client(base_url=base, timeout=30) as http:
        http.headers["X-API-Key"] = org_key[1]
        small = http.post("/test/sink", content=chunks(200 * 1024))
        assert small.json() == {"bytes": 200 * 1024}
        seen.clear()
        response = http.post("/test/sink", content=chunks(3 * MIB))
        assert "content-length" not in response.request.headers  # really chunked
        error(response, 413, "PAYLOAD_TOO_LARGE")
        assert sum(seen) <= 256 * 1024  # the application never got more than the limit
        # A real route, and a body declared too large: refused the same way.
        response = http.post(
            "/api/v1/agents", content=chunks(MIB), headers={"Content-Type": "application/json"}
        )
        error(response, 413, "PAYLOAD_TOO_LARGE")
        response = http.post(
            "/api/v1/agents", content=b" " * 2 * MIB, headers={"Content-Type": "application/json"}
        )
        error(response, 413, "PAYLOAD_TOO_LARGE")
        # The client opens a new connection and goes on.
        assert http.post("/api/v1/agents", json=AGENT).status_code == 201


def test_lead_uploads_have_the_larger_limit(services: Services, org_key: tuple[str, str]) -> None:
    with TestClient(app_with(services)) as client:
        client.headers["X-API-Key"] = org_key[1]
        created = client.post("/v1/workflows", json={"title": "Uploads"})
        assert created.status_code == 201, created.text
        leads = f"/v1/workflows/{created.json()['id']}/leads"
        csv = lead_csv(3 * MIB)
        # The same 3 MiB anywhere else is too large.
        elsewhere = client.post("/api/v1/agents", content=csv, headers={"Content-Type": "text/csv"})
        error(elsewhere, 413, "PAYLOAD_TOO_LARGE")
        for kwargs in (
            {"files": {"file": ("leads.csv", csv, "text/csv")}},
            {"content": csv, "headers": {"Content-Type": "text/csv"}},
        ):
            response = client.post(leads, **kwargs)  # type: ignore[arg-type]
            # Accepted past the size check (its rows may still be refused, never as too large).
            assert response.status_code in (201, 400), response.text
        too_big = lead_csv(10 * MIB + 1)
        response = client.post(leads, content=too_big, headers={"Content-Type": "text/csv"})
        body = error(response, 413, "PAYLOAD_TOO_LARGE")
        assert body["message"] == f"the request body is larger than {10 * MIB} bytes"
        response = client.post(leads, files={"file": ("leads.csv", too_big, "text/csv")})
        error(response, 413, "PAYLOAD_TOO_LARGE")


# -- rate limits ---------------------------------------------------------------------------


def test_a_key_past_its_limit_gets_429_until_retry_after(
    services: Services, org_key: tuple[str, str]
) -> None:
    other_key = services.accounts.create_api_key("globex")[1]
    app = app_with(services, rate_limit_per_key="3/second")
    with TestClient(app) as client:
        client.headers["X-API-Key"] = org_key[1]
        for _ in range(3):
            assert client.get("/api/v1/agents").status_code == 200
        refused = client.get("/api/v1/agents")
        error(refused, 429, "RATE_LIMITED")
        wait = int(refused.headers["Retry-After"])
        assert 1 <= wait <= 1  # the window is a second
        # Another key is counted on its own; the health check is never limited.
        assert client.get("/api/v1/agents", headers={"X-API-Key": other_key}).status_code == 200
        assert all(client.get("/healthz").status_code == 200 for _ in range(10))
        time.sleep(wait)
        assert client.get("/api/v1/agents").status_code == 200
    # The limiter knows keys by their SHA-256 only.
    limiter: RateLimiter = app.state.rate_limiter
    assert not any(org_key[1] in name for name in limiter._storage.events)
    assert limiter._storage.events  # it did count


def test_a_bearer_key_is_the_same_key(services: Services, org_key: tuple[str, str]) -> None:
    with TestClient(app_with(services, rate_limit_per_key="2/second")) as client:
        assert client.get("/api/v1/agents", headers={"X-API-Key": org_key[1]}).status_code == 200
        bearer = {"Authorization": f"Bearer {org_key[1]}"}
        assert client.get("/api/v1/agents", headers=bearer).status_code == 200
        error(client.get("/api/v1/agents", headers=bearer), 429, "RATE_LIMITED")


def test_requests_without_a_key_are_limited_per_address(services: Services) -> None:
    with TestClient(app_with(services, rate_limit_unauthenticated="3/second")) as client:
        for _ in range(3):
            error(client.get("/api/v1/agents"), 401, "UNAUTHORIZED")
        refused = client.get("/api/v1/agents")
        error(refused, 429, "RATE_LIMITED")
        assert all(client.get("/healthz").status_code == 200 for _ in range(10))
        time.sleep(int(refused.headers["Retry-After"]))
        error(client.get("/api/v1/agents"), 401, "UNAUTHORIZED")


def test_failed_authentication_is_limited_per_address(
    services: Services, org_key: tuple[str, str]
) -> None:
    app = app_with(services, rate_limit_unauthenticated="3/second")
    with live_server(app) as base, httpx.Client(base_url=base) as http:
        for guess in range(3):  # a different wrong key each time
            error(
                http.get("/api/v1/agents", headers={"X-API-Key": f"rf_{guess}"}),
                401,
                "UNAUTHORIZED",
            )
        refused = http.get("/api/v1/agents", headers={"Authorization": "Bearer rf_guess"})
        error(refused, 429, "RATE_LIMITED")
        # While the address is blocked even a good key from it waits.
        blocked = http.get("/api/v1/agents", headers={"X-API-Key": org_key[1]})
        error(blocked, 429, "RATE_LIMITED")
        time.sleep(max(int(refused.headers["Retry-After"]), int(blocked.headers["Retry-After"])))
        assert http.get("/api/v1/agents", headers={"X-API-Key": org_key[1]}).status_code == 200


def test_rate_limits_can_be_turned_off(services: Services, org_key: tuple[str, str]) -> None:
    app = app_with(services, rate_limit_enabled=False, rate_limit_per_key="1/minute")
    assert app.state.rate_limiter is None
    with TestClient(app) as client:
        client.headers["X-API-Key"] = org_key[1]
        assert all(client.get("/api/v1/agents").status_code == 200 for _ in range(5))


def test_a_rate_limit_setting_must_parse() -> None:
    from pydantic import ValidationError

    from reachflow.settings import Settings

    with pytest.raises(ValidationError, match="rate_limit_per_key"):
        Settings(rate_limit_per_key="lots")
    assert Settings(rate_limit_per_key="10/second;600/minute").rate_limit_per_key
