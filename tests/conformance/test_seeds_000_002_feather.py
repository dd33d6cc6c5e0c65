"""Seeds 000-002 (Feather) as a conformance suite, over real HTTP on loopback, on SQLite and
PostgreSQL.

Every request example of the three pages is sent as the seed prints it, on its own path and
with its own auth header (``X-API-Key``); only placeholders change (``<string>``,
``<api-key>``, ``CALL_AGENT_ID``, ``WORKFLOW_ID``), each to a valid value. Every documented
response field is checked: present, of its type, in its enum, and the status code.

Where the seeds are silent we chose, and the test says so:

- Seed 000 names no status code for a create ("created successfully"): 201.
- Seed 002 documents no response for the workflow create: 201 with the workflow (the fields
  of ``docs/workflows.md``, "The workflow body", which follow API-RESEARCH 1.3).
- Seed 000's nested fields (a step execution's times, ``agentCall``) print example strings
  but no nullability: a time not reached yet, or a call that left no recording, is null.
- Seed 000 shows step status ``PENDING`` only: the others are ours (``STEP_STATUS``).
- Seed 001 shows a body (``{"status": "CREATED", "metadata": {}}``) but no transition rules:
  the status an execution already has is a no-op that merges ``metadata``; a status only the
  engine sets, asked of an execution elsewhere, is 409 ``ILLEGAL_TRANSITION``.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.conformance.conftest import Live
from tests.conformance.contract import (
    DISPOSITIONS,
    EXECUTION_STATUS,
    STEP_STATUS,
    STEP_TYPES,
    F,
    Report,
    conform,
    instant,
    placeholders,
    seed_text,
    squeezed,
)

# -- the examples, as the seeds print them ------------------------------------------------------

#: Seed 000: ``POST /api/v1/workflow/{workflowId}/execution``, its ``--data``.
SEED_000_BODY = """{
  "customerLeadId": "<string>",
  "primaryPhone": "<string>",
  "zipcode": "<string>",
  "state": "<string>",
  "forwardingPhoneNumber": "<string>",
  "variables": {},
  "metadata": {
    "firstName": "<string>",
    "lastName": "<string>"
  }
}"""
SEED_000_PATH = "/api/v1/workflow/{workflowId}/execution"
#: Seed 001: ``PUT /api/v1/workflow/{workflowId}/execution/{executionId}``, its ``--data``.
SEED_001_BODY = """{
  "status": "CREATED",
  "metadata": {}
}"""
SEED_001_PATH = "/api/v1/workflow/{workflowId}/execution/{executionId}"
#: Seed 002: the workflow example (``POST /api/v1/workflow``), its ``-d``.
SEED_002_WORKFLOW = """{
    "name": "Two-step follow-up",
    "description": "One call and one text reminder",
    "active": true,
    "timezone": "America/New_York",
    "workflowSchedule": {
      "monday": {
        "enabled": true,
        "timeRanges": [
          { "startHour": 9, "startMinute": 0, "endHour": 17, "endMinute": 0 }
        ]
      },
      "tuesday": {
        "enabled": true,
        "timeRanges": [
          { "startHour": 9, "startMinute": 0, "endHour": 17, "endMinute": 0 }
        ]
      }
    },
    "definition": {
      "steps": [
        {
          "type": "CALL",
          "order": 1,
          "delayInSecs": 0,
          "agentId": "CALL_AGENT_ID",
          "leaveVoicemail": true,
          "finishOn": ["CALENDLY", "NOT_INTERESTED", "DNC"]
        },
        {
          "type": "TEXT",
          "order": 2,
          "delayInSecs": 86400,
          "agentId": "TEXT_AGENT_ID",
          "initialMessage": "Hi {{firstName}}, following up on our earlier outreach. Let me know if you want to reconnect.",
          "finishOn": ["DNC"]
        }
      ]
    }
  }"""  # noqa: E501 (the seed's line, verbatim)
SEED_002_WORKFLOW_PATH = "/api/v1/workflow"
#: Seed 002: the execution example (``POST /api/v1/workflow/WORKFLOW_ID/execution``).
SEED_002_EXECUTION = """{
    "customerLeadId": "contact-123",
    "primaryPhone": "+14155550123",
    "zipcode": "94107",
    "variables": {
      "firstName": "Taylor"
    },
    "metadata": {
      "firstName": "Taylor",
      "campaign": "renewal-q2"
    },
    "priorityDate": "2026-03-12T10:00:00Z"
  }"""
SEED_002_EXECUTION_PATH = "/api/v1/workflow/WORKFLOW_ID/execution"

#: Valid values for seed 000's ``<string>`` placeholders, by the key that holds them.
SEED_000_VALUES = {
    "customerLeadId": "lead-000",
    "primaryPhone": "+14155550123",
    "zipcode": "94107",
    "state": "CA",
    "forwardingPhoneNumber": "+14155550199",
    "firstName": "Taylor",
    "lastName": "Reed",
}

# -- the documented response fields -------------------------------------------------------------

DISPOSITION = F("string", enum=DISPOSITIONS)
#: A definition step: seed 000's example keys, and seed 001's (needsTCPACompliance, conditions).
STEP = {
    "id": F("uuid"),
    "type": F("string", enum=STEP_TYPES),
    "order": F("integer"),
    "delayInSecs": F("integer"),
    "needsTCPACompliance": F("boolean"),
    "finishOn": F("array", each=DISPOSITION),
    "agentId": F("uuid"),
    "leaveVoicemail": F("boolean"),
    "conditions": F("array"),
}
AGENT_CALL = {
    "id": F("uuid"),
    "status": F("string"),
    "callStartedAt": instant(),
    "callEndedAt": instant(),
    "callDuration": F("integer"),
    "callEndedReason": DISPOSITION,
    "recordingUrl": F("string", nullable=True),
    "summary": F("string", nullable=True),
}
STEP_EXECUTION = {
    "id": F("uuid"),
    "workflowExecutionId": F("uuid"),
    "status": F("string", enum=STEP_STATUS),
    "type": F("string", enum=STEP_TYPES),
    "order": F("integer"),
    "delayInSecs": F("integer"),
    "needsTCPACompliance": F("boolean"),
    "finishOn": F("array", each=DISPOSITION),
    "startedAt": instant(nullable=True),
    "completedAt": instant(nullable=True),
    "leaveVoicemail": F("boolean"),
    "disposition": F("string", nullable=True, enum=DISPOSITIONS),
    "agentId": F("uuid"),
    "agentCall": F("object", nullable=True, fields=AGENT_CALL),
}
#: Seed 000's response (and seed 001's example, the same shape).
EXECUTION = {
    "id": F("uuid"),
    "workflowId": F("uuid"),
    "status": F("string", enum=EXECUTION_STATUS),
    "temporalWorkflowId": F("string", nullable=True),
    "startedAt": instant(),
    "completedAt": instant(nullable=True),
    "customerLeadId": F("string", nullable=True),
    "metadata": F("any"),
    "disposition": F("string", nullable=True, enum=DISPOSITIONS),
    "definition": F("object", fields={"steps": F("array", fields=STEP)}),
    "stepExecutions": F("array", fields=STEP_EXECUTION),
    "createdAt": instant(),
}
DAY = {"enabled": F("boolean"), "timeRanges": F("array")}
WEEK = {
    d: F("object", fields=DAY)
    for d in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
}
#: The workflow (seed 002 documents none; API-RESEARCH 1.3's fields, ``userId`` aside).
WORKFLOW = {
    "id": F("uuid"),
    "organizationId": F("uuid"),
    "name": F("string"),
    "description": F("string", nullable=True),
    "active": F("boolean"),
    "timezone": F("string"),
    "workflowSchedule": F("object", nullable=True, fields=WEEK),
    "tcpaSchedule": F("object", nullable=True, fields=WEEK),
    "definition": F(
        "object",
        fields={
            "steps": F("array", fields={**STEP, "initialMessage": F("string", optional=True)}),
            "isInfinite": F("boolean"),
        },
    ),
}


def checked(body: Any, spec: dict[str, F]) -> Report:
    report = conform(body, spec, Report())
    report.assert_clean()
    return report


def agents(live: Live) -> tuple[str, str]:
    """A call agent that books (CALENDLY) and a text agent (setup: not a seed request)."""
    with live.client(**{"X-API-Key": live.api_key}) as http:
        ids = []
        for channel, disposition in (("CALL", "CALENDLY"), ("TEXT", "TEXT_CONSENT")):
            body = {
                "name": channel,
                "channel": channel,
                "config": {"defaultDisposition": disposition},
            }
            response = http.post("/api/v1/agents", json=body)
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])
    return ids[0], ids[1]


def send(http: httpx.Client, method: str, path: str, data: str, **values: Any) -> httpx.Response:
    """The example's body text, its placeholders replaced, sent as the seed sends it."""
    body = placeholders(json.loads(data), values)
    return http.request(
        method, path, content=json.dumps(body), headers={"Content-Type": "application/json"}
    )


