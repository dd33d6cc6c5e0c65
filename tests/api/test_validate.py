"""Validate before saving: ``POST /api/v1/workflow/validate`` and ``POST /v1/workflows/validate``
answer exactly the problems save (and activation) would, store nothing, and warn."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fastapi.testclient import TestClient

from reachflow.bootstrap import Services
from tests.helpers import WEEKDAYS_9_TO_17, make_agent, seed_002_workflow


def agents(services: Services, client: TestClient) -> tuple[str, str]:
    org = services.accounts.authenticate(client.headers["X-API-Key"])
    return make_agent(services, org, "CALL"), make_agent(services, org, "TEXT")


def feather_cases(call: str, text: str) -> list[dict[str, Any]]:
    """Every invalid body of the Feather API tests, and the reply and retry forms'."""
    cases: list[dict[str, Any]] = []
    for change in [
        {"agentId": "missing"},
        {"agentId": text},
        {"order": 2},
        {"delayInSecs": -5},
        {"finishOn": ["HUNG_UP"]},
        {"colour": "red"},
        {"initialMessage": "Hi {{first name}}"},
        {"delayInSecs": "soon"},
        {"waitForReply": {"timeoutSecs": 60}},  # on a CALL step
        {"retryPolicy": {"NOPE": {"delaySecs": 1}, "NO_ANSWER": {"maxRetries": 99}}},
    ]:
        body = seed_002_workflow(call, text)
        body["definition"]["steps"][0].update(change)
        cases.append(body)
    body = seed_002_workflow(call, text)
    body["timezone"] = "Mars/Olympus"
    cases.append(body)
    body = seed_002_workflow(call, text)
    body["workflowSchedule"]["monday"]["timeRanges"][0]["endHour"] = 8
    cases.append(body)
    body = seed_002_workflow(call, text)
    body["definition"]["steps"][1]["waitForReply"] = {
        "timeoutSecs": 30,
        "branches": [{"name": "DNC", "keywords": []}, {"regex": "("}],
        "onReply": "nowhere",
    }
    cases.append(body)
    graph = {
        "nodes": [{"id": "a", "node_type": "FAX"}],
        "edges": [{"id": "e", "from_node_id": "a", "to_node_id": "zz"}],
    }
    cases.append({"name": "x", "timezone": "Mars/Base", "definition": graph})
    cases.append({"definition": {"steps": []}})
    return cases


def test_feather_validation_answers_what_save_answers(
    services: Services, client: TestClient
) -> None:
    call, text = agents(services, client)
    for body in feather_cases(call, text):
        saved = client.post("/api/v1/workflow", json=copy.deepcopy(body))
        assert saved.status_code == 400, body
        checked = client.post("/api/v1/workflow/validate", json=copy.deepcopy(body))
        assert checked.status_code == 200, checked.text
        answer = checked.json()
        assert answer["valid"] is False
        assert answer["errors"] == saved.json()["errors"], body
    assert client.get("/api/v1/workflow").json()["workflows"] == []


def test_a_valid_body_is_valid_stores_nothing_and_warns(
    services: Services, client: TestClient
) -> None:
    call, text = agents(services, client)
    body = seed_002_workflow(call, text)
    body["definition"]["steps"][0]["retryPolicy"] = {
        "NO_ANSWER": {"delaySecs": 600, "maxRetries": 5}
    }
    # Texts only after 22:00: never inside the federal calling hours (8:00-21:00).
    late = {"enabled": True, "timeRanges": [{"startHour": 22, "endHour": 23}]}
    body["workflowSchedule"] = {"monday": late, "tuesday": late}
    answer = client.post("/api/v1/workflow/validate", json=body).json()
    assert answer["valid"] is True
    assert answer["errors"] == []
    found = {(w["code"], w["field"]) for w in answer["warnings"]}
    assert ("never_in_window", "definition.steps[0]") in found
    assert ("never_in_window", "definition.steps[1]") in found
    assert ("retries_beyond_caps", "definition.steps[0].retryPolicy.NO_ANSWER") in found
    assert client.get("/api/v1/workflow").json()["workflows"] == []
    fine = seed_002_workflow(call, text)
    fine["workflowSchedule"] = WEEKDAYS_9_TO_17
    assert client.post("/api/v1/workflow/validate", json=fine).json() == {
        "valid": True,
        "errors": [],
        "warnings": [],
    }


def graph_body(call: str, **change: Any) -> dict[str, Any]:
    return {
        "title": "t",
        "definition": {
            "nodes": [
                {"id": "call", "node_type": "VOICE_CALL", "config": {"agent_id": call}},
                {"id": "won", "node_type": "CONVERTED", "config": {}},
                *change.get("nodes", []),
            ],
            "edges": [
                {"id": "e1", "from_node_id": "call", "to_node_id": "won", "label": "CALENDLY"},
                *change.get("edges", []),
            ],
        },
    }


