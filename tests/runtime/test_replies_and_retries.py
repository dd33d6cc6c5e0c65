"""Waiting for a reply and retry policies in the running engine, through the API, on both
databases, under the virtual clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from twilio.request_validator import RequestValidator

from reachflow.bootstrap import Services
from reachflow.runtime.clock import VirtualClock
from reachflow.store.tables import outbox
from tests.helpers import make_agent

PHONE = "+12125550123"
#: Miami: Florida's calling hours (8:00-20:00) and its cap of 3 calls in 24 hours apply.
MIAMI = "+13055550147"


def wait_workflow(call: str, text: str, **wait: Any) -> dict[str, Any]:
    return {
        "name": "Ask, then wait",
        "timezone": "America/New_York",
        "definition": {
            "steps": [
                {
                    "id": "ask",
                    "type": "TEXT",
                    "order": 1,
                    "agentId": text,
                    "initialMessage": "Hi {{firstName}}, still interested? Reply YES or NO",
                    "waitForReply": {
                        "timeoutSecs": 86400,
                        "branches": [
                            {"name": "yes", "keywords": ["yes", "sure"], "then": "thanks"},
                            {"name": "no", "regex": r"^\s*(no|nope)\b", "then": "finish"},
                            {"optOut": True, "then": "finish"},
                        ],
                        "onReply": "finish",
                        **wait,
                    },
                },
                {
                    "id": "call",
                    "type": "CALL",
                    "order": 2,
                    "agentId": call,
                    "finishOn": ["NO_ANSWER", "CALENDLY"],
                },
                {
                    "id": "thanks",
                    "type": "TEXT",
                    "order": 3,
                    "agentId": text,
                    "initialMessage": "Thanks! You said: {{lastReply}}",
                },
            ]
        },
    }


def start(client: TestClient, services: Services, org: str, **wait: Any) -> tuple[str, str]:
    call = make_agent(services, org, "CALL", defaultDisposition="NO_ANSWER")
    text = make_agent(services, org, "TEXT", defaultDisposition="ENDED")
    made = client.post("/api/v1/workflow", json=wait_workflow(call, text, **wait))
    assert made.status_code == 201, made.text
    workflow_id = made.json()["id"]
    answer = client.post(
        f"/api/v1/workflow/{workflow_id}/execution",
        json={
            "customerLeadId": "lead-1",
            "primaryPhone": PHONE,
            "variables": {"firstName": "Ann"},
        },
    )
    assert answer.status_code in (200, 201), answer.text
    return workflow_id, answer.json()["id"]


def execution(client: TestClient, workflow_id: str, execution_id: str) -> dict[str, Any]:
    answer = client.get(f"/api/v1/workflow/{workflow_id}/execution/{execution_id}")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def steps_by_node(services: Services, execution_id: str) -> dict[str, list[Any]]:
    with services.db.read() as conn:
        steps = services.store.executions.steps_of(conn, [execution_id])[execution_id]
    out: dict[str, list[Any]] = {}
    for step in steps:
        out.setdefault(step.node_id.split("#")[0], []).append(step)
    return out


def org_of(services: Services, client: TestClient) -> str:
    return services.accounts.authenticate(client.headers["X-API-Key"])


@pytest.mark.parametrize(
    ("reply", "outcome", "then"),
    [
        ("Yes please!", "yes", "thanks"),
        ("sure, why not", "yes", "thanks"),
        ("nope", "no", None),
        ("Who is this?", "replied", None),
    ],
)
def test_a_reply_before_the_timeout_takes_its_branch(
    services: Services,
    clock: VirtualClock,
    client: TestClient,
    reply: str,
    outcome: str,
    then: str | None,
) -> None:
    org = org_of(services, client)
    workflow_id, execution_id = start(client, services, org)
    services.engine.run_until_idle(clock, until=clock.now() + timedelta(hours=1))
    body = execution(client, workflow_id, execution_id)
    assert body["status"] == "RUNNING"
    answer = client.post("/api/v1/inbound-texts", json={"phoneNumber": PHONE, "body": reply})
    assert answer.status_code == 200, answer.text
    assert answer.json()["waitingExecutions"] == 1
    assert answer.json()["optedOut"] is False
    services.engine.run_until_idle(clock)
    steps = steps_by_node(services, execution_id)
    [ask] = steps["ask"]
    assert ask.reply == reply
    assert ask.status == "COMPLETED"
    replied = _history(services, execution_id, "replied")
    assert [(h["outcome"], h["reply"]) for h in replied] == [(outcome, reply)]
    assert "call" not in steps  # a reply never falls through to the call
    if then == "thanks":
        [thanks] = steps["thanks"]
        assert thanks.status == "COMPLETED"
        assert sent_message(services, thanks.id) == f"Thanks! You said: {reply}"
    else:
        assert "thanks" not in steps
    assert execution(client, workflow_id, execution_id)["status"] == "COMPLETED"
    # The API shows the reply on the step.
    shown = execution(client, workflow_id, execution_id)
    ask_json = next(
        s for s in shown.get("stepExecutions", shown.get("steps", [])) if s.get("nodeId") == "ask"
    )
    assert ask_json["reply"] == reply


def test_no_reply_before_the_timeout_goes_on_to_the_call(
    services: Services, clock: VirtualClock, client: TestClient
) -> None:
    org = org_of(services, client)
    workflow_id, execution_id = start(client, services, org)
    started = clock.now()
    services.engine.run_until_idle(clock)
    steps = steps_by_node(services, execution_id)
    [ask] = steps["ask"]
    assert ask.reply is None
    [call] = steps["call"]
    assert call.started_at is not None
    assert call.started_at >= started + timedelta(days=1)
    assert execution(client, workflow_id, execution_id)["status"] == "COMPLETED"


def test_stop_as_a_reply_opts_out_and_takes_the_opt_out_branch(
    services: Services, clock: VirtualClock, client: TestClient
) -> None:
    org = org_of(services, client)
    workflow_id, execution_id = start(client, services, org)
    services.engine.run_until_idle(clock, until=clock.now() + timedelta(hours=1))
    answer = client.post("/api/v1/inbound-texts", json={"phoneNumber": PHONE, "body": "STOP"})
    assert answer.json()["optedOut"] is True
    assert answer.json()["suppressedChannels"] == ["TEXT"]
    assert answer.json()["waitingExecutions"] == 1
    services.engine.run_until_idle(clock)
    body = execution(client, workflow_id, execution_id)
    assert body["status"] == "COMPLETED"  # the opt-out branch: finish
    steps = steps_by_node(services, execution_id)
    assert steps["ask"][0].reply == "STOP"
    assert "call" not in steps
    check = client.get("/api/v1/suppressions/check", params={"phoneNumber": PHONE}).json()
    assert check["channels"] == ["TEXT"]


def test_a_reply_through_the_twilio_inbound_webhook(
    services: Services, clock: VirtualClock, client: TestClient
) -> None:
    org = org_of(services, client)
    token = "twilio-auth-token"
    twilio = services.agents.create(
        org,
        {
            "name": "sms line",
            "channel": "TEXT",
            "provider": "twilio",
            "config": {
                "accountSid": "AC" + "0" * 32,
                "authToken": token,
                "from": "+14155550100",
            },
        },
    ).id
    workflow_id, execution_id = start(client, services, org)
    services.engine.run_until_idle(clock, until=clock.now() + timedelta(hours=1))
    url = f"http://testserver/api/v1/providers/twilio/inbound/{twilio}"
    form = {"From": PHONE, "Body": "YES", "To": "+14155550100", "MessageSid": "SM1"}
    signature = RequestValidator(token).compute_signature(url, form)
    answer = client.post(url, data=form, headers={"X-Twilio-Signature": signature})
    assert answer.status_code == 200, answer.text
    services.engine.run_until_idle(clock)
    steps = steps_by_node(services, execution_id)
    assert steps["ask"][0].reply == "YES"
    assert "thanks" in steps
    assert execution(client, workflow_id, execution_id)["status"] == "COMPLETED"


def test_a_graph_workflow_waits_for_a_reply_node(
    services: Services, clock: VirtualClock, client: TestClient
) -> None:
    org = org_of(services, client)
    text = make_agent(services, org, "TEXT", defaultDisposition="ENDED")
    definition = {
        "nodes": [
            {
                "id": "sms",
                "node_type": "SMS",
                "config": {"agent_id": text, "message": "Book a call? Reply YES"},
            },
            {
                "id": "wait",
                "node_type": "WAIT_FOR_REPLY",
                "config": {
                    "timeout_hours": 24,
                    "branches": [{"label": "yes", "keywords": ["yes", "book"]}],
                },
            },
            {"id": "won", "node_type": "CONVERTED", "config": {}},
            {"id": "lost", "node_type": "DROPPED", "config": {}},
        ],
        "edges": [
            {"id": "e1", "from_node_id": "sms", "to_node_id": "wait"},
            {"id": "e2", "from_node_id": "wait", "to_node_id": "won", "label": "yes"},
            {"id": "e3", "from_node_id": "wait", "to_node_id": "lost"},
        ],
    }
    made = client.post("/v1/workflows", json={"title": "reply", "definition": definition})
    assert made.status_code in (200, 201), made.text
    workflow_id = made.json()["id"]
    assert client.post(f"/v1/workflows/{workflow_id}/activate").status_code == 200
    leads = client.post(
        f"/v1/workflows/{workflow_id}/leads",
        json={"leads": [{"phone_number": PHONE}, {"phone_number": "+12125550124"}]},
    )
    assert leads.status_code in (200, 201), leads.text
    services.engine.run_until_idle(clock, until=clock.now() + timedelta(hours=1))
    client.post("/api/v1/inbound-texts", json={"phoneNumber": PHONE, "body": "yes, book me"})
    services.engine.run_until_idle(clock)
    listed = client.get(f"/v1/workflows/{workflow_id}/leads").json()
    rows = listed.get("data") or listed.get("leads") or listed
    by_phone = {r["phone_number"]: r for r in rows}
    assert by_phone[PHONE]["status"].lower() in ("converted", "completed")
    assert by_phone["+12125550124"]["status"].lower() in ("dropped", "completed")


# -- retries ---------------------------------------------------------------------------------


def call_workflow(agent: str, policy: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "Call until they answer",
        "timezone": "America/New_York",
        "definition": {
            "steps": [
                {
                    "id": "call",
                    "type": "CALL",
                    "order": 1,
                    "agentId": agent,
                    "retryPolicy": policy,
                    "finishOn": ["CALENDLY"],
                }
            ]
        },
    }


def run_call(
    client: TestClient, services: Services, agent: str, policy: dict[str, Any], start_at: str
) -> tuple[str, str]:
    made = client.post("/api/v1/workflow", json=call_workflow(agent, policy))
    assert made.status_code == 201, made.text
    workflow_id = made.json()["id"]
    answer = client.post(
        f"/api/v1/workflow/{workflow_id}/execution",
        json={
            "customerLeadId": "fl-1",
            "primaryPhone": MIAMI,
            "zipcode": "33101",
            "startAt": start_at,
        },
    )
    assert answer.status_code in (200, 201), answer.text
    return workflow_id, answer.json()["id"]


def test_a_no_answer_at_1930_retried_in_4_hours_goes_out_at_8_next_day(
    services: Services, clock: VirtualClock, client: TestClient
) -> None:
    org = org_of(services, client)
    agent = make_agent(services, org, "CALL", defaultDisposition="NO_ANSWER")
    policy = {"NO_ANSWER": {"delaySecs": 4 * 3600, "maxRetries": 5}}
    # Monday 9 March 2026, 19:30 in Miami (EDT).
    _, execution_id = run_call(client, services, agent, policy, "2026-03-09T23:30:00Z")
    services.engine.run_until_idle(clock)
    calls = steps_by_node(services, execution_id)["call"]
    started = [s.started_at for s in calls]
    assert started[0] == datetime(2026, 3, 9, 23, 30, tzinfo=UTC)
    # 4 hours later is 23:30: outside Florida's hours; moved to 08:00 the next day.
    assert started[1] == datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    assert len(calls) == 6  # the first attempt and 5 retries
    assert all(s.disposition == "NO_ANSWER" for s in calls)
    # Never more than Florida's 3 calls in 24 hours.
    for i, at in enumerate(started):
        assert at is not None
        assert (
            sum(1 for b in started[: i + 1] if b is not None and at - b < timedelta(hours=24)) <= 3
        )
    kinds = _kinds(services, execution_id)
    assert kinds.count("retry_scheduled") == 5
    assert "retries_exhausted" in kinds
    deferred = _history(services, execution_id, "deferred")
    assert deferred[0]["until"].startswith("2026-03-10T12:00:00")
    # Each retry was its own attempt, with its own key, counted by the caps.
    with services.db.read() as conn:
        keys = [r.idempotency_key for r in conn.execute(sa.select(outbox.c.idempotency_key))]
    assert len(keys) == len(set(keys)) == 6


def test_call_again_is_honoured_at_the_named_time_and_moved_when_it_is_illegal(
    services: Services, clock: VirtualClock, client: TestClient
) -> None:
    org = org_of(services, client)
    agent = make_agent(
        services,
        org,
        "CALL",
        script={MIAMI: ["CALL_AGAIN", "CALL_AGAIN", "CALENDLY"]},
        # Tuesday 15:00 in Miami, then Wednesday 23:00 (after hours).
        callbackAt={MIAMI: ["2026-03-10T19:00:00Z", "2026-03-12T03:00:00Z"]},
    )
    policy = {"CALL_AGAIN": {"useCallbackAt": True, "delaySecs": 3600, "maxRetries": 3}}
    workflow_id, execution_id = run_call(client, services, agent, policy, "2026-03-09T14:00:00Z")
    services.engine.run_until_idle(clock)
    calls = steps_by_node(services, execution_id)["call"]
    assert [s.disposition for s in calls] == ["CALL_AGAIN", "CALL_AGAIN", "CALENDLY"]
    assert calls[1].started_at == datetime(2026, 3, 10, 19, 0, tzinfo=UTC)  # as named
    assert calls[2].started_at == datetime(2026, 3, 12, 12, 0, tzinfo=UTC)  # 08:00, not 23:00
    scheduled = _history(services, execution_id, "retry_scheduled")
    assert "asked for a call back at 2026-03-10T19:00:00" in scheduled[0]["why"]
    assert execution(client, workflow_id, execution_id)["status"] == "COMPLETED"


def sent_message(services: Services, step_id: str) -> str | None:
    with services.db.read() as conn:
        row = conn.execute(
            sa.select(outbox.c.payload).where(outbox.c.step_execution_id == step_id)
        ).first()
    return None if row is None else row.payload.get("message")


def _kinds(services: Services, execution_id: str) -> list[str]:
    with services.db.read() as conn:
        return [e.kind for e in services.store.executions.events_of(conn, execution_id)]


def _history(services: Services, execution_id: str, kind: str) -> list[dict[str, Any]]:
    with services.db.read() as conn:
        return [
            e.data
            for e in services.store.executions.events_of(conn, execution_id)
            if e.kind == kind
        ]