def seed_workflow(live: Live, http: httpx.Client) -> dict[str, Any]:
    call_agent, text_agent = agents(live)
    response = send(
        http,
        "POST",
        SEED_002_WORKFLOW_PATH,
        SEED_002_WORKFLOW,
        CALL_AGENT_ID=call_agent,
        TEXT_AGENT_ID=text_agent,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


# -- the examples are the seeds' ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seed", "texts"),
    [
        ("000", [SEED_000_BODY, SEED_000_PATH]),
        ("001", [SEED_001_BODY, SEED_001_PATH]),
        ("002", [SEED_002_WORKFLOW, SEED_002_EXECUTION]),
    ],
)
def test_the_examples_here_are_the_seeds(seed: str, texts: list[str]) -> None:
    text = seed_text(seed)
    if text is None:
        pytest.skip("the seeds are not beside the project")
    for example in texts:
        if example.startswith("/"):  # the seed prints the path one segment a line
            assert squeezed(example.replace("/", "/\n")) in squeezed(text)
        else:
            assert squeezed(example) in squeezed(text), example[:60]


# -- seed 002 ---------------------------------------------------------------------------------


def test_seed_002_workflow_example_is_created_with_every_default_filled_in(live: Live) -> None:
    """Seed 002 documents no response: we answer 201 with the workflow."""
    with live.client(**{"X-API-Key": live.api_key}) as http:
        workflow = seed_workflow(live, http)
    checked(workflow, WORKFLOW)
    assert workflow["active"] is True
    sent = json.loads(SEED_002_WORKFLOW)
    assert workflow["workflowSchedule"]["monday"] == sent["workflowSchedule"]["monday"]
    assert workflow["workflowSchedule"]["sunday"] == {"enabled": False, "timeRanges": []}
    steps = workflow["definition"]["steps"]
    assert [s["initialMessage"] for s in steps if s["type"] == "TEXT"] == [
        sent["definition"]["steps"][1]["initialMessage"]
    ]
    assert [(s["order"], s["finishOn"]) for s in steps] == [
        (1, ["CALENDLY", "NOT_INTERESTED", "DNC"]),
        (2, ["DNC"]),
    ]


