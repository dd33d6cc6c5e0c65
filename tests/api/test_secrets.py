"""Secrets: no password, key or phone number in any output or log; keys listed and revoked;
``/metrics`` only for an admin key. The real CLI and a real server as subprocesses, on SQLite and
PostgreSQL (where the database URL carries a password; the test server trusts any password)."""

from __future__ import annotations

import io
import logging
import os
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from reachflow.bootstrap import Services
from reachflow.cli import main
from reachflow.logs import configure_logging, request_id_var
from tests.conftest import PG_SERVER
from tests.helpers import lead, seed_002_workflow

PASSWORD = "s3cr3t-pw"
PHONE = "+14155550123"
MASKED = "+1415555****"
#: The number's digits: neither ``+14155550123`` nor ``%2B14155550123`` may appear anywhere.
DIGITS = PHONE.removeprefix("+")


# -- fixtures -------------------------------------------------------------------------------


def _admin() -> sa.Engine:
    return sa.create_engine(
        PG_SERVER.replace("postgresql://", "postgresql+psycopg://") + "/postgres",
        isolation_level="AUTOCOMMIT",
    )


def _with_password(database: str) -> str:
    url = make_url(PG_SERVER).set(password=PASSWORD, database=database)
    return url.render_as_string(hide_password=False)