@pytest.mark.parametrize(
    "change",
    [
        # save-time problems
        {"nodes": [{"id": "a", "node_type": "FAX"}]},
        {"edges": [{"id": "e9", "from_node_id": "call", "to_node_id": "zz"}]},
        {"nodes": [{"id": "w", "node_type": "TIME", "config": {"delay_days": -1}}]},
        # activation problems
        {"nodes": [{"id": "lonely", "node_type": "TIME", "config": {"delay_days": 1}}]},
        {"edges": [{"id": "e9", "from_node_id": "call", "to_node_id": "won", "label": "success"}]},
        {"nodes": [{"id": "wait", "node_type": "WAIT_FOR_REPLY", "config": {}}]},
    ],
)
def test_graph_validation_answers_what_save_then_activation_answer(
    services: Services, client: TestClient, change: dict[str, Any]
) -> None:
    call, _ = agents(services, client)
    body = graph_body(call, **change)
    checked = client.post("/v1/workflows/validate", json=copy.deepcopy(body)).json()
    assert checked["valid"] is False
    saved = client.post("/v1/workflows", json=copy.deepcopy(body))
    if saved.status_code == 400:
        assert checked["errors"] == saved.json()["errors"]
        return
    assert saved.status_code == 201, saved.text
    activated = client.post(f"/v1/workflows/{saved.json()['id']}/activate")
    assert activated.status_code == 400
    assert checked["errors"] == activated.json()["errors"]


def test_a_valid_graph_is_valid(services: Services, client: TestClient) -> None:
    call, _ = agents(services, client)
    before = client.get("/v1/workflows").json()
    answer = client.post("/v1/workflows/validate", json=graph_body(call)).json()
    assert answer == {"valid": True, "errors": [], "warnings": []}
    assert client.get("/v1/workflows").json() == before


LATE = {"enabled": True, "timeRanges": [{"startHour": 22, "endHour": 23}]}


def test_feather_waits_shorter_than_a_caps_window_warn(
    services: Services, client: TestClient
) -> None:
    call, text = agents(services, client)
    body = seed_002_workflow(call, text)
    body["workflowSchedule"] = WEEKDAYS_9_TO_17
    # The text an hour after the call: Maine's cap (1 call in 8 h) holds calls only.
    body["definition"]["steps"][1]["delayInSecs"] = 3600
    assert client.post("/api/v1/workflow/validate", json=body).json()["warnings"] == []
    # A second call an hour after the first waits for Maine's cap.
    again = copy.deepcopy(body["definition"]["steps"][0])
    again.update(order=3, delayInSecs=3600)
    body["definition"]["steps"].append(again)
    answer = client.post("/api/v1/workflow/validate", json=body).json()
    assert answer["valid"] is True
    warnings = [w for w in answer["warnings"] if w["code"] == "waits_for_cap"]
    assert [w["field"] for w in warnings] == ["definition.steps[2]"]
    assert "US-ME" in warnings[0]["message"]
    assert client.get("/api/v1/workflow").json()["workflows"] == []


def test_graph_warnings_never_in_window_and_waits_for_cap(
    services: Services, client: TestClient
) -> None:
    call, _ = agents(services, client)
    before = client.get("/v1/workflows").json()
    body = graph_body(
        call,
        nodes=[
            {"id": "wait", "node_type": "TIME", "config": {"delay_hours": 1}},
            {"id": "again", "node_type": "VOICE_CALL", "config": {"agent_id": call}},
        ],
        edges=[
            {"id": "e2", "from_node_id": "call", "to_node_id": "wait"},
            {"id": "e3", "from_node_id": "wait", "to_node_id": "again"},
            {"id": "e4", "from_node_id": "again", "to_node_id": "won"},
        ],
    )
    answer = client.post("/v1/workflows/validate", json=body).json()
    assert answer["valid"] is True, answer
    assert [(w["code"], w["field"]) for w in answer["warnings"]] == [
        ("waits_for_cap", "definition.nodes[again]")
    ]
    body["definition"]["nodes"][2]["config"] = {"delay_hours": 9}
    assert client.post("/v1/workflows/validate", json=body).json()["warnings"] == []
    # Calls only after 22:00: never inside the federal calling hours (8:00-21:00).
    body["workflow_schedule"] = {"monday": LATE, "tuesday": LATE}
    found = {
        (w["code"], w["field"])
        for w in client.post("/v1/workflows/validate", json=body).json()["warnings"]
    }
    assert found == {
        ("never_in_window", "definition.nodes[call]"),
        ("never_in_window", "definition.nodes[again]"),
    }
    assert client.get("/v1/workflows").json() == before
