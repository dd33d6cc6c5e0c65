"""Seed 003 (DialNexa graph workflows) as a conformance suite, over real HTTP on loopback, on
SQLite and PostgreSQL, with DialNexa's auth (``Authorization: Bearer <key>``).

Seed 003 prints one page: "Create a workflow", its "Getting started" steps, the workflow's
fields with their example values and the status enum. The request is built from those example
values as printed; the node, edge and lead requests of its "Getting started" follow the
shapes of ``API-RESEARCH.md`` 2.3-2.5 (the node reference), with its example configs verbatim
(``{"delay_hours": 48}``, the CONDITIONAL ``call_status`` example).

Where the seed is silent or contradicts itself, the test says what we chose and why:

- Its create example sends ``"status": "active"`` while its "Getting started" creates first,
  adds nodes and edges, enrols leads and activates last (``/activate`` is draft -> active).
  An active workflow runs leads, so we keep activation's checks on create: the example's
  body, with no graph, is a 400 (code ``empty``) that stores nothing; created as the getting
  started does, it goes draft -> active.
- Its ids are short strings (``wf_abc123``, ``org_xyz``): ours are UUIDs (strings).
- It names no code for DELETE: 204. It documents no response for the lead removal: the lead.
- Its example times have milliseconds (``.000Z``): ours are ISO 8601 UTC with ``Z``, with a
  fraction only when there is one.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.conformance.conftest import Live
from tests.conformance.contract import (
    LEAD_STATUS,
    NODE_TYPES,
    WORKFLOW_STATUS,
    F,
    Report,
    conform,
    instant,
    seed_text,
)

#: Seed 003's example values, as printed ("Example:" under each response field).
SEED_EXAMPLES = {
    "id": "wf_abc123",
    "organization_id": "org_xyz",
    "title": "Lead Nurture Sequence",
    "description": "Contacts cold leads three times before marking as unresponsive.",
    "status": "active",
    "created_at": "2024-03-01T09:00:00.000Z",
    "updated_at": "2024-03-02T11:00:00.000Z",
}
#: The create request: the fields a client writes (``title``, ``description``, ``status``).
SEED_CREATE = {k: SEED_EXAMPLES[k] for k in ("title", "description", "status")}
SEED_STATUS_ENUM = "draft, active, running, paused, completed, cancelled"
#: API-RESEARCH 2.3's example configs, verbatim.
TIME_CONFIG = {"delay_hours": 48}
CONDITIONAL_CONFIG = {
    "condition_field": "call_status",
    "branches": ["COMPLETED", "FAILED", "NO_ANSWER"],
}
PHONE_A, PHONE_B = "+12125550101", "+12125550102"

WORKFLOW = {
    "id": F("string"),
    "organization_id": F("string"),
    "title": F("string"),
    "description": F("string", nullable=True),
    "status": F("string", enum=WORKFLOW_STATUS),
    "created_at": instant(),
    "updated_at": instant(),
    # The get page's prose: the summary counts.
    "node_count": F("integer"),
    "edge_count": F("integer"),
    "enrolled_leads": F("integer"),
}
NODE = {
    "id": F("string"),
    "workflow_id": F("string"),
    "node_type": F("string", enum=NODE_TYPES),
    "label": F("string", nullable=True),
    "position_x": F("number"),
    "position_y": F("number"),
    "config": F("object"),
}
EDGE = {
    "id": F("string"),
    "workflow_id": F("string"),
    "from_node_id": F("string"),
    "to_node_id": F("string"),
    "label": F("string", nullable=True),
}
ENROLLED = {"workflow_id": F("string"), "leads_enrolled": F("integer"), "message": F("string")}
LEAD = {
    "id": F("string"),
    "workflow_id": F("string"),
    "phone_number": F("string"),
    "current_node_id": F("string", nullable=True),
    "status": F("string", enum=LEAD_STATUS),
    "created_at": instant(),
    "enrolled_at": instant(),
}
LEADS = {
    "data": F("array", fields=LEAD),
    "meta": F(
        "object",
        fields={
            "page": F("integer"),
            "limit": F("integer"),
            "total": F("integer"),
            "totalPages": F("integer"),
        },
    ),
}
HISTORY = {
    "id": F("string"),
    "workflow_id": F("string"),
    "history": F(
        "array",
        fields={
            "node_id": F("string"),
            "node_label": F("string", nullable=True),
            "node_type": F("string", enum=NODE_TYPES),
            "status": F("string"),
            "call_id": F("string", nullable=True),
            "entered_at": instant(),
            "exited_at": instant(nullable=True),
        },
    ),
}
#: Every spec the suite checks responses against (its figures: ``contract.fields_in``).
SPECS: dict[str, dict[str, F]] = {
    "workflow": WORKFLOW,
    "node": NODE,
    "edge": EDGE,
    "lead upload": ENROLLED,
    "lead list": LEADS,
    "lead history": HISTORY,
    "variable keys": {"keys": F("array", each=F("string"))},
    "lists of nodes, edges, workflows": {"data": F("array")},
}


def checked(body: Any, spec: dict[str, F]) -> Any:
    conform(body, spec, Report()).assert_clean()
    return body


def bearer(live: Live) -> httpx.Client:
    return live.client(Authorization=f"Bearer {live.api_key}")


def call_agent(http: httpx.Client) -> str:
    """A simulated call agent (setup on our agents API: DialNexa's are outside the seed).
    PHONE_A does not answer, then books; PHONE_B is a bad number."""
    script = {PHONE_A: ["NO_ANSWER", "CALENDLY"], PHONE_B: ["BAD_NUMBER"]}
    body = {"name": "caller", "channel": "CALL", "config": {"script": script}}
    response = http.post("/api/v1/agents", json=body)
    assert response.status_code == 201, response.text
    agent_id: str = response.json()["id"]
    return agent_id


def test_the_examples_here_are_the_seeds() -> None:
    text = seed_text("003")
    if text is None:
        pytest.skip("the seeds are not beside the project")
    for value in SEED_EXAMPLES.values():
        assert f'"{value}"' in text, value
    assert SEED_STATUS_ENUM in text
    assert tuple(SEED_STATUS_ENUM.split(", ")) == WORKFLOW_STATUS


def test_the_create_example_as_sent_is_refused_and_stores_nothing(live: Live) -> None:
    """``status: active`` with no graph: an active workflow must be runnable (see the module
    docstring); 400 with code ``empty``, and no draft left behind for a retry to duplicate."""
    with bearer(live) as http:
        for _ in range(2):
            response = http.post("/v1/workflows", json=SEED_CREATE)
            assert response.status_code == 400, response.text
            assert [e["code"] for e in response.json()["errors"]] == ["empty"]
        assert http.get("/v1/workflows").json()["data"] == []


def test_bearer_auth_is_required(live: Live) -> None:
    with live.client() as anonymous:
        response = anonymous.post("/v1/workflows", json=SEED_CREATE)
        assert response.status_code == 401
    with live.client(Authorization="Bearer not-a-key") as wrong:
        assert wrong.get("/v1/workflows").status_code == 401


def test_getting_started_create_nodes_edges_leads_activate(live: Live) -> None:
    """Seed 003's five steps, each answer checked against the documented fields, then the
    leads run: PHONE_A is not reached, waits 48 hours, books on the second call (converted);
    PHONE_B's number is bad (FAILED: dropped)."""
    with bearer(live) as http:
        # 1. Create the workflow (a draft: see the module docstring).
        draft_body = {k: v for k, v in SEED_CREATE.items() if k != "status"}
        created = http.post("/v1/workflows", json=draft_body)
        assert created.status_code == 201, created.text
        workflow = checked(created.json(), WORKFLOW)
        assert (workflow["title"], workflow["description"], workflow["status"]) == (
            SEED_EXAMPLES["title"],
            SEED_EXAMPLES["description"],
            "draft",
        )
        wf = workflow["id"]
        # 2. Nodes, one per step.
        agent_id = call_agent(http)
        nodes = {}
        for key, body in {
            "call": {
                "node_type": "VOICE_CALL",
                "label": "Call",
                "position_x": 0,
                "position_y": 0,
                "config": {"agent_id": agent_id, "from_phone_number": "+12125550100"},
            },
            "branch": {
                "node_type": "CONDITIONAL",
                "label": "Outcome",
                "config": CONDITIONAL_CONFIG,
            },
            "wait": {"node_type": "TIME", "label": "Wait 2 days", "config": TIME_CONFIG},
            "won": {"node_type": "CONVERTED", "label": "Booked"},
            "lost": {"node_type": "DROPPED", "label": "Dropped"},
        }.items():
            response = http.post(f"/v1/workflows/{wf}/nodes", json=body)
            assert response.status_code == 201, response.text
            nodes[key] = checked(response.json(), NODE)["id"]
        assert len(http.get(f"/v1/workflows/{wf}/nodes").json()["data"]) == 5
        # 3. Edges, checked in order: the first whose label matches wins; unlabelled: default.
        for source, target, label in [
            ("call", "branch", None),
            ("branch", "won", "COMPLETED"),
            ("branch", "lost", "FAILED"),
            ("branch", "wait", "NO_ANSWER"),
            ("branch", "lost", None),
            ("wait", "call", None),
        ]:
            body = {"from_node_id": nodes[source], "to_node_id": nodes[target], "label": label}
            response = http.post(f"/v1/workflows/{wf}/edges", json=body)
            assert response.status_code == 201, response.text
            checked(response.json(), EDGE)
        again = http.post(
            f"/v1/workflows/{wf}/edges",
            json={"from_node_id": nodes["call"], "to_node_id": nodes["branch"]},
        )
        assert again.status_code == 409  # a duplicate (from, to, label)
        # 4. Enrol leads: a CSV with a phone_number column; other columns become variables.
        csv_text = f"phone_number,first_name\n{PHONE_A},Ana\n{PHONE_B},Bo\n"
        enrolled = http.post(
            f"/v1/workflows/{wf}/leads", files={"file": ("leads.csv", csv_text, "text/csv")}
        )
        assert enrolled.status_code == 201, enrolled.text
        assert checked(enrolled.json(), ENROLLED)["leads_enrolled"] == 2
        assert checked(
            http.get(f"/v1/workflows/{wf}/leads/variable-keys").json(), {"keys": F("array")}
        )["keys"] == ["first_name"]
        # 5. Activate.
        activated = http.post(f"/v1/workflows/{wf}/activate")
        assert activated.status_code == 200, activated.text
        summary = checked(activated.json(), WORKFLOW)
        assert (summary["status"], summary["node_count"], summary["edge_count"]) == (
            "active",
            5,
            6,
        )
        assert summary["enrolled_leads"] == 2
        assert http.post(f"/v1/workflows/{wf}/activate").status_code == 409  # draft only
        # The leads run.
        live.run(for_=timedelta(days=3))
        leads = checked(http.get(f"/v1/workflows/{wf}/leads").json(), LEADS)["data"]
        where = {lead["phone_number"]: (lead["current_node_id"], lead["status"]) for lead in leads}
        assert where == {
            PHONE_A: (nodes["won"], "completed"),
            PHONE_B: (nodes["lost"], "completed"),
        }
        lead_a = next(lead["id"] for lead in leads if lead["phone_number"] == PHONE_A)
        history = checked(http.get(f"/v1/workflows/{wf}/leads/{lead_a}/history").json(), HISTORY)
        order = ["call", "branch", "wait", "call", "branch", "won"]
        assert [h["node_id"] for h in history["history"]] == [nodes[n] for n in order]
        assert [h["status"] for h in history["history"]][:3] == ["no_answer", "no_answer", "next"]


def test_lifecycle_verbs_and_their_conflicts(live: Live) -> None:
    """activate (draft -> active), pause, resume, cancel; 409 from the wrong status; PATCH
    of status 409 (the lifecycle endpoints record the intent); DELETE of an active workflow
    409; duplicate: a draft "(Copy)"."""
    with bearer(live) as http:
        definition = {
            "nodes": [
                {"id": "wait", "node_type": "TIME", "config": TIME_CONFIG},
                {"id": "won", "node_type": "CONVERTED"},
            ],
            "edges": [{"from_node_id": "wait", "to_node_id": "won"}],
        }
        wf = checked(
            http.post("/v1/workflows", json={**SEED_CREATE, "definition": definition}).json(),
            WORKFLOW,
        )
        assert wf["status"] == "active"  # the example's status, with a graph that can run
        url = f"/v1/workflows/{wf['id']}"
        assert http.patch(url, json={"status": "paused"}).status_code == 409
        renamed = http.patch(url, json={"title": "Renamed", "description": None})
        assert checked(renamed.json(), WORKFLOW)["title"] == "Renamed"
        assert http.delete(url).status_code == 409
        assert http.post(f"{url}/resume").status_code == 409
        assert checked(http.post(f"{url}/pause").json(), WORKFLOW)["status"] == "paused"
        assert checked(http.post(f"{url}/resume").json(), WORKFLOW)["status"] == "active"
        copy = http.post(f"{url}/duplicate")
        assert copy.status_code == 201
        assert (copy.json()["title"], copy.json()["status"]) == ("Renamed (Copy)", "draft")
        assert checked(http.post(f"{url}/cancel").json(), WORKFLOW)["status"] == "cancelled"
        assert http.post(f"{url}/cancel").status_code == 409  # already final
        assert http.delete(url).status_code == 204
        assert http.get(url).status_code == 404
        listed = checked(http.get("/v1/workflows").json(), {"data": F("array", fields=WORKFLOW)})
        assert [w["title"] for w in listed["data"]] == ["Renamed (Copy)"]


def test_a_removed_lead_and_the_running_alias(live: Live) -> None:
    """DELETE .../leads/{id}: later steps cancelled, status ``removed``, 409 once final.
    ``running`` (legacy) is read as ``active`` on create and in the list filter."""
    with bearer(live) as http:
        agent_id = call_agent(http)
        definition = {
            "nodes": [
                {"id": "wait", "node_type": "TIME", "config": TIME_CONFIG},
                {"id": "call", "node_type": "VOICE_CALL", "config": {"agent_id": agent_id}},
                {"id": "won", "node_type": "CONVERTED"},
            ],
            "edges": [
                {"from_node_id": "wait", "to_node_id": "call"},
                {"from_node_id": "call", "to_node_id": "won"},
            ],
        }
        body = {"title": "t", "status": "running", "definition": definition}
        wf = checked(http.post("/v1/workflows", json=body).json(), WORKFLOW)
        assert wf["status"] == "active"
        assert [w["id"] for w in http.get("/v1/workflows?status=running").json()["data"]] == [
            wf["id"]
        ]
        http.post(f"/v1/workflows/{wf['id']}/leads", json={"phone_number": PHONE_A})
        live.run(for_=timedelta(hours=1))
        [lead] = http.get(f"/v1/workflows/{wf['id']}/leads").json()["data"]
        assert (lead["status"], lead["current_node_id"]) == ("in_progress", "wait")
        url = f"/v1/workflows/{wf['id']}/leads/{lead['id']}"
        removed = http.delete(url)
        assert removed.status_code == 200
        assert checked(removed.json(), LEAD)["status"] == "removed"
        assert http.delete(url).status_code == 409
