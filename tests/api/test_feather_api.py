"""The Feather surface over HTTP (ASGI in-process), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from reachflow.bootstrap import Services
from reachflow.runtime.clock import VirtualClock
from tests.helpers import lead, seed_002_workflow

SEED_000_KEYS = {
    "id",
    "workflowId",
    "status",
    "temporalWorkflowId",
    "startedAt",
    "completedAt",
    "customerLeadId",
    "metadata",
    "disposition",
    "definition",
    "stepExecutions",
    "createdAt",
}
STEP_KEYS = {
    "id",
    "workflowExecutionId",
    "status",
    "type",
    "order",
    "delayInSecs",
    "finishOn",
    "startedAt",
    "completedAt",
    "leaveVoicemail",
    "disposition",
    "agentId",
    "agentCall",
    "needsTCPACompliance",
}


def _agents(client: TestClient, call: dict[str, Any] | None = None) -> tuple[str, str]:
    a = client.post(
        "/api/v1/agents",
        json={
            "name": "caller",
            "channel": "CALL",
            "config": call or {"defaultDisposition": "NO_ANSWER"},
        },
    )
    b = client.post(
        "/api/v1/agents",
        json={"name": "texter", "channel": "TEXT", "config": {"defaultDisposition": "ENDED"}},
    )
    assert a.status_code == b.status_code == 201
    return a.json()["id"], b.json()["id"]


def _workflow(client: TestClient, **call: Any) -> dict[str, Any]:
    call_id, text_id = _agents(client, call or None)
    response = client.post("/api/v1/workflow", json=seed_002_workflow(call_id, text_id))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _error(response: Any, status: int, field: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["success"] is False
    assert body["status"] == status
    assert body["field"] == field, body
    return body


def test_missing_or_wrong_key_is_401(client: TestClient) -> None:
    assert client.get("/api/v1/workflow", headers={"X-API-Key": ""}).status_code == 401
    assert client.get("/api/v1/workflow", headers={"X-API-Key": "rf_nope"}).status_code == 401


def test_bearer_is_accepted(client: TestClient, org_key: tuple[str, str]) -> None:
    response = client.get(
        "/api/v1/workflow", headers={"X-API-Key": "", "Authorization": f"Bearer {org_key[1]}"}
    )
    assert response.status_code == 200


def test_another_organizations_workflow_is_404(client: TestClient, services: Services) -> None:
    wf = _workflow(client)
    _, other_key = services.accounts.create_api_key("globex")
    response = client.get(f"/api/v1/workflow/{wf['id']}", headers={"X-API-Key": other_key})
    _error(response, 404, "workflowId")


def test_workflow_round_trip_keeps_seed_002_fields(client: TestClient) -> None:
    wf = _workflow(client)
    got = client.get(f"/api/v1/workflow/{wf['id']}").json()
    assert got["timezone"] == "America/New_York"
    assert got["workflowSchedule"]["monday"]["timeRanges"] == [
        {"startHour": 9, "startMinute": 0, "endHour": 17, "endMinute": 0}
    ]
    assert got["workflowSchedule"]["sunday"] == {"enabled": False, "timeRanges": []}
    steps = got["definition"]["steps"]
    assert [s["order"] for s in steps] == [1, 2]
    assert all(s["id"] for s in steps)
    assert steps[0]["needsTCPACompliance"] is True
    listed = client.get("/api/v1/workflow").json()
    assert [w["id"] for w in listed["workflows"]] == [wf["id"]]


def test_definition_errors_name_the_field(client: TestClient) -> None:
    call_id, text_id = _agents(client)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"agentId": "missing"}, "definition.steps[0].agentId"),
        ({"agentId": text_id}, "definition.steps[0].agentId"),
        ({"order": 2}, "definition.steps[1].order"),
        ({"delayInSecs": -5}, "definition.steps[0].delayInSecs"),
        ({"finishOn": ["HUNG_UP"]}, "definition.steps[0].finishOn[0]"),
        ({"colour": "red"}, "definition.steps[0].colour"),
        ({"initialMessage": "Hi {{first name}}"}, "definition.steps[0].initialMessage"),
        ({"delayInSecs": "soon"}, "definition.steps[0].delayInSecs"),
    ]
    for change, field in cases:
        body = seed_002_workflow(call_id, text_id)
        body["definition"]["steps"][0].update(change)
        _error(client.post("/api/v1/workflow", json=body), 400, field)
    body = seed_002_workflow(call_id, text_id)
    body["timezone"] = "Mars/Olympus"
    _error(client.post("/api/v1/workflow", json=body), 400, "timezone")
    body = seed_002_workflow(call_id, text_id)
    body["workflowSchedule"]["monday"]["timeRanges"][0]["endHour"] = 8
    _error(client.post("/api/v1/workflow", json=body), 400, "workflowSchedule.monday.timeRanges[0]")
    assert client.get("/api/v1/workflow").json()["workflows"] == []


def test_create_execution_answers_seed_000s_shape_as_get_does(client: TestClient) -> None:
    wf = _workflow(client)
    response = client.post(
        f"/api/v1/workflow/{wf['id']}/execution",
        json={
            **lead(phone="(212) 555-0123"),
            "zipcode": "94107",
            "state": "CA",
            "variables": {"firstName": "Taylor"},
            "metadata": {"firstName": "Taylor", "campaign": "renewal-q2"},
            "priorityDate": "2026-03-12T10:00:00Z",
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) >= SEED_000_KEYS
    assert body["status"] == "CREATED"
    assert body["metadata"] == {"firstName": "Taylor", "campaign": "renewal-q2"}
    assert body["definition"] == wf["definition"]
    got = client.get(f"/api/v1/workflow/{wf['id']}/execution/{body['id']}").json()
    assert got == body  # one serializer for an execution (issue 11 item 9)
    assert got["primaryPhone"] == "+12125550123"
    assert got["priorityDate"] == "2026-03-12T10:00:00Z"


def test_step_executions_carry_the_seed_fields(
    client: TestClient, services: Services, clock: VirtualClock
) -> None:
    wf = _workflow(client)
    ex = client.post(f"/api/v1/workflow/{wf['id']}/execution", json=lead()).json()
    services.engine.run_until_idle(clock)
    got = client.get(f"/api/v1/workflow/{wf['id']}/execution/{ex['id']}").json()
    assert got["status"] == "COMPLETED"
    assert len(got["stepExecutions"]) == 2
    for step in got["stepExecutions"]:
        assert set(step) >= STEP_KEYS
        assert set(step["agentCall"]) == {
            "id",
            "status",
            "callStartedAt",
            "callEndedAt",
            "callDuration",
            "callEndedReason",
            "recordingUrl",
            "summary",
        }
    events = client.get(f"/api/v1/workflow/{wf['id']}/execution/{ex['id']}/events").json()
    assert events["events"][0]["type"] == "started"
    assert events["events"][-1]["type"] == "finished"


def test_bad_execution_input_is_400_and_stores_nothing(client: TestClient) -> None:
    wf = _workflow(client)
    url = f"/api/v1/workflow/{wf['id']}/execution"
    _error(client.post(url, json=lead(phone="123")), 400, "primaryPhone")
    _error(client.post(url, json={"primaryPhone": "+12125550123"}), 400, "customerLeadId")
    _error(client.post(url, json=lead(zipcode="ABCDE")), 400, "zipcode")
    _error(client.post(url, json=lead(priorityDate="tomorrow")), 400, "priorityDate")
    _error(client.post(url, json=lead(shoeSize=9)), 400, "shoeSize")
    _error(
        client.post(
            url, content=b'{"customerLeadId": ', headers={"Content-Type": "application/json"}
        ),
        400,
        "body",
    )
    _error(client.post(url, json=["not", "an", "object"]), 400, "body")
    _error(client.post("/api/v1/workflow/nope/execution", json=lead()), 404, "workflowId")
    assert client.get(f"/api/v1/workflow/{wf['id']}/executions").json()["executions"] == []


def test_list_filters_and_cursor_pagination(client: TestClient, clock: VirtualClock) -> None:
    wf = _workflow(client)
    url = f"/api/v1/workflow/{wf['id']}"
    ids = []
    for i in range(5):
        clock.advance(timedelta(seconds=1))
        response = client.post(f"{url}/execution", json=lead(f"+1212555{i:04d}", f"lead-{i}"))
        ids.append(response.json()["id"])
    page = client.get(f"{url}/executions", params={"limit": 2}).json()
    seen = [e["id"] for e in page["executions"]]
    while page["pagination"]["nextCursor"]:
        page = client.get(
            f"{url}/executions", params={"limit": 2, "cursor": page["pagination"]["nextCursor"]}
        ).json()
        seen += [e["id"] for e in page["executions"]]
    assert seen == ids
    lean = client.get(f"{url}/executions", params={"customerLeadId": "lead-3"}).json()["executions"]
    assert [e["id"] for e in lean] == [ids[3]]
    assert "definition" not in lean[0]
    assert lean[0]["stepIndex"] is None
    rich = client.get(f"{url}/executions", params={"enriched": "true", "limit": 1}).json()
    assert "definition" in rich["executions"][0]
    by_phone = client.get(f"{url}/executions", params={"phoneNumber": "+12125550002"}).json()
    assert [e["id"] for e in by_phone["executions"]] == [ids[2]]
    _error(client.get(f"{url}/executions", params={"status": "SLEEPING"}), 400, "status")


def test_put_pauses_resumes_cancels_and_merges_metadata(client: TestClient) -> None:
    wf = _workflow(client)
    ex = client.post(f"/api/v1/workflow/{wf['id']}/execution", json=lead(metadata={"a": 1})).json()
    url = f"/api/v1/workflow/{wf['id']}/execution/{ex['id']}"
    paused = client.put(url, json={"status": "PAUSED", "metadata": {"b": 2}}).json()
    assert paused["status"] == "PAUSED"
    assert paused["metadata"] == {"a": 1, "b": 2}
    assert client.put(url, json={"status": "RUNNING"}).json()["status"] == "CREATED"
    assert client.put(url, json={"status": "CANCELLED"}).json()["status"] == "CANCELLED"
    body = _error(client.put(url, json={"status": "RUNNING"}), 409, "status")
    assert body["code"] == "ILLEGAL_TRANSITION"
    # Only the engine completes an execution: asking for it is a transition that makes no
    # sense (409); an unknown status is a 400.
    assert _error(client.put(url, json={"status": "COMPLETED"}), 409, "status")["code"] == (
        "ILLEGAL_TRANSITION"
    )
    _error(client.put(url, json={"status": "DONE"}), 400, "status")
    assert client.get(url).json()["metadata"] == {"a": 1, "b": 2}


def test_bulk_create_reports_each_row(client: TestClient) -> None:
    wf = _workflow(client)
    leads = [lead("+12125550100", "ok-1"), lead("nope", "bad-1"), lead("+12125550101", "ok-2")]
    body = client.post(f"/api/v1/workflow/{wf['id']}/execution/bulk", json={"leads": leads}).json()
    assert (body["total"], body["successful"], body["failed"]) == (3, 2, 1)
    assert [r["success"] for r in body["results"]] == [True, False, True]
    assert body["results"][1]["customerLeadId"] == "bad-1"
    assert "primaryPhone" in body["results"][1]["error"]
    too_many = {"leads": [lead(f"+1212555{i:04d}", f"l{i}") for i in range(51)]}
    _error(client.post(f"/api/v1/workflow/{wf['id']}/execution/bulk", json=too_many), 400, "leads")


def test_cancel_by_phone_and_by_lead(client: TestClient) -> None:
    a = _workflow(client)
    b = _workflow(client)
    for wf in (a, b):
        client.post(f"/api/v1/workflow/{wf['id']}/execution", json=lead("+12125550123", "x"))
        client.post(f"/api/v1/workflow/{wf['id']}/execution", json=lead("+12125550124", "y"))
    one = client.post(
        f"/api/v1/workflow/{a['id']}/executions/cancel", json={"phoneNumber": "+12125550123"}
    )
    assert one.json() == {"cancelledCount": 1}
    everywhere = client.post("/api/v1/executions/cancel", json={"phoneNumber": "2125550123"})
    assert everywhere.json() == {"cancelledCount": 1}
    by_lead = client.post("/api/v1/executions/cancel", json={"customerLeadId": "y"})
    assert by_lead.json() == {"cancelledCount": 2}
    _error(client.post("/api/v1/executions/cancel", json={"phoneNumber": "12"}), 400, "phoneNumber")


def test_cancel_and_delete_one_execution(client: TestClient) -> None:
    wf = _workflow(client)
    ex = client.post(f"/api/v1/workflow/{wf['id']}/execution", json=lead()).json()
    cancelled = client.post(f"/api/v1/workflow/{wf['id']}/executions/{ex['id']}/cancel").json()
    assert cancelled["status"] == "CANCELLED"
    url = f"/api/v1/workflow/{wf['id']}/execution/{ex['id']}"
    assert client.delete(url).json() == {"message": "Execution deleted"}
    _error(client.get(url), 404, "executionId")


def test_agents_crud_and_validation(client: TestClient) -> None:
    created = client.post("/api/v1/agents", json={"name": "a", "channel": "CALL"}).json()
    url = f"/api/v1/agents/{created['id']}"
    updated = client.put(
        url, json={"config": {"distribution": {"NO_ANSWER": 3, "CALENDLY": 1}, "seed": 7}}
    )
    assert updated.json()["config"]["seed"] == 7
    _error(client.post("/api/v1/agents", json={"name": "a", "channel": "FAX"}), 400, "channel")
    _error(
        client.put(url, json={"config": {"defaultDisposition": "MAYBE"}}),
        400,
        "config.defaultDisposition",
    )
    assert client.delete(url).status_code == 200
    _error(client.get(url), 404, "agentId")


def test_inactive_workflow_refuses_executions(client: TestClient) -> None:
    wf = _workflow(client)
    client.patch(f"/api/v1/workflow/{wf['id']}", json={"active": False})
    response = client.post(f"/api/v1/workflow/{wf['id']}/execution", json=lead())
    assert response.status_code == 422


def test_patch_definition_bumps_version_and_delete_hides(client: TestClient) -> None:
    wf = _workflow(client)
    steps = wf["definition"]["steps"][:1]
    patched = client.patch(
        f"/api/v1/workflow/{wf['id']}", json={"definition": {"steps": steps}}
    ).json()
    assert patched["version"] == 2
    renamed = client.patch(f"/api/v1/workflow/{wf['id']}", json={"name": "renamed"}).json()
    assert renamed["version"] == 2
    assert client.delete(f"/api/v1/workflow/{wf['id']}").status_code == 200
    _error(client.get(f"/api/v1/workflow/{wf['id']}"), 404, "workflowId")


def test_health_and_metrics(client: TestClient, services: Services) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/metrics").status_code == 403  # an organization's key
    _, admin = services.accounts.create_api_key("ops", scope="admin")
    metrics = client.get("/metrics", headers={"X-API-Key": admin})
    assert "reachflow_engine_decisions_total" in metrics.text


def test_an_agent_shows_its_health(client: TestClient) -> None:
    agent = client.post("/api/v1/agents", json={"name": "a", "channel": "CALL"}).json()
    health = client.get(f"/api/v1/agents/{agent['id']}").json()["health"]
    assert health == {
        "inFlight": 0,
        "recentErrorRate": None,
        "recentAttempts": 0,
        "breaker": {"state": "closed", "reason": None, "openUntil": None},
    }
