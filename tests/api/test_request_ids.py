"""Request ids on every response and in every error body; the generic 500 (JSON, logged with
the request id, the connection kept); database contention as 503 BUSY, never 500."""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from typing import Any

import httpx
import psycopg
import psycopg.errors
import pytest
import sqlalchemy as sa
import sqlalchemy.exc
from fastapi.testclient import TestClient

from reachflow.api.errors import is_busy
from reachflow.bootstrap import Services
from tests.api.test_limits import AGENT, app_with, error, live_server

NEW_ID = re.compile(r"[0-9a-f]{32}")


def test_every_response_carries_a_request_id(services: Services) -> None:
    with TestClient(app_with(services)) as client:
        first = client.get("/healthz").headers["X-Request-Id"]
        second = client.get("/healthz").headers["X-Request-Id"]
        assert NEW_ID.fullmatch(first)
        assert NEW_ID.fullmatch(second)
        assert first != second
        own = "client-7._Z" + "x" * 117  # 128 characters of the allowed set
        assert client.get("/healthz", headers={"X-Request-Id": own}).headers["X-Request-Id"] == own
        for bad in ("", "x" * 129, "a b", "a/b", "id;drop", "é"):
            header = bad.encode("utf-8") if bad == "é" else bad
            got = client.get("/healthz", headers={"X-Request-Id": header}).headers["X-Request-Id"]
            assert NEW_ID.fullmatch(got), (bad, got)


def test_every_error_body_carries_the_request_id(
    services: Services, org_key: tuple[str, str]
) -> None:
    with TestClient(app_with(services)) as client:
        unauthorized = client.get("/api/v1/agents", headers={"X-Request-Id": "trace-401"})
        assert error(unauthorized, 401, "UNAUTHORIZED")["requestId"] == "trace-401"
        client.headers["X-API-Key"] = org_key[1]
        error(client.get("/api/v1/agents/nope"), 404, "NOT_FOUND")
        error(client.get("/no/such/route"), 404, "NOT_FOUND")
        invalid = client.post("/api/v1/agents", content=b"{", headers={"X-Request-Id": "r-400"})
        assert invalid.status_code == 400
        assert invalid.json()["requestId"] == invalid.headers["X-Request-Id"] == "r-400"


def test_an_unexpected_error_is_a_json_500_logged_with_its_request_id(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    app = app_with(services)

    @app.get("/test/boom")
    def boom() -> None:
        raise RuntimeError("kaboom")

    with (
        TestClient(app) as client,
        caplog.at_level(logging.ERROR, logger="reachflow.api"),
    ):
        response = client.get("/test/boom", headers={"X-Request-Id": "boom-1"})
    assert response.status_code == 500
    assert response.json() == {
        "status": 500,
        "code": "INTERNAL",
        "message": "internal error",
        "success": False,
        "field": None,
        "errors": [],
        "requestId": "boom-1",
    }
    assert "kaboom" not in response.text
    [record] = [r for r in caplog.records if r.name == "reachflow.api"]
    assert "boom-1" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


def test_after_a_500_the_keep_alive_connection_serves_the_next_request(
    services: Services, org_key: tuple[str, str]
) -> None:
    app = app_with(services)

    @app.get("/test/boom")
    async def boom() -> None:
        raise RuntimeError("kaboom")

    def local_port(response: httpx.Response) -> int:
        port: int = response.extensions["network_stream"].get_extra_info("client_addr")[1]
        return port

    with live_server(app) as base, httpx.Client(base_url=base) as http:
        http.headers["X-API-Key"] = org_key[1]
        failed = http.get("/test/boom")
        body = error(failed, 500, "INTERNAL")
        assert NEW_ID.fullmatch(body["requestId"])
        assert failed.headers["Content-Type"] == "application/json"
        assert failed.headers.get("Connection", "keep-alive") == "keep-alive"
        after = http.post("/api/v1/agents", json=AGENT)
        assert after.status_code == 201, after.text
        assert local_port(after) == local_port(failed)  # the same connection


# -- database contention -------------------------------------------------------------------


def test_contention_errors_are_recognised() -> None:
    def wrapped(orig: BaseException) -> sqlalchemy.exc.OperationalError:
        return sqlalchemy.exc.OperationalError("INSERT ...", {"phone": "+1"}, orig)

    busy = [
        wrapped(sqlite3.OperationalError("database is locked")),
        wrapped(sqlite3.OperationalError("database table is locked: agents")),
        wrapped(psycopg.errors.SerializationFailure("could not serialize access")),
        wrapped(psycopg.errors.DeadlockDetected("deadlock detected")),
        wrapped(psycopg.errors.LockNotAvailable("canceling statement due to lock timeout")),
        psycopg.errors.DeadlockDetected("deadlock detected"),
    ]
    try:  # wrapped once more, as a service that re-raises would
        raise RuntimeError("enrolment failed") from busy[0]
    except RuntimeError as exc:
        busy.append(exc)
    assert all(is_busy(exc) for exc in busy)
    other = [
        wrapped(sqlite3.OperationalError("no such table: agents")),
        wrapped(psycopg.errors.UndefinedTable("relation does not exist")),
        sqlalchemy.exc.IntegrityError("INSERT ...", {}, Exception("duplicate")),
        RuntimeError("database is locked"),  # only the driver's own error counts
    ]
    assert not any(is_busy(exc) for exc in other)


def test_a_postgresql_deadlock_is_503_busy(services: Services) -> None:
    app = app_with(services)

    @app.get("/test/deadlock")
    def deadlock() -> None:
        orig = psycopg.errors.DeadlockDetected("deadlock detected")
        raise sqlalchemy.exc.OperationalError("UPDATE ...", {}, orig)

    with TestClient(app) as client:
        response = client.get("/test/deadlock")
    body = error(response, 503, "BUSY")
    assert response.headers["Retry-After"] == "1"
    assert body["message"] == "the database is busy; retry shortly"


def test_a_write_locked_out_past_the_timeout_is_503_busy(
    services: Services, org_key: tuple[str, str], db_url: str
) -> None:
    """Another connection holds the write lock (SQLite ``BEGIN EXCLUSIVE``, PostgreSQL an
    exclusive table lock) while a write request comes: it waits its timeout (shortened here
    to 0.2 s; reachflow's own SQLite busy timeout is 30 s), then answers 503, and succeeds once
    the lock is gone."""
    engine = services.db.engine

    @sa.event.listens_for(engine, "connect")
    def _short_timeout(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        if services.db.is_sqlite:
            cursor.execute("PRAGMA busy_timeout=200")
        else:
            cursor.execute("SET lock_timeout = 200")
            dbapi_conn.commit()
        cursor.close()

    engine.dispose()  # new connections, with the short timeout
    if services.db.is_sqlite:
        holder: Any = sqlite3.connect(engine.url.database or "", isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
    else:
        holder = psycopg.connect(db_url)
        holder.execute("LOCK TABLE agents IN ACCESS EXCLUSIVE MODE")
    try:
        with TestClient(app_with(services)) as client:
            client.headers["X-API-Key"] = org_key[1]
            started = time.monotonic()
            response = client.post("/api/v1/agents", json=AGENT)
            waited = time.monotonic() - started
            body = error(response, 503, "BUSY")
            assert response.headers["Retry-After"] == "1"
            assert body["field"] is None
            assert waited >= 0.2
            holder.rollback()
            response = client.post("/api/v1/agents", json=AGENT)
            assert response.status_code == 201, response.text
    finally:
        holder.close()
