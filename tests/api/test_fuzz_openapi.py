"""The fuzz suite: schemathesis against the app's own OpenAPI document, in process (ASGI),
every operation, on SQLite and PostgreSQL.

Each operation gets ``EXAMPLES`` generated requests (valid and invalid ones: schemathesis'
positive and negative modes), derandomized so every run sends the same requests. Every request
carries a valid API key. Half of them use ids that exist (an agent, a linear and a graph
workflow with a node, an edge, an execution and a suppression, seeded first), so they reach
the services instead of stopping at a 404.

It fails on any 5xx, an undocumented status code or content type, or a response body that
does not match its documented schema (an error body that is not ``ErrorBody``).
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from reachflow.api import create_app
from reachflow.bootstrap import Services, bootstrap
from reachflow.runtime.clock import VirtualClock
from reachflow.settings import Settings
from tests.conftest import MONDAY_10_NY, empty_postgres
from tests.helpers import make_agent, seed_002_workflow

#: Per operation; REACHFLOW_FUZZ_EXAMPLES sets more for a longer run.
EXAMPLES = int(os.environ.get("REACHFLOW_FUZZ_EXAMPLES", "25"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
#: What the requests use (it may get suppressed by one of them).
PHONE = "+12125550123"
#: What the seeded resources use (no request names them).
SEED_PHONE = "+12125550142"
OTHER_PHONE = "+12125550199"
#: Fields that hold a phone number or an agent id, wherever they are in a body or query.
PHONE_FIELDS = frozenset({"primaryPhone", "phoneNumber", "phone_number", "phone"})
AGENT_FIELDS = frozenset({"agentId", "agent_id"})


@schemathesis.serializer("text/csv")
def _csv(ctx: schemathesis.SerializationContext, value: Any) -> bytes:
    """A ``text/csv`` body as given (schemathesis generates it as a string)."""
    return value.encode() if isinstance(value, str) else str(value).encode()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def fuzz_services(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: Path,
) -> Iterator[Services]:
    """One database for the whole module, per kind: the operations run one after another
    against the same data, as a client's calls would."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("fuzz") / "reachflow.db"
        shutil.copy(sqlite_template, path)
        url = f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("pg_url")
        empty_postgres(url)
    # No rate limit: hundreds of requests a minute under one key are the point here.
    built = bootstrap(
        Settings(database_url=url, bulk_limit=50, rate_limit_enabled=False),
        clock=VirtualClock(MONDAY_10_NY),
        migrate=False,
    )
    yield built
    built.close()


@pytest.fixture(scope="module")
def fuzz_key(fuzz_services: Services) -> str:
    return fuzz_services.accounts.create_api_key("fuzz")[1]


@pytest.fixture
def known_ids(fuzz_services: Services, fuzz_key: str) -> dict[str, str]:
    """Real ids to put in paths: one of each resource, made anew for each operation (an
    earlier operation may have deleted the last ones)."""
    services = fuzz_services
    org = services.accounts.authenticate(fuzz_key)
    call = make_agent(services, org, "CALL")
    text = make_agent(services, org, "TEXT")
    linear = services.workflows.create(org, seed_002_workflow(call, text)).id
    lead = {"customerLeadId": "fuzz-1", "primaryPhone": SEED_PHONE}
    execution = services.executions.create(org, linear, lead).record.id
    graph = services.graph_workflows.create(org, {"title": "fuzz"}).id
    node = {"id": "call", "node_type": "VOICE_CALL", "config": {"agent_id": call}}
    services.graph_workflows.add_node(org, graph, node)
    services.graph_workflows.add_node(org, graph, {"id": "won", "node_type": "CONVERTED"})
    edge = {"id": "e1", "from_node_id": "call", "to_node_id": "won"}
    services.graph_workflows.add_edge(org, graph, edge)
    services.leads.enroll(org, graph, [{"phone_number": SEED_PHONE}])
    graph_lead = services.leads.list(
        org, graph, page=1, limit=1, status=None, current_node_id=None
    )[0][0].id
    suppression = services.contacts.suppress(org, {"phoneNumber": OTHER_PHONE, "channel": "TEXT"})
    return {
        "agentId": call,
        "workflowId:/api": linear,
        "workflowId:/v1": graph,
        "executionId": execution,
        "leadId": graph_lead,
        "nodeId": "call",
        "edgeId": "e1",
        "suppressionId": suppression.record.id,
    }