def test_seed_002_execution_example_starts_one_run(live: Live) -> None:
    with live.client(**{"X-API-Key": live.api_key}) as http:
        workflow = seed_workflow(live, http)
        path = SEED_002_EXECUTION_PATH.replace("WORKFLOW_ID", workflow["id"])
        response = send(http, "POST", path, SEED_002_EXECUTION)
        assert response.status_code == 201, response.text
        execution = response.json()
        checked(execution, EXECUTION)
        assert execution["status"] == "CREATED"
        assert execution["metadata"] == {"firstName": "Taylor", "campaign": "renewal-q2"}
        assert execution["priorityDate"] == "2026-03-12T10:00:00Z"
        assert execution["definition"]["steps"] == workflow["definition"]["steps"]


# -- seed 000 ---------------------------------------------------------------------------------


def test_seed_000_create_example_and_the_run_it_starts(live: Live) -> None:
    """201 (seed 000 names no code). The create answers CREATED with no step executions yet;
    after the run the same execution shows both steps with their calls, every documented
    field of seed 000 in its type and enum."""
    with live.client(**{"X-API-Key": live.api_key}) as http:
        workflow = seed_workflow(live, http)
        path = SEED_000_PATH.replace("{workflowId}", workflow["id"])
        response = send(http, "POST", path, SEED_000_BODY, **SEED_000_VALUES)
        assert response.status_code == 201, response.text
        created = response.json()
        checked(created, EXECUTION)
        assert (created["status"], created["stepExecutions"]) == ("CREATED", [])
        assert created["customerLeadId"] == "lead-000"
        assert created["metadata"] == {"firstName": "Taylor", "lastName": "Reed"}
        live.run()  # the call books (CALENDLY, a finishOn of step 1): the run completes
        got = http.get(f"{path}/{created['id']}").json()
        checked(got, EXECUTION)
        assert (got["status"], got["disposition"]) == ("COMPLETED", "CALENDLY")
        [call] = got["stepExecutions"]
        assert call["agentCall"]["callEndedReason"] == "CALENDLY"
        assert got["startedAt"] == created["startedAt"]


def test_seed_000_auth_is_the_x_api_key_header(live: Live) -> None:
    with live.client() as anonymous:
        path = SEED_000_PATH.replace("{workflowId}", "3c90c3cc-0d44-4b50-8888-8dd25736052a")
        response = send(anonymous, "POST", path, SEED_000_BODY, **SEED_000_VALUES)
        assert response.status_code == 401
        assert response.json()["code"] == "UNAUTHORIZED"
    with live.client(**{"X-API-Key": live.api_key}) as http:
        response = send(http, "POST", path, SEED_000_BODY, **SEED_000_VALUES)
        assert response.status_code == 404  # the seed's example id is no workflow of ours


