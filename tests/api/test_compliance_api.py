"""The suppression list, consent, inbound texts and the explain endpoint over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from reachflow.bootstrap import Services
from reachflow.runtime.clock import VirtualClock
from tests.helpers import lead

FL_PHONE = "+13055550123"


def make_workflow(client: TestClient) -> str:
    agent = client.post("/api/v1/agents", json={"name": "c", "channel": "CALL"}).json()["id"]
    body = {
        "name": "w",
        "timezone": "America/New_York",
        "definition": {"steps": [{"type": "CALL", "order": 1, "agentId": agent}]},
    }
    workflow_id: str = client.post("/api/v1/workflow", json=body).json()["id"]
    return workflow_id


def test_suppression_add_check_list_remove_with_audit(client: TestClient) -> None:
    wf = make_workflow(client)
    running = client.post(f"/api/v1/workflow/{wf}/execution", json=lead("(305) 555-0123"))
    assert running.status_code == 201

    added = client.post(
        "/api/v1/suppressions", json={"phoneNumber": "305-555-0123", "reason": "asked by phone"}
    )
    assert added.status_code == 201
    entry = added.json()
    assert entry["phoneNumber"] == FL_PHONE
    assert entry["channel"] == "ALL"
    assert entry["cancelledCount"] == 1
    again = client.post("/api/v1/suppressions", json={"phoneNumber": FL_PHONE})
    assert again.status_code == 200
    assert again.json()["id"] == entry["id"]

    execution = client.get(f"/api/v1/workflow/{wf}/execution/{running.json()['id']}").json()
    assert execution["status"] == "CANCELLED"
    refused = client.post(f"/api/v1/workflow/{wf}/execution", json=lead(FL_PHONE, "new"))
    assert refused.status_code == 422
    assert refused.json()["code"] == "SUPPRESSED"
    assert refused.json()["field"] == "primaryPhone"

    check = client.get("/api/v1/suppressions/check", params={"phoneNumber": FL_PHONE}).json()
    assert check["suppressed"] is True
    assert check["channels"] == ["CALL", "TEXT"]
    listed = client.get("/api/v1/suppressions").json()["suppressions"]
    assert [s["id"] for s in listed] == [entry["id"]]

    removed = client.delete(f"/api/v1/suppressions/{entry['id']}", params={"reason": "error"})
    assert removed.status_code == 200
    assert removed.json()["active"] is False
    assert removed.json()["removedReason"] == "error"
    assert client.delete(f"/api/v1/suppressions/{entry['id']}").status_code == 409
    assert client.get("/api/v1/suppressions").json()["suppressions"] == []
    audit = client.get("/api/v1/suppressions", params={"includeRemoved": "true"}).json()
    assert [s["id"] for s in audit["suppressions"]] == [entry["id"]]
    assert (
        client.post(f"/api/v1/workflow/{wf}/execution", json=lead(FL_PHONE, "n")).status_code == 201
    )


def test_text_only_suppression_keeps_calls_and_executions(client: TestClient) -> None:
    wf = make_workflow(client)
    added = client.post(
        "/api/v1/suppressions", json={"phoneNumber": FL_PHONE, "channel": "TEXT"}
    ).json()
    assert added["cancelledCount"] == 0
    assert client.post(f"/api/v1/workflow/{wf}/execution", json=lead(FL_PHONE)).status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "phoneNumber"),
        ({"phoneNumber": "12"}, "phoneNumber"),
        ({"phoneNumber": FL_PHONE, "channel": "FAX"}, "channel"),
        ({"phoneNumber": FL_PHONE, "reason": ""}, "reason"),
        ({"phoneNumber": FL_PHONE, "colour": "red"}, "colour"),
    ],
)
def test_bad_suppressions_are_400_naming_the_field(
    client: TestClient, body: dict[str, object], field: str
) -> None:
    response = client.post("/api/v1/suppressions", json=body)
    assert response.status_code == 400
    assert response.json()["field"] == field


def test_unknown_suppression_is_404_and_bad_cursor_400(client: TestClient) -> None:
    assert client.get("/api/v1/suppressions/nope").status_code == 404
    assert client.delete("/api/v1/suppressions/nope").status_code == 404
    response = client.get("/api/v1/suppressions", params={"cursor": "nope"})
    assert response.status_code == 400
    assert response.json()["field"] == "cursor"


def test_inbound_stop_suppresses_texts(client: TestClient) -> None:
    quiet = client.post(
        "/api/v1/inbound-texts", json={"phoneNumber": FL_PHONE, "body": "Sounds good"}
    ).json()
    assert quiet["optedOut"] is False
    stop = client.post(
        "/api/v1/inbound-texts", json={"phoneNumber": FL_PHONE, "body": " UNSUBSCRIBE "}
    ).json()
    assert stop["optedOut"] is True
    assert stop["suppressedChannels"] == ["TEXT"]
    check = client.get("/api/v1/suppressions/check", params={"phoneNumber": FL_PHONE}).json()
    assert check["channels"] == ["TEXT"]
    missing = client.post("/api/v1/inbound-texts", json={"phoneNumber": FL_PHONE})
    assert missing.status_code == 400
    assert missing.json()["field"] == "body"


def test_consent_is_granted_and_shown(client: TestClient) -> None:
    granted = client.post("/api/v1/consents", json={"phoneNumber": FL_PHONE, "channel": "TEXT"})
    assert granted.status_code == 201
    assert granted.json()["consent"] == ["TEXT"]
    bad = client.post("/api/v1/consents", json={"phoneNumber": FL_PHONE, "channel": "FAX"})
    assert bad.status_code == 400
    assert bad.json()["field"] == "channel"


def test_explain_a_florida_number_after_20_00(client: TestClient) -> None:
    response = client.get(
        "/api/v1/compliance/window",
        params={
            "phone": FL_PHONE,
            "zipcode": "33101",
            "channel": "CALL",
            "at": "2026-03-10T00:05:00Z",  # Monday 20:05 in Miami
        },
    )
    assert response.status_code == 200
    answer = response.json()
    assert answer["allowedNow"] is False
    assert answer["nextAllowedAt"] == "2026-03-10T12:00:00Z"
    assert "US-FL-501.616-hours-cap@1" in answer["decidingRules"]
    assert answer["zones"] == ["America/New_York"]
    assert answer["states"] == ["FL"]
    inside = client.get(
        "/api/v1/compliance/window",
        params={"phone": FL_PHONE, "at": "2026-03-10T15:00:00Z"},
    ).json()
    assert inside["allowedNow"] is True


def test_explain_counts_the_workflow_schedule_and_suppression(
    client: TestClient, services: Services, clock: VirtualClock
) -> None:
    wf = make_workflow(client)
    client.patch(
        f"/api/v1/workflow/{wf}",
        json={
            "workflowSchedule": {
                "monday": {
                    "enabled": True,
                    "timeRanges": [
                        {"startHour": 12, "startMinute": 0, "endHour": 13, "endMinute": 0}
                    ],
                }
            }
        },
    )
    answer = client.get(
        "/api/v1/compliance/window", params={"phone": FL_PHONE, "workflowId": wf}
    ).json()
    assert answer["nextAllowedAt"] == datetime(2026, 3, 9, 16, 0, tzinfo=UTC).isoformat().replace(
        "+00:00", "Z"
    )
    client.post("/api/v1/suppressions", json={"phoneNumber": FL_PHONE})
    blocked = client.get("/api/v1/compliance/window", params={"phone": FL_PHONE}).json()
    assert blocked["allowedNow"] is False
    assert blocked["suppressed"] is True
    assert blocked["nextAllowedAt"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "phone"),
        ({"phone": FL_PHONE, "channel": "FAX"}, "channel"),
        ({"phone": FL_PHONE, "at": "tomorrow"}, "at"),
        ({"phone": FL_PHONE, "at": "2026-03-10T00:05:00"}, "at"),
        ({"phone": FL_PHONE, "zipcode": "3310"}, "zipcode"),
        ({"phone": FL_PHONE, "state": "Florida!"}, "state"),
    ],
)
def test_explain_bad_input_is_400_naming_the_field(
    client: TestClient, params: dict[str, str], field: str
) -> None:
    response = client.get("/api/v1/compliance/window", params=params)
    assert response.status_code == 400
    assert response.json()["field"] == field


def test_explain_unknown_workflow_is_404(client: TestClient) -> None:
    response = client.get(
        "/api/v1/compliance/window", params={"phone": FL_PHONE, "workflowId": "nope"}
    )
    assert response.status_code == 404