def _document() -> dict[str, Any]:
    """The app's OpenAPI document. It depends on no database: an app over stand-in services
    (only their settings are read while building it) gives the same document."""
    stand_in = cast(Services, SimpleNamespace(settings=Settings()))
    return create_app(stand_in).openapi()


#: The examples phase (the schema's own examples) and the fuzzing phase (``EXAMPLES`` generated
#: requests an operation, valid and invalid); the coverage phase's boundary enumeration sends
#: thousands of requests an operation and is left to an unbounded run of the schemathesis CLI.
CONFIG = schemathesis.Config.from_dict({"phases": {"coverage": {"enabled": False}}})
schema = schemathesis.openapi.from_dict(_document(), config=CONFIG)


@pytest.fixture(scope="module")
def app(fuzz_services: Services) -> FastAPI:
    """The app the requests go to (ASGI, in process), over this test's database."""
    return create_app(fuzz_services)


@pytest.fixture(scope="module")
def turn() -> Iterator[int]:
    return itertools.count()


@pytest.fixture(scope="module")
def tally(fuzz_services: Services) -> Iterator[Counter[tuple[str, int]]]:
    """Requests sent, by operation and status; printed at the end (``pytest -s``)."""
    seen: Counter[tuple[str, int]] = Counter()
    yield seen
    operations = {op for op, _ in seen}
    statuses = Counter[int]()
    for (_, status), n in seen.items():
        statuses[status] += n
    print(  # noqa: T201 - the suite's figures, shown with -s
        f"\nfuzz on {fuzz_services.db.url.split(':')[0]}: {sum(seen.values())} requests, "
        f"{len(operations)} operations, statuses {dict(sorted(statuses.items()))}"
    )


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented(
    case: schemathesis.Case,
    app: FastAPI,
    fuzz_key: str,
    known_ids: dict[str, str],
    turn: Iterator[int],
    tally: Counter[tuple[str, int]],
) -> None:
    if next(turn) % 2 == 0:
        _use_known_values(case, known_ids)
    response = case.call(app=app, headers={"X-API-Key": fuzz_key})
    tally[(case.operation.label, response.status_code)] += 1
    case.validate_response(response, checks=CHECKS)


def _use_known_values(case: schemathesis.Case, known: dict[str, str]) -> None:
    """Real ids in the path, and a real phone number and agent wherever a body or query has
    one, so the request gets past the first checks to the service's deeper ones."""
    params = case.path_parameters or {}
    surface = "/v1" if case.path.startswith("/v1/") else "/api"
    for name in params:
        value = known.get(f"{name}:{surface}", known.get(name))
        if value is not None:
            params[name] = value
    replacements = {
        **dict.fromkeys(PHONE_FIELDS, PHONE),
        **dict.fromkeys(AGENT_FIELDS, known["agentId"]),
    }
    _replace(case.query, replacements)
    _replace(case.body, replacements)


def _replace(value: Any, replacements: dict[str, str]) -> None:
    if isinstance(value, dict):
        for key in value:
            if key in replacements and isinstance(value[key], str):
                value[key] = replacements[key]
            else:
                _replace(value[key], replacements)
    elif isinstance(value, list):
        for item in value:
            _replace(item, replacements)


# -- what the fuzz suite found, kept as plain cases ----------------------------------------------

CSV_CASES = [
    (b"phone_number\r+12125550123\r", 201, None),  # old Mac line ends: was a csv.Error 500
    (b'phone_number,note\n+12125550123,"a\x00b"\n', 400, "note"),  # a PostgreSQL 500 (line 2)
    (b'phone_number\n"' + b"x" * 200_000 + b'"\n', 400, "file"),  # beyond csv's field limit
]


@pytest.mark.parametrize(("csv", "status", "field"), CSV_CASES)
def test_odd_csv_uploads_are_read_or_refused_by_field(
    client: TestClient, csv: bytes, status: int, field: str | None
) -> None:
    wf = client.post("/v1/workflows", json={"title": "csv"}).json()["id"]
    response = client.post(
        f"/v1/workflows/{wf}/leads", content=csv, headers={"content-type": "text/csv"}
    )
    assert response.status_code == status, response.text
    if field is not None:
        assert response.json()["field"] == field