# -- seed 001 ---------------------------------------------------------------------------------


def test_seed_001_update_example_on_a_created_execution(live: Live) -> None:
    """200 (seed 001's code). The status it already has: no change, ``metadata`` merged."""
    with live.client(**{"X-API-Key": live.api_key}) as http:
        workflow = seed_workflow(live, http)
        start = SEED_000_PATH.replace("{workflowId}", workflow["id"])
        created = send(http, "POST", start, SEED_000_BODY, **SEED_000_VALUES).json()
        path = SEED_001_PATH.replace("{workflowId}", workflow["id"]).replace(
            "{executionId}", created["id"]
        )
        response = send(http, "PUT", path, SEED_001_BODY)
        assert response.status_code == 200, response.text
        updated = response.json()
        checked(updated, EXECUTION)
        assert updated["status"] == "CREATED"
        assert updated["metadata"] == created["metadata"]
        live.run()
        done = send(http, "PUT", path, SEED_001_BODY)
        assert done.status_code == 409  # a COMPLETED execution cannot become CREATED again
        assert done.json()["code"] == "ILLEGAL_TRANSITION"


# -- seed 002's "Common Controls" (prose: the paths are API-RESEARCH 1.2's) ---------------------

BULK = {
    "total": F("integer"),
    "successful": F("integer"),
    "failed": F("integer"),
    "results": F(
        "array",
        fields={
            "success": F("boolean"),
            "executionId": F("uuid", nullable=True),
            "customerLeadId": F("string", nullable=True),
            "error": F("string", nullable=True),
        },
    ),
}
#: A list item without ``enriched``: the heavy fields left out (API-RESEARCH 1.5), the newer
#: list fields in.
LIST_ITEM = {
    **{k: v for k, v in EXECUTION.items() if k not in ("metadata", "definition", "stepExecutions")},
    "primaryPhone": F("string"),
    "stepIndex": F("integer", nullable=True),
    "nextRunAt": instant(nullable=True),
    "priorityDate": instant(nullable=True),
}
LIST = {
    "executions": F("array", fields=LIST_ITEM),
    "pagination": F("object", fields={"limit": F("integer"), "nextCursor": F("string", True)}),
}


def test_seed_002_common_controls_on_their_documented_paths(live: Live) -> None:
    """List, pause and resume, cancel one, cancel by phone (this workflow, then all), bulk
    create: the shapes of API-RESEARCH 1.2 and 1.5. Seed 002 names them without examples."""
    with live.client(**{"X-API-Key": live.api_key}) as http:
        workflow = seed_workflow(live, http)
        base = f"/api/v1/workflow/{workflow['id']}"
        leads = [
            {"customerLeadId": f"c-{n}", "primaryPhone": f"+1415555010{n}"} for n in range(1, 4)
        ]
        bulk = http.post(f"{base}/execution/bulk", json={"leads": leads})
        assert bulk.status_code == 201
        checked(bulk.json(), BULK)
        assert (bulk.json()["total"], bulk.json()["successful"]) == (3, 3)
        ids = [r["executionId"] for r in bulk.json()["results"]]
        listed = http.get(f"{base}/executions", params={"limit": 2})
        checked(listed.json(), LIST)
        assert listed.json()["pagination"]["nextCursor"] is not None
        paused = http.put(f"{base}/execution/{ids[0]}", json={"status": "PAUSED"}).json()
        assert paused["status"] == "PAUSED"
        resumed = http.put(f"{base}/execution/{ids[0]}", json={"status": "RUNNING"}).json()
        assert resumed["status"] == "CREATED"  # back to where it was
        cancelled = http.post(f"{base}/executions/{ids[0]}/cancel")
        assert cancelled.status_code == 200
        checked(cancelled.json(), EXECUTION)
        assert cancelled.json()["status"] == "CANCELLED"
        by_phone = http.post(f"{base}/executions/cancel", json={"phoneNumber": "+14155550102"})
        assert by_phone.json() == {"cancelledCount": 1}
        everywhere = http.post("/api/v1/executions/cancel", json={"phoneNumber": "+14155550103"})
        assert everywhere.json() == {"cancelledCount": 1}
        by_lead = http.post(f"{base}/executions/cancel", json={"customerLeadId": "c-1"})
        assert by_lead.json() == {"cancelledCount": 0}  # c-1 was already cancelled


#: Every spec the suite checks responses against (its figures: ``contract.fields_in``).
SPECS: dict[str, dict[str, F]] = {
    "execution (seeds 000, 001)": EXECUTION,
    "workflow (seed 002)": WORKFLOW,
    "bulk create (seed 002 controls)": BULK,
    "list executions (seed 002 controls)": LIST,
}