@pytest.fixture
def pg_password_url() -> Iterator[str]:
    """A new, empty PostgreSQL database, reached by a URL that carries a password."""
    name = f"reachflow_secrets_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = _admin()
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield _with_password(name)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture
def secret_url(db_url: str, request: pytest.FixtureRequest) -> str:
    """On SQLite the test's own database file; on PostgreSQL a database of this test's own
    (it is sabotaged), reached with a password."""
    if db_url.startswith("sqlite"):
        return db_url
    url: str = request.getfixturevalue("pg_password_url")
    return url


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """``configure_logging`` (also run by ``main``) changes the root's handlers and level:
    put them back."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    saved = [(h, list(h.filters), h.formatter) for h in handlers]
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler, filters, formatter in saved:
        handler.filters[:] = filters
        handler.setFormatter(formatter)
    root.setLevel(level)


CliRun = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    restore_logging: None,
) -> CliRun:
    """``reachflow ARGS`` in this process (``main(argv)``): (exit code, stdout, stderr)."""
    monkeypatch.setenv("REACHFLOW_DATABASE_URL", db_url)
    capsys.readouterr()

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def _cli(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reachflow.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _env(url: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "REACHFLOW_DATABASE_URL": url, **extra}


# -- the database URL's password --------------------------------------------------------------


@pytest.mark.postgres
def test_migrate_prints_the_url_without_its_password(pg_password_url: str) -> None:
    result = _cli("migrate", env=_env(pg_password_url, REACHFLOW_LOG_LEVEL="DEBUG"))
    output = result.stdout + result.stderr
    assert PASSWORD not in output
    assert "schema up to date at postgresql://postgres:***@" in result.stdout
    # The migrations ran and logged (through the masking handler: the request id is "-").
    assert "Running upgrade 0003 -> 0004" in result.stderr
    assert " [-] " in result.stderr


@pytest.mark.postgres
def test_a_failing_migrate_shows_no_password() -> None:
    missing = _with_password(f"reachflow_missing_{uuid.uuid4().hex[:8]}")
    result = _cli("migrate", env=_env(missing), check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "does not exist" in output  # the cause is told, in a masked traceback
    assert PASSWORD not in output


def test_sql_parameters_are_never_in_an_error(services: Services) -> None:
    with pytest.raises(sa.exc.DBAPIError) as caught, services.db.begin() as conn:
        conn.execute(sa.text("SELECT * FROM no_such_table WHERE phone = :phone"), {"phone": PHONE})
    assert DIGITS not in str(caught.value)
    assert "parameters hidden" in str(caught.value)


# -- a failing request --------------------------------------------------------------------------


def _sabotage_executions(url: str) -> None:
    """Make every new execution fail in the database. On PostgreSQL a constraint: its error
    holds the whole row (``Failing row contains (...)``), phone number included. On SQLite a
    trigger (SQLite's errors hold no values; without ``hide_parameters`` SQLAlchemy's would)."""
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute(
                "CREATE TRIGGER refuse_executions BEFORE INSERT ON executions BEGIN "
                "SELECT RAISE(ABORT, 'refused by a test trigger'); END"
            )
        return
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "ALTER TABLE executions ADD CONSTRAINT refuse_executions CHECK (false) NOT VALID"
        )
    engine.dispose()


def test_a_failing_request_logs_neither_the_phone_nor_the_password(
    secret_url: str, tmp_path: Path
) -> None:
    port = _free_port()
    env = _env(secret_url, REACHFLOW_PORT=str(port))
    created = _cli("api-key", "create", "--org", "acme", env=env)
    key = created.stdout.strip().splitlines()[-1]
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reachflow.cli", "serve", "--no-worker"],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
            time.sleep(0.05)
        with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=10) as http:
            agents = [
                http.post("/api/v1/agents", json={"name": n, "channel": c}).json()["id"]
                for n, c in (("caller", "CALL"), ("texter", "TEXT"))
            ]
            wf = http.post("/api/v1/workflow", json=seed_002_workflow(*agents)).json()
            # The number in a query string reaches the access log, URL-encoded.
            assert http.get("/api/v1/workflow", params={"phone": PHONE}).status_code == 200
            _sabotage_executions(secret_url)
            # Last: without the API's own 500 handler uvicorn closes this connection.
            failed = http.post(f"/api/v1/workflow/{wf['id']}/execution", json=lead(PHONE))
            assert failed.status_code == 500
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    log = log_path.read_text()
    output = created.stdout + created.stderr + log
    assert PASSWORD not in output
    assert DIGITS not in output, [line for line in log.splitlines() if DIGITS in line]
    # The failure was logged, with its cause, without the statement's parameters, and the
    # number in PostgreSQL's message masked.
    assert "refuse" in log
    assert "parameters hidden" in log
    if not secret_url.startswith("sqlite"):
        assert "Failing row contains" in log
        assert MASKED in log
    assert "%2B1415555****" in log  # the access log line of the query
    request_id = failed.headers.get("x-request-id")
    if request_id:  # the request-id middleware, when installed, tags the failure's lines
        assert f"[{request_id}]" in log


def test_the_masking_covers_message_arguments_and_tracebacks(restore_logging: None) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    configure_logging("INFO")
    log = logging.getLogger("reachflow.test_secrets")
    token = request_id_var.set("req-42")
    try:
        log.info("dialling %s for %s", PHONE, {"phone": PHONE})
        log.info(f"connecting to postgresql://app:{PASSWORD}@db.internal/reachflow")
        try:
            raise RuntimeError(f"agent refused {PHONE}")
        except RuntimeError:
            log.exception("agent failed")
    finally:
        request_id_var.reset(token)
        root.removeHandler(handler)
    log.warning("after the request")  # no longer reaches the handler: nothing to assert
    text = stream.getvalue()
    assert DIGITS not in text
    assert PASSWORD not in text
    assert f"dialling {MASKED} for {{'phone': '{MASKED}'}}" in text
    assert "postgresql://app:***@db.internal/reachflow" in text
    assert f"RuntimeError: agent refused {MASKED}" in text
    assert text.count("[req-42]") == 3


# -- API keys -----------------------------------------------------------------------------------


def test_api_keys_are_listed_without_their_secret(services: Services, cli: CliRun) -> None:
    _, acme = services.accounts.create_api_key("acme")
    _, globex = services.accounts.create_api_key("globex")
    code, out, _ = cli("api-key", "create", "--org", "ops", "--admin")
    assert code == 0
    admin = out.strip().splitlines()[-1]
    assert "scope: admin" in out

    code, out, err = cli("api-key", "list")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].split() == ["PREFIX", "ORGANIZATION", "CREATED_AT", "REVOKED_AT", "SCOPE"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert set(rows) == {acme[:10], globex[:10], admin[:10]}
    assert rows[acme[:10]][0] == "acme"
    assert rows[acme[:10]][2:] == ["-", "organization"]
    assert rows[admin[:10]][0] == "ops"
    assert rows[admin[:10]][2:] == ["-", "admin"]
    for secret in (acme, globex, admin):
        assert secret not in out
        assert secret[10:20] not in out
    with services.db.read() as conn:
        hashes = conn.execute(sa.text("SELECT key_hash FROM api_keys")).scalars().all()
    assert len(hashes) == 3
    assert all(h not in out for h in hashes)

    code, out, _ = cli("api-key", "list", "--org", "globex")
    assert code == 0
    assert [line.split()[0] for line in out.strip().splitlines()[1:]] == [globex[:10]]

    code, _, err = cli("api-key", "list", "--org", "nobody")
    assert code == 1
    assert "no organization named 'nobody'" in err


def test_a_revoked_key_is_refused_at_once(
    client: TestClient, org_key: tuple[str, str], services: Services, cli: CliRun
) -> None:
    assert client.get("/api/v1/agents").status_code == 200
    _, other = services.accounts.create_api_key("acme")

    code, out, err = cli("api-key", "revoke", org_key[1][:10])
    assert code == 0, err
    assert out.startswith(f"revoked {org_key[1][:10]} (acme, organization) at ")

    response = client.get("/api/v1/agents")
    assert response.status_code == 401
    assert response.json()["code"] == "UNAUTHORIZED"
    bearer = {"X-API-Key": "", "Authorization": f"Bearer {org_key[1]}"}
    assert client.get("/api/v1/agents", headers=bearer).status_code == 401
    # The organization's other key still works.
    assert client.get("/api/v1/agents", headers={"X-API-Key": other}).status_code == 200

    code, out, _ = cli("api-key", "list", "--org", "acme")
    rows = {line.split()[0]: line.split() for line in out.strip().splitlines()[1:]}
    assert rows[org_key[1][:10]][3] != "-"  # revoked_at
    assert rows[other[:10]][3] == "-"

    # Revoking again changes nothing and is no error.
    code, again, _ = cli("api-key", "revoke", org_key[1][:10])
    assert code == 0
    assert again == out_line(out, org_key[1][:10])


def out_line(listing: str, prefix: str) -> str:
    """What ``revoke`` prints for an already revoked key, from its ``list`` row."""
    row = next(line.split() for line in listing.splitlines() if line.startswith(prefix))
    return f"revoked {prefix} ({row[1]}, {row[4]}) at {row[3]}\n"


def test_a_prefix_must_name_exactly_one_key(services: Services, cli: CliRun) -> None:
    _, first = services.accounts.create_api_key("acme")
    services.accounts.create_api_key("globex")

    code, out, err = cli("api-key", "revoke", "rf_")  # every key starts so
    assert code == 1
    assert out == ""
    assert "matches 2 keys" in err

    code, _, err = cli("api-key", "revoke", "rf_%")  # % is no wildcard
    assert code == 1
    assert "no API key has the prefix 'rf_%'" in err

    code, _, err = cli("api-key", "revoke", "nope")
    assert code == 1
    assert "no API key has the prefix 'nope'" in err

    with services.db.read() as conn:
        revoked = conn.execute(sa.text("SELECT count(revoked_at) FROM api_keys")).scalar_one()
    assert revoked == 0
    assert services.accounts.authenticate(first)


# -- /metrics -----------------------------------------------------------------------------------


def test_metrics_need_an_admin_key(client: TestClient, services: Services) -> None:
    none = {"X-API-Key": ""}
    assert client.get("/healthz", headers=none).status_code == 200

    for headers in (none, {"X-API-Key": "rf_wrong"}, {"Authorization": "Bearer rf_wrong"}):
        response = client.get("/metrics", headers={**none, **headers})
        assert response.status_code == 401, headers
        assert response.json()["code"] == "UNAUTHORIZED"

    response = client.get("/metrics")  # the client's key: an organization's
    assert response.status_code == 403
    assert response.json()["code"] == "FORBIDDEN"
    assert response.json()["status"] == 403

    _, admin = services.accounts.create_api_key("ops", scope="admin")
    response = client.get("/metrics", headers={"X-API-Key": admin})
    assert response.status_code == 200
    assert "reachflow_engine_decisions_total" in response.text
    bearer = {"X-API-Key": "", "Authorization": f"Bearer {admin}"}
    assert client.get("/metrics", headers=bearer).status_code == 200

    services.accounts.revoke_api_key(admin[:10])
    assert client.get("/metrics", headers={"X-API-Key": admin}).status_code == 401


def test_agent_credentials_show_once_then_masked_and_survive_a_round_trip(
    client: TestClient,
) -> None:
    secret = "whsec_" + "A" * 40 + "wxyz"
    body = {
        "name": "hook",
        "channel": "CALL",
        "provider": "webhook",
        "config": {"url": "http://127.0.0.1:9/agent", "secret": secret},
    }
    created = client.post("/api/v1/agents", json=body).json()
    assert created["config"]["secret"] == secret  # shown once, at creation
    shown = client.get(f"/api/v1/agents/{created['id']}").json()
    assert shown["config"]["secret"] == "****wxyz"
    assert secret not in client.get("/api/v1/agents").text
    # A config sent back as it was read keeps the stored secret.
    updated = client.put(f"/api/v1/agents/{created['id']}", json={"config": shown["config"]})
    assert updated.status_code == 200, updated.text
    assert updated.json()["config"]["secret"] == "****wxyz"
