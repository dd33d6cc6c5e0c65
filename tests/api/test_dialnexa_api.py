"""The DialNexa surface on /v1/workflows over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from reachflow.api.app import create_app
from reachflow.bootstrap import Services
from reachflow.runtime.clock import VirtualClock

PHONE = "+12125550123"


@pytest.fixture
def api(services: Services, org_key: tuple[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(services)) as client:
        client.headers["Authorization"] = f"Bearer {org_key[1]}"
        yield client


def agent(api: TestClient, channel: str = "CALL", **config: Any) -> str:
    body = {"name": channel, "channel": channel, "config": config}
    agent_id: str = api.post("/api/v1/agents", json=body).json()["id"]
    return agent_id


def workflow(api: TestClient, definition: dict[str, Any] | None = None) -> str:
    body: dict[str, Any] = {"title": "Follow-up", "description": "graph"}
    if definition is not None:
        body["definition"] = definition
    response = api.post("/v1/workflows", json=body)
    assert response.status_code == 201, response.json()
    workflow_id: str = response.json()["id"]
    return workflow_id


def node(api: TestClient, wf: str, node_type: str, **config: Any) -> str:
    body = {"node_type": node_type, "label": node_type.lower(), "config": config}
    response = api.post(f"/v1/workflows/{wf}/nodes", json=body)
    assert response.status_code == 201, response.json()
    node_id: str = response.json()["id"]
    return node_id


def edge(api: TestClient, wf: str, source: str, target: str, label: str | None = None) -> Any:
    body = {"from_node_id": source, "to_node_id": target, "label": label}
    return api.post(f"/v1/workflows/{wf}/edges", json=body)


def call_then_convert(api: TestClient, call_agent: str) -> tuple[str, str, str]:
    wf = workflow(api)
    call = node(api, wf, "VOICE_CALL", agent_id=call_agent)
    won = node(api, wf, "CONVERTED")
    assert edge(api, wf, call, won).status_code == 201
    return wf, call, won


def problems(response: Any) -> list[tuple[str, str]]:
    assert response.status_code == 400, response.json()
    return [(e["code"], e["field"]) for e in response.json()["errors"]]


# -- workflows -----------------------------------------------------------------------------


def test_create_get_list_patch_and_the_summary_counts(api: TestClient) -> None:
    wf, _, _ = call_then_convert(api, agent(api))
    got = api.get(f"/v1/workflows/{wf}").json()
    assert got["status"] == "draft"
    assert (got["title"], got["node_count"], got["edge_count"]) == ("Follow-up", 2, 1)
    assert got["enrolled_leads"] == 0
    patched = api.patch(f"/v1/workflows/{wf}", json={"name": "Renewals"}).json()
    assert patched["title"] == "Renewals"
    listed = api.get("/v1/workflows", params={"status": "draft"}).json()
    assert [w["id"] for w in listed["data"]] == [wf]
    assert listed["meta"] == {"page": 1, "limit": 20, "total": 1, "totalPages": 1}
    assert api.get("/v1/workflows", params={"status": "running"}).json()["data"] == []


def test_bearer_auth_is_required(api: TestClient) -> None:
    response = api.get("/v1/workflows", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "title"),
        ({"title": "x", "status": "finished"}, "status"),
        ({"title": "x", "status": "paused"}, "status"),
        ({"title": "x", "colour": "red"}, "colour"),
        ({"title": "x", "workflow_schedule": {"monday": 1}}, "workflow_schedule.monday"),
        ({"title": "x", "definition": {"steps": []}}, "definition"),
        ({"title": "x", "definition": {"nodes": [{"id": "a", "node_type": "FAX"}]}}, None),
    ],
)
def test_bad_workflow_bodies_are_400_naming_the_field(
    api: TestClient, body: dict[str, Any], field: str | None
) -> None:
    response = api.post("/v1/workflows", json=body)
    assert response.status_code == 400, response.json()
    if field is not None:
        assert response.json()["field"] == field
    else:
        assert "node_type" in response.json()["field"]


def test_patch_of_status_is_409_and_unknown_workflow_404(api: TestClient) -> None:
    wf = workflow(api)
    response = api.patch(f"/v1/workflows/{wf}", json={"status": "active"})
    assert response.status_code == 409
    assert "lifecycle" in response.json()["message"]
    assert api.get("/v1/workflows/nope").status_code == 404
    assert api.post("/v1/workflows/nope/activate").status_code == 404


def test_lifecycle_verbs_and_their_conflicts(api: TestClient) -> None:
    wf, _, _ = call_then_convert(api, agent(api))
    assert api.post(f"/v1/workflows/{wf}/pause").status_code == 409
    assert api.post(f"/v1/workflows/{wf}/resume").status_code == 409
    assert api.post(f"/v1/workflows/{wf}/activate").json()["status"] == "active"
    assert api.post(f"/v1/workflows/{wf}/activate").status_code == 409
    assert api.delete(f"/v1/workflows/{wf}").status_code == 409
    assert api.post(f"/v1/workflows/{wf}/pause").json()["status"] == "paused"
    assert api.post(f"/v1/workflows/{wf}/resume").json()["status"] == "active"
    assert api.post(f"/v1/workflows/{wf}/cancel").json()["status"] == "cancelled"
    assert api.post(f"/v1/workflows/{wf}/cancel").status_code == 409
    assert api.post(f"/v1/workflows/{wf}/resume").status_code == 409
    assert api.post(f"/v1/workflows/{wf}/nodes", json={"node_type": "DROPPED"}).status_code == 409
    assert api.delete(f"/v1/workflows/{wf}").status_code == 204
    assert api.get(f"/v1/workflows/{wf}").status_code == 404


def test_duplicate_copies_the_graph_into_a_draft_without_leads(api: TestClient) -> None:
    wf, _, _ = call_then_convert(api, agent(api))
    api.post(f"/v1/workflows/{wf}/leads", json={"phone_number": PHONE})
    copy = api.post(f"/v1/workflows/{wf}/duplicate")
    assert copy.status_code == 201
    body = copy.json()
    assert body["title"] == "Follow-up (Copy)"
    assert (body["status"], body["node_count"], body["edge_count"]) == ("draft", 2, 1)
    assert body["enrolled_leads"] == 0
    assert body["id"] != wf


# -- nodes and edges -------------------------------------------------------------------------


def test_nodes_crud_and_node_type_is_immutable(api: TestClient) -> None:
    wf = workflow(api)
    wait = node(api, wf, "TIME", delay_hours=48)
    assert api.get(f"/v1/workflows/{wf}/nodes/{wait}").json()["config"] == {"delay_hours": 48}
    patched = api.patch(
        f"/v1/workflows/{wf}/nodes/{wait}", json={"label": "two days", "position_x": 120}
    ).json()
    assert (patched["label"], patched["position_x"]) == ("two days", 120)
    immutable = api.patch(f"/v1/workflows/{wf}/nodes/{wait}", json={"node_type": "DROPPED"})
    assert immutable.status_code == 400
    assert immutable.json()["field"] == "node_type"
    bad = api.post(f"/v1/workflows/{wf}/nodes", json={"node_type": "FAX"})
    assert bad.status_code == 400
    assert "node_type" in bad.json()["field"]
    assert api.delete(f"/v1/workflows/{wf}/nodes/{wait}").status_code == 204
    assert api.get(f"/v1/workflows/{wf}/nodes").json()["data"] == []
    assert api.delete(f"/v1/workflows/{wf}/nodes/{wait}").status_code == 404


def test_edges_duplicate_is_409_and_foreign_nodes_404(api: TestClient) -> None:
    wf = workflow(api)
    call = node(api, wf, "VOICE_CALL", agent_id=agent(api))
    won = node(api, wf, "CONVERTED")
    first = edge(api, wf, call, won, "COMPLETED")
    assert first.status_code == 201
    assert edge(api, wf, call, won, "completed").status_code == 409
    other = workflow(api)
    foreign = node(api, other, "DROPPED")
    missing = edge(api, wf, call, foreign)
    assert missing.status_code == 404
    assert missing.json()["field"] == "to_node_id"
    out_of_terminal = edge(api, wf, won, call)
    assert out_of_terminal.status_code == 400
    assert api.patch(f"/v1/workflows/{other}/nodes/{call}", json={"label": "x"}).status_code == 404
    listed = api.get(f"/v1/workflows/{wf}/edges").json()["data"]
    assert [e["id"] for e in listed] == [first.json()["id"]]
    assert api.delete(f"/v1/workflows/{wf}/edges/{listed[0]['id']}").status_code == 204
    assert api.get(f"/v1/workflows/{wf}/edges").json()["data"] == []


def test_removing_a_node_removes_its_edges(api: TestClient) -> None:
    wf, call, _ = call_then_convert(api, agent(api))
    assert api.delete(f"/v1/workflows/{wf}/nodes/{call}").status_code == 204
    assert api.get(f"/v1/workflows/{wf}/edges").json()["data"] == []


# -- validation before activation -----------------------------------------------------------


def test_activation_names_every_problem(api: TestClient) -> None:
    text_agent = agent(api, "TEXT")
    wf = workflow(api)
    call = node(api, wf, "VOICE_CALL", agent_id=text_agent)  # wrong channel
    unknown_field = api.post(
        f"/v1/workflows/{wf}/nodes",
        json={
            "node_type": "CONDITIONAL",
            "config": {
                "conditions": {
                    "logic": "AND",
                    "conditions": [{"field": "colour", "operator": "exists"}],
                }
            },
        },
    )
    assert unknown_field.status_code == 400
    assert unknown_field.json()["errors"][0]["code"] == "unknown_field"
    assert unknown_field.json()["field"].endswith("config.conditions.conditions[0].field")
    check = node(api, wf, "CONDITIONAL")  # no test yet: refused at activation
    lonely = node(api, wf, "TIME", delay_days=1)  # unreachable, no way out
    edge(api, wf, call, check)
    response = api.post(f"/v1/workflows/{wf}/activate")
    found = problems(response)
    codes = {code for code, _ in found}
    assert {"wrong_channel", "unreachable", "no_way_out", "required"} <= codes
    assert ("wrong_channel", f"definition.nodes[{call}].config.agent_id") in found
    assert any(field.startswith(f"definition.nodes[{lonely}]") for _, field in found)
    assert any(field.startswith(f"definition.nodes[{check}]") for _, field in found)
    assert api.get(f"/v1/workflows/{wf}").json()["status"] == "draft"


def test_a_cycle_without_a_wait_or_a_step_is_refused(api: TestClient) -> None:
    wf = workflow(api)
    call = node(api, wf, "VOICE_CALL", agent_id=agent(api))
    check = node(
        api,
        wf,
        "CONDITIONAL",
        conditions={
            "logic": "AND",
            "conditions": [{"field": "variables.tier", "operator": "equals", "value": "gold"}],
        },
    )
    tag = node(api, wf, "APPLICATION", action="set_variable", key="seen", value=True)
    done = node(api, wf, "CONVERTED")
    edge(api, wf, call, check)
    edge(api, wf, check, done, "true")
    edge(api, wf, check, tag, "false")
    edge(api, wf, tag, check)
    found = problems(api.post(f"/v1/workflows/{wf}/activate"))
    assert [code for code, _ in found] == ["spin_cycle"]


def test_prompts_may_only_use_known_variable_keys(api: TestClient) -> None:
    wf = workflow(api)
    sms = node(api, wf, "SMS", agent_id=agent(api, "TEXT"), message="Hi {{first_name}} {{tier}}")
    done = node(api, wf, "CONVERTED")
    edge(api, wf, sms, done)
    api.post(f"/v1/workflows/{wf}/leads", json={"phone_number": PHONE, "first_name": "Ann"})
    found = problems(api.post(f"/v1/workflows/{wf}/activate"))
    assert found == [("unknown_variable", f"definition.nodes[{sms}].config.message")]


def test_labels_a_node_can_never_emit_are_refused(api: TestClient) -> None:
    wf, call, won = call_then_convert(api, agent(api))
    edge(api, wf, call, won, "success")
    found = problems(api.post(f"/v1/workflows/{wf}/activate"))
    assert [code for code, _ in found] == ["bad_label"]


# -- versions ------------------------------------------------------------------------------


def test_editing_an_active_graph_makes_a_new_version(
    api: TestClient, services: Services, clock: VirtualClock
) -> None:
    call_agent = agent(api, defaultDisposition="NO_ANSWER")
    wf, call, _ = call_then_convert(api, call_agent)
    api.patch(f"/v1/workflows/{wf}/nodes/{call}", json={"label": "draft edit"})
    assert api.get(f"/v1/workflows/{wf}").json()["version"] == 1  # drafts edit in place
    assert api.post(f"/v1/workflows/{wf}/activate").status_code == 200
    lead = api.post(f"/v1/workflows/{wf}/leads", json={"phone_number": PHONE})
    assert lead.status_code == 201
    wait = node(api, wf, "TIME", delay_days=1)
    assert api.get(f"/v1/workflows/{wf}").json()["version"] == 2
    assert edge(api, wf, call, wait, "DNP").status_code == 201
    versions = api.get(f"/v1/workflows/{wf}/versions").json()["data"]
    assert [v["version"] for v in versions] == [1, 2, 3]
    assert [v["node_count"] for v in versions] == [2, 3, 3]
    # A running edit may not introduce anything but wiring problems.
    wrong_channel = api.post(
        f"/v1/workflows/{wf}/nodes",
        json={"node_type": "VOICE_CALL", "config": {"agent_id": agent(api, "TEXT")}},
    )
    assert wrong_channel.status_code == 400
    services.engine.run_until_idle(clock)
    leads = api.get(f"/v1/workflows/{wf}/leads").json()["data"]
    execution = api.get(f"/api/v1/workflow/{wf}/execution/{leads[0]['id']}").json()
    assert len(execution["definition"]["nodes"]) == 2  # it started on version 1


# -- leads ---------------------------------------------------------------------------------


def test_csv_upload_list_filters_history_keys_and_removal(
    api: TestClient, services: Services, clock: VirtualClock
) -> None:
    wf = workflow(api)
    call = node(api, wf, "VOICE_CALL", agent_id=agent(api, defaultDisposition="CALENDLY"))
    wait = node(api, wf, "TIME", delay_days=1)
    done = node(api, wf, "CONVERTED")
    edge(api, wf, call, wait)
    edge(api, wf, wait, done)
    csv_text = "phone_number,first_name,zipcode\n+12125550123,Ann,10001\n(212) 555-0199,Bob,\n"
    uploaded = api.post(
        f"/v1/workflows/{wf}/leads", files={"file": ("leads.csv", csv_text, "text/csv")}
    )
    assert uploaded.status_code == 201
    assert uploaded.json() == {
        "workflow_id": wf,
        "leads_enrolled": 2,
        "message": "2 leads enrolled",
    }
    services.engine.run_until_idle(clock)  # draft: nothing starts
    assert services.simulator.calls_placed.total() == 0
    pending = api.get(f"/v1/workflows/{wf}/leads", params={"status": "pending"}).json()
    assert pending["meta"]["total"] == 2
    assert api.get(f"/v1/workflows/{wf}/leads/variable-keys").json() == {
        "keys": ["first_name", "zipcode"]
    }
    api.post(f"/v1/workflows/{wf}/activate")
    services.engine.run_until_idle(clock, until=clock.now() + timedelta(hours=1))
    waiting = api.get(f"/v1/workflows/{wf}/leads", params={"current_node_id": wait}).json()
    assert waiting["meta"]["total"] == 2
    assert {lead["status"] for lead in waiting["data"]} == {"in_progress"}
    page = api.get(f"/v1/workflows/{wf}/leads", params={"limit": 1, "page": 2}).json()
    assert page["meta"] == {"page": 2, "limit": 1, "total": 2, "totalPages": 2}
    first = api.get(f"/v1/workflows/{wf}/leads", params={"limit": 1, "page": 1}).json()
    pages = [first["data"][0], page["data"][0]]
    assert {lead["phone_number"] for lead in pages} == {PHONE, "+12125550199"}
    [bob] = [lead for lead in pages if lead["phone_number"] == "+12125550199"]
    removed = api.delete(f"/v1/workflows/{wf}/leads/{bob['id']}")
    assert removed.json()["status"] == "removed"
    assert api.delete(f"/v1/workflows/{wf}/leads/{bob['id']}").status_code == 409
    services.engine.run_until_idle(clock)
    ann = api.get(f"/v1/workflows/{wf}/leads", params={"status": "completed"}).json()["data"]
    assert [lead["phone_number"] for lead in ann] == [PHONE]
    assert ann[0]["outcome"] == "converted"
    history = api.get(f"/v1/workflows/{wf}/leads/{ann[0]['id']}/history").json()
    assert [h["node_id"] for h in history["history"]] == [call, wait, done]
    assert history["history"][0]["status"] == "calendly"
    assert history["history"][0]["call_id"] is not None
    assert [t["to"] for t in history["transitions"]] == [wait, done]
    assert len(history["all_nodes"]) == 3


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"files": {"file": ("l.csv", "name\nAnn\n", "text/csv")}}, "file"),
        ({"json": {"leads": []}}, "leads"),
        ({"json": {"leads": [{"phone_number": PHONE}, {"phone_number": "12"}]}}, "leads[1]"),
        ({"json": {"leads": [{"phone_number": PHONE, "zipcode": "1"}]}}, "leads[0].zipcode"),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, "body"),
    ],
)
def test_bad_lead_uploads_are_400_and_enroll_nothing(
    api: TestClient, kwargs: dict[str, Any], field: str
) -> None:
    wf = workflow(api)
    response = api.post(f"/v1/workflows/{wf}/leads", **kwargs)
    assert response.status_code == 400, response.json()
    assert response.json()["field"].startswith(field)
    assert api.get(f"/v1/workflows/{wf}/leads").json()["meta"]["total"] == 0


def test_leads_of_a_cancelled_workflow_are_409_and_unknown_lead_404(api: TestClient) -> None:
    wf, _, _ = call_then_convert(api, agent(api))
    api.post(f"/v1/workflows/{wf}/cancel")
    response = api.post(f"/v1/workflows/{wf}/leads", json={"phone_number": PHONE})
    assert response.status_code == 409
    assert api.get(f"/v1/workflows/{wf}/leads/nope/history").status_code == 404
    assert api.get(f"/v1/workflows/{wf}/leads", params={"status": "lost"}).status_code == 400


# -- the Feather surface sees graphs too -----------------------------------------------------


def test_feather_workflows_accept_and_return_a_graph(api: TestClient) -> None:
    call_agent = agent(api, defaultDisposition="CALENDLY")
    graph = {
        "nodes": [
            {"id": "call", "node_type": "VOICE_CALL", "config": {"agent_id": call_agent}},
            {"id": "won", "node_type": "CONVERTED"},
        ],
        "edges": [{"id": "e1", "from_node_id": "call", "to_node_id": "won"}],
    }
    body = {"name": "graph via Feather", "timezone": "America/New_York", "definition": graph}
    created = api.post("/api/v1/workflow", json=body)
    assert created.status_code == 201, created.json()
    assert created.json()["definition"]["nodes"][0]["id"] == "call"
    broken = {**graph, "edges": []}
    refused = api.post("/api/v1/workflow", json={**body, "definition": broken})
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["code"] == "no_way_out"
    execution = api.post(
        f"/api/v1/workflow/{created.json()['id']}/execution",
        json={"customerLeadId": "c1", "primaryPhone": PHONE},
    )
    assert execution.status_code == 201
    leads = api.get(f"/v1/workflows/{created.json()['id']}/leads").json()
    assert [lead["id"] for lead in leads["data"]] == [execution.json()["id"]]


def test_a_malformed_graph_on_save_names_each_problem_with_its_code(api: TestClient) -> None:
    graph = {
        "nodes": [{"id": "a", "node_type": "FAX"}],
        "edges": [{"id": "e", "from_node_id": "a", "to_node_id": "zz"}],
    }
    created = api.post("/v1/workflows", json={"title": "x", "definition": graph})
    codes = {(e["code"], e["field"]) for e in created.json()["errors"]}
    assert ("unknown_node_type", "definition.nodes[a].node_type") in codes
    assert ("unknown_node", "definition.edges[e].to_node_id") in codes
    feather = api.post(
        "/api/v1/workflow",
        json={"name": "x", "timezone": "Mars/Base", "definition": graph},
    )
    assert feather.status_code == 400
    found = {(e["code"], e["field"]) for e in feather.json()["errors"]}
    assert ("invalid", "timezone") in found
    assert ("unknown_node_type", "definition.nodes[a].node_type") in found
