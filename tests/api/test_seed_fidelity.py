"""Issue 11: what a client switching from DialNexa (seed 003) or Feather (seeds 000-002) tripped
on, one test per item, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from reachflow.api.app import create_app
from reachflow.bootstrap import Services
from reachflow.runtime.clock import VirtualClock

PHONES = ["+12125550101", "+12125550102", "+12125550103", "+12125550104"]


@pytest.fixture
def api(services: Services, org_key: tuple[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(services)) as client:
        client.headers["Authorization"] = f"Bearer {org_key[1]}"
        yield client


def agent(api: TestClient, channel: str = "CALL", **config: Any) -> str:
    body = {"name": channel, "channel": channel, "config": config}
    agent_id: str = api.post("/api/v1/agents", json=body).json()["id"]
    return agent_id


def created(response: Any) -> dict[str, Any]:
    assert response.status_code == 201, response.json()
    body: dict[str, Any] = response.json()
    return body


# -- 1. DialNexa's CONDITIONAL example ---------------------------------------------------------

SEED_CONDITIONAL = {
    "node_type": "CONDITIONAL",
    "config": {"condition_field": "call_status", "branches": ["COMPLETED", "FAILED", "NO_ANSWER"]},
}


def test_seed_003s_conditional_example_saves_and_routes_by_the_calls_outcome_group(
    api: TestClient, services: Services, clock: VirtualClock
) -> None:
    script = {
        PHONES[0]: ["CALENDLY"],  # group COMPLETED
        PHONES[1]: ["BAD_NUMBER"],  # group FAILED
        PHONES[2]: ["NO_ANSWER"],  # the disposition itself is a branch
        PHONES[3]: ["LINE_BUSY"],  # group DNP: no branch, the unlabelled edge
    }
    caller = agent(api, script=script)
    wf = created(api.post("/v1/workflows", json={"title": "call, then branch"}))["id"]
    call = created(
        api.post(
            f"/v1/workflows/{wf}/nodes",
            json={"key": "call", "node_type": "VOICE_CALL", "config": {"agent_id": caller}},
        )
    )
    assert call["id"] == "call"
    branch = created(api.post(f"/v1/workflows/{wf}/nodes", json=SEED_CONDITIONAL))  # verbatim
    assert branch["config"] == SEED_CONDITIONAL["config"]
    ends = {
        name: created(api.post(f"/v1/workflows/{wf}/nodes", json={"node_type": "DROPPED"}))["id"]
        for name in ("completed", "failed", "no_answer", "other")
    }
    edges = [
        ("call", branch["id"], None),
        (branch["id"], ends["completed"], "COMPLETED"),
        (branch["id"], ends["failed"], "FAILED"),
        (branch["id"], ends["no_answer"], "NO_ANSWER"),
        (branch["id"], ends["other"], None),  # the default
    ]
    for source, target, label in edges:
        body = {"from_node_id": source, "to_node_id": target, "label": label}
        created(api.post(f"/v1/workflows/{wf}/edges", json=body))
    created(api.post(f"/v1/workflows/{wf}/leads", json=[{"phone_number": p} for p in PHONES]))
    activated = api.post(f"/v1/workflows/{wf}/activate")
    assert activated.status_code == 200, activated.json()
    services.engine.run_until_idle(clock, until=clock.now() + timedelta(hours=1))
    leads = api.get(f"/v1/workflows/{wf}/leads").json()["data"]
    where = {lead["phone_number"]: lead["current_node_id"] for lead in leads}
    assert where == {
        PHONES[0]: ends["completed"],
        PHONES[1]: ends["failed"],
        PHONES[2]: ends["no_answer"],
        PHONES[3]: ends["other"],
    }


def test_call_status_also_reads_in_conditions(api: TestClient) -> None:
    condition = {"field": "call_status", "operator": "equals", "value": "DNP"}
    node = {"node_type": "CONDITIONAL", "config": {"conditions": [condition]}}
    wf = created(api.post("/v1/workflows", json={"title": "x"}))["id"]
    assert api.post(f"/v1/workflows/{wf}/nodes", json=node).status_code == 201
    wrong = {**node, "config": {"conditions": [{**condition, "field": "call_state"}]}}
    refused = api.post(f"/v1/workflows/{wf}/nodes", json=wrong)
    assert refused.status_code == 400
    assert "call_status" in refused.json()["errors"][0]["message"]


# -- 2. a refused create stores nothing ------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"title": "x", "status": "active"},
        {
            "title": "x",
            "status": "active",
            "definition": {
                "nodes": [
                    {"id": "c", "node_type": "VOICE_CALL", "config": {"agent_id": "nobody"}},
                    {"id": "w", "node_type": "CONVERTED"},
                ],
                "edges": [{"from_node_id": "c", "to_node_id": "w"}],
            },
        },
    ],
)
def test_a_refused_active_create_leaves_no_draft(api: TestClient, body: dict[str, Any]) -> None:
    for _ in range(2):  # a retrying client makes no duplicates
        response = api.post("/v1/workflows", json=body)
        assert response.status_code == 400
        assert "id" not in response.json()
    assert api.get("/v1/workflows").json()["meta"]["total"] == 0


# -- 3. entry_node_id ------------------------------------------------------------------------


def test_entry_node_id_is_the_first_node_when_not_set(api: TestClient) -> None:
    caller = agent(api)
    definition = {
        "nodes": [
            {"id": "call", "node_type": "VOICE_CALL", "config": {"agent_id": caller}},
            {"id": "won", "node_type": "CONVERTED"},
        ],
        "edges": [{"id": "e1", "from_node_id": "call", "to_node_id": "won"}],
    }
    wf = created(api.post("/v1/workflows", json={"title": "x", "definition": definition}))
    assert wf["entry_node_id"] == "call"
    activated = api.post(f"/v1/workflows/{wf['id']}/activate").json()
    assert activated["entry_node_id"] == "call"
    assert api.get(f"/v1/workflows/{wf['id']}").json()["entry_node_id"] == "call"
    assert api.get("/v1/workflows").json()["data"][0]["entry_node_id"] == "call"


# -- 4. attempts.<nodeId>: client ids and warnings on save --------------------------------------


def test_an_unknown_attempts_node_is_a_warning_on_save_and_keys_name_nodes(
    api: TestClient,
) -> None:
    caller = agent(api)
    tries = {"field": "attempts.call", "operator": "less_than", "value": 3}
    definition = {
        "nodes": [
            {"key": "check", "node_type": "CONDITIONAL", "config": {"conditions": [tries]}},
            {"key": "won", "node_type": "CONVERTED"},
        ],
        "edges": [],
    }
    wf = created(api.post("/v1/workflows", json={"title": "x", "definition": definition}))
    assert [(w["code"], w["field"]) for w in wf["warnings"]] == [
        ("unknown_field", "definition.nodes[check].config.conditions[0].field")
    ]
    assert "no node 'call'" in wf["warnings"][0]["message"]
    node = {"key": "call", "node_type": "VOICE_CALL", "config": {"agent_id": caller}}
    added = created(api.post(f"/v1/workflows/{wf['id']}/nodes", json=node))
    assert added["id"] == "call"
    assert api.get(f"/v1/workflows/{wf['id']}").json()["warnings"] == []
    # A node saved with a reference to a node not there yet carries the warning itself.
    other = {
        "node_type": "CONDITIONAL",
        "config": {"conditions": [{**tries, "field": "attempts.x"}]},
    }
    saved = created(api.post(f"/v1/workflows/{wf['id']}/nodes", json=other))
    assert [w["code"] for w in saved["warnings"]] == ["unknown_field"]
    both = {"id": "a", "key": "b", "node_type": "CONVERTED"}
    assert api.post(f"/v1/workflows/{wf['id']}/nodes", json=both).status_code == 400


# -- 5. inline edges without an id ------------------------------------------------------------


def test_inline_edges_get_ids_and_a_node_without_one_is_told_it_is_required(
    api: TestClient,
) -> None:
    definition = {
        "nodes": [
            {"id": "wait", "node_type": "TIME", "config": {"delay_hours": 1}},
            {"id": "done", "node_type": "CONVERTED"},
        ],
        "edges": [{"from_node_id": "wait", "to_node_id": "done"}],
    }
    wf = created(api.post("/v1/workflows", json={"title": "x", "definition": definition}))
    edges = api.get(f"/v1/workflows/{wf['id']}/edges").json()["data"]
    assert [(e["id"], e["from_node_id"], e["to_node_id"]) for e in edges] == [
        ("edge_1", "wait", "done")
    ]
    nameless = {**definition, "nodes": [{"node_type": "CONVERTED"}]}
    refused = api.post("/v1/workflows", json={"title": "x", "definition": nameless})
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["field"] == "definition.nodes[0].id"
    assert refused.json()["errors"][0]["message"].startswith("is required")
    feather = {"name": "x", "active": False, "definition": definition}
    stored = created(api.post("/api/v1/workflow", json=feather))
    assert stored["definition"]["edges"][0]["id"] == "edge_1"


# -- 6. leads: CSV lines, grouped reasons, upload order, wording, next_run_at, DELETE -----------


def test_csv_errors_name_the_file_line_and_are_grouped_by_reason(api: TestClient) -> None:
    wf = created(api.post("/v1/workflows", json={"title": "x"}))["id"]
    csv_text = (
        "phone_number,note,zipcode\n"  # line 1
        "+12125550101,ok,\n"  # 2
        "12,bad phone,\n"  # 3
        "\n"  # 4: blank, skipped
        '+12125550102,"two\nlines",1\n'  # 5-6: a bad ZIP on a row of two lines
        "34,bad phone again,\n"  # 7
    )
    response = api.post(
        f"/v1/workflows/{wf}/leads", files={"file": ("leads.csv", csv_text, "text/csv")}
    )
    assert response.status_code == 400, response.json()
    errors = response.json()["errors"]
    assert [(e["field"], e["lines"]) for e in errors] == [
        ("phone_number", [3, 7]),
        ("zipcode", [5]),
    ]
    assert "(1)" not in response.json()["message"]  # no library text
    assert "on lines 3, 7" in response.json()["message"]
    assert api.get(f"/v1/workflows/{wf}/leads").json()["meta"]["total"] == 0
    as_json = api.post(
        f"/v1/workflows/{wf}/leads",
        json=[{"phone_number": "12"}, {"phone_number": "+12125550101"}, {"phone_number": "34"}],
    )
    assert [(e["field"], e["leads"]) for e in as_json.json()["errors"]] == [
        ("leads[0].phone_number", [0, 2])
    ]


def test_leads_list_in_upload_order_and_one_is_one_lead(
    api: TestClient, clock: VirtualClock
) -> None:
    wf = created(api.post("/v1/workflows", json={"title": "x"}))["id"]
    phones = [f"+1212555{n:04d}" for n in range(150, 100, -1)]  # descending on purpose
    one = created(api.post(f"/v1/workflows/{wf}/leads", json={"phone_number": "+12125550200"}))
    assert one["message"] == "1 lead enrolled"
    clock.advance(timedelta(seconds=1))  # uploads list by time, then within one in row order
    many = created(
        api.post(f"/v1/workflows/{wf}/leads", json=[{"phone_number": p} for p in phones])
    )
    assert many["message"] == "50 leads enrolled"
    listed = api.get(f"/v1/workflows/{wf}/leads", params={"limit": 100}).json()["data"]
    assert [lead["phone_number"] for lead in listed] == ["+12125550200", *phones]


def test_next_run_at_is_null_while_a_call_is_in_flight(
    api: TestClient, services: Services, clock: VirtualClock
) -> None:
    caller = agent(api)
    definition = {
        "nodes": [
            {"id": "wait", "node_type": "TIME", "config": {"delay_hours": 1}},
            {"id": "call", "node_type": "VOICE_CALL", "config": {"agent_id": caller}},
            {"id": "done", "node_type": "CONVERTED"},
        ],
        "edges": [
            {"from_node_id": "wait", "to_node_id": "call"},
            {"from_node_id": "call", "to_node_id": "done"},
        ],
    }
    body = {"title": "x", "status": "active", "definition": definition}
    wf = created(api.post("/v1/workflows", json=body))["id"]
    created(api.post(f"/v1/workflows/{wf}/leads", json={"phone_number": PHONES[0]}))
    services.engine.run_until_idle(clock, until=clock.now())
    [waiting] = api.get(f"/v1/workflows/{wf}/leads").json()["data"]
    assert waiting["current_node_id"] == "wait"
    assert waiting["next_run_at"] == "2026-03-09T15:00:00Z"  # the delay's end
    services.engine.run_until_idle(clock, until=clock.now() + timedelta(hours=1))
    [calling] = api.get(f"/v1/workflows/{wf}/leads").json()["data"]
    assert calling["current_node_id"] == "call"
    assert calling["next_run_at"] is None  # waiting on the agent, not on a timer
    feather = api.get(f"/api/v1/workflow/{wf}/execution/{calling['id']}").json()
    assert feather["nextRunAt"] is None


def test_deleting_an_active_workflow_says_cancel_or_pause(api: TestClient) -> None:
    definition = {"nodes": [{"id": "done", "node_type": "CONVERTED"}], "edges": []}
    wf = created(
        api.post("/v1/workflows", json={"title": "x", "status": "active", "definition": definition})
    )["id"]
    refused = api.delete(f"/v1/workflows/{wf}")
    assert refused.status_code == 409
    assert "cancel or pause it first" in refused.json()["message"]
    api.post(f"/v1/workflows/{wf}/pause")
    assert api.delete(f"/v1/workflows/{wf}").status_code == 204


# -- Feather ----------------------------------------------------------------------------------


def feather_workflow(api: TestClient, *steps: dict[str, Any], **extra: Any) -> str:
    body = {"name": "f", "definition": {"steps": list(steps)}, **extra}
    return str(created(api.post("/api/v1/workflow", json=body))["id"])


def call_step(agent_id: str, order: int = 1, **extra: Any) -> dict[str, Any]:
    return {"type": "CALL", "order": order, "agentId": agent_id, **extra}


def start(api: TestClient, wf: str, phone: str = PHONES[0], **extra: Any) -> dict[str, Any]:
    body = {"customerLeadId": "c-1", "primaryPhone": phone, **extra}
    return created(api.post(f"/api/v1/workflow/{wf}/execution", json=body))


# -- 7. seed 001's body verbatim ----------------------------------------------------------------


def test_seed_001s_example_body_is_a_no_op_that_merges_metadata(
    api: TestClient, services: Services, clock: VirtualClock
) -> None:
    wf = feather_workflow(api, call_step(agent(api)), call_step(agent(api), 2, delayInSecs=3600))
    execution = start(api, wf, metadata={"a": 1})
    url = f"/api/v1/workflow/{wf}/execution/{execution['id']}"
    same = api.put(url, json={"status": "CREATED", "metadata": {}})  # seed 001, verbatim
    assert same.status_code == 200, same.json()
    assert (same.json()["status"], same.json()["metadata"]) == ("CREATED", {"a": 1})
    merged = api.put(url, json={"status": "CREATED", "metadata": {"b": 2}}).json()
    assert merged["metadata"] == {"a": 1, "b": 2}
    services.engine.run_until_idle(clock, until=clock.now() + timedelta(minutes=5))
    assert api.get(url).json()["status"] == "RUNNING"
    back = api.put(url, json={"status": "CREATED", "metadata": {"c": 3}})
    assert back.status_code == 409
    assert back.json()["code"] == "ILLEGAL_TRANSITION"
    assert api.get(url).json()["metadata"] == {"a": 1, "b": 2}  # all or nothing
    assert api.put(url, json={"status": "RUNNING", "metadata": {"c": 3}}).status_code == 200


# -- 8. the final disposition -----------------------------------------------------------------


def test_the_execution_disposition_stays_null_until_it_ends(
    api: TestClient, services: Services, clock: VirtualClock
) -> None:
    first = agent(api, defaultDisposition="NO_ANSWER")
    second = agent(api, defaultDisposition="CALENDLY")
    wf = feather_workflow(api, call_step(first), call_step(second, 2, delayInSecs=3600))
    execution = start(api, wf)
    url = f"/api/v1/workflow/{wf}/execution/{execution['id']}"
    services.engine.run_until_idle(clock, until=clock.now() + timedelta(minutes=5))
    running = api.get(url).json()
    assert running["status"] == "RUNNING"
    assert running["stepExecutions"][0]["disposition"] == "NO_ANSWER"
    assert running["disposition"] is None
    listed = api.get(f"/api/v1/workflow/{wf}/executions").json()["executions"]
    assert listed[0]["disposition"] is None
    services.engine.run_until_idle(clock)
    done = api.get(url).json()
    assert (done["status"], done["disposition"]) == ("COMPLETED", "CALENDLY")


# -- 9. one serializer for times and for an execution -------------------------------------------


def test_times_and_executions_read_the_same_everywhere(
    api: TestClient, services: Services, clock: VirtualClock
) -> None:
    caller = agent(api, defaultDisposition="CALENDLY")
    wf = feather_workflow(api, call_step(caller), call_step(caller, 2, delayInSecs=3600))
    clock.advance(timedelta(seconds=1, microseconds=250))  # a start that is not on the second
    execution = start(api, wf)
    url = f"/api/v1/workflow/{wf}/execution/{execution['id']}"
    services.engine.run_until_idle(clock, until=clock.now() + timedelta(minutes=5))
    got = api.get(url).json()
    assert got["startedAt"] == execution["startedAt"]  # the create response's, unchanged
    call = got["stepExecutions"][0]["agentCall"]
    for key in ("callStartedAt", "callEndedAt"):
        assert call[key].endswith("Z"), call
    for event in api.get(f"{url}/events").json()["events"]:
        assert "+00:00" not in str(event), event
    [item] = api.get(f"/api/v1/workflow/{wf}/executions").json()["executions"]
    assert item["stepIndex"] == got["stepIndex"] == 1  # waiting before the second step
    assert {k: v for k, v in got.items() if k in item} == item
    [enriched] = api.get(f"/api/v1/workflow/{wf}/executions", params={"enriched": "true"}).json()[
        "executions"
    ]
    assert enriched == got
    cancelled = api.post(f"/api/v1/workflow/{wf}/executions/{execution['id']}/cancel").json()
    assert cancelled == api.get(url).json()


# -- 10. a deferral names the rule that set its time ---------------------------------------------


def test_a_deferral_names_the_rules_that_set_until(
    api: TestClient, services: Services, clock: VirtualClock
) -> None:
    every_day = {
        day: {"enabled": True, "timeRanges": [{"startHour": 6, "endHour": 23}]}
        for day in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    }
    wf = feather_workflow(
        api, call_step(agent(api)), workflowSchedule=every_day, timezone="America/New_York"
    )
    # Monday 23:30 in New York, 20:30 in Los Angeles: the workflow schedule is closed, the
    # contact's window open. The schedule opens at 06:00 New York (03:00 Los Angeles), when
    # the contact's window is closed: the call waits for 08:00 Los Angeles, 15:00 UTC.
    clock.advance_to(clock.now().replace(day=10, hour=3, minute=30))
    execution = start(api, wf, phone="+13105550123", zipcode="90012", state="CA")
    services.engine.run_until_idle(clock, until=clock.now())
    url = f"/api/v1/workflow/{wf}/execution/{execution['id']}"
    [deferred] = [e for e in api.get(f"{url}/events").json()["events"] if e["type"] == "deferred"]
    data = deferred["data"]
    assert data["until"] == "2026-03-10T15:00:00Z"
    assert [r for r in data["rules"] if r.startswith("workflowSchedule")] == []
    assert data["rules"]  # the contact-window rules that open at 08:00 local
    assert [r.split("@")[0] for r in data["closedNow"]] == ["workflowSchedule"]


# -- 11. errors --------------------------------------------------------------------------------


def test_error_codes_and_messages_say_what_was_wrong(api: TestClient) -> None:
    wf = feather_workflow(api, call_step(agent(api)))
    url = f"/api/v1/workflow/{wf}/execution"
    malformed = api.post(url, content=b"{nope", headers={"Content-Type": "application/json"})
    assert (malformed.status_code, malformed.json()["code"]) == (400, "INVALID_JSON")
    form = api.post(url, data={"customerLeadId": "c-1"})
    assert form.json()["code"] == "INVALID_JSON"
    assert "Content-Type: application/json" in form.json()["message"]
    bulk = api.post(
        f"{url}/bulk",
        json={"leads": [{"customerLeadId": 5, "primaryPhone": PHONES[0]}, {"primaryPhone": "x"}]},
    ).json()["results"]
    assert bulk[0]["error"] == "leads[0].customerLeadId: must be a string"
    assert "is required" in bulk[1]["error"]
    phone = api.post(url, json={"customerLeadId": "c", "primaryPhone": "call me"}).json()
    assert phone["errors"] == [
        {
            "field": "primaryPhone",
            "message": "is not a phone number (use E.164, such as +14155550123)",
        }
    ]


# -- 12. docs, CLI help, packaging -----------------------------------------------------------


def test_docs_help_and_packaging_point_inside_the_repository(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import tomllib
    from pathlib import Path

    from reachflow.cli import main

    root = Path(__file__).resolve().parents[2]
    for doc in (root / "docs").glob("*.md"):
        assert "/work/" not in doc.read_text(), doc
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "``" not in capsys.readouterr().out
    config = tomllib.loads((root / "pyproject.toml").read_text())
    for pattern in config["tool"]["setuptools"]["package-data"]["reachflow"]:
        assert list((root / "reachflow").glob(pattern)), f"{pattern} matches no file"
