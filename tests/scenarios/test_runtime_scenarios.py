"""The runtime scenario suite, on both runtimes (``rig``: embedded and Temporal, each on SQLite
and PostgreSQL): linear and graph workflows, pause / resume / cancel, a deferral, agent
retries and a webhook agent's later report. The API answers the same on both; each scenario
checks one placement per step attempt. Waits are a few seconds of the real clock; the long
waits (days, windows, holidays) stay in the embedded tests under the virtual clock."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import sqlalchemy as sa

from reachflow.store.tables import simulator_calls
from tests.agents.test_webhook_agent import Endpoint, Received, Reply
from tests.helpers import make_agent, short_cap
from tests.scenarios.conftest import Rig

PHONE = "+12125550123"


def _ok(response: Any) -> dict[str, Any]:
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


def _call(order: int, agent: str, delay: float = 1, **extra: Any) -> dict[str, Any]:
    # No TCPA window and no schedule: the scenarios run at any hour of the real clock.
    return {
        "type": "CALL",
        "order": order,
        "agentId": agent,
        "delayInSecs": delay,
        "leaveVoicemail": False,
        "needsTCPACompliance": False,
        **extra,
    }


def _workflow(rig: Rig, steps: list[dict[str, Any]]) -> str:
    body = {
        "name": "scenario",
        "active": True,
        "timezone": "America/New_York",
        "definition": {"steps": steps},
    }
    return str(_ok(rig.http.post("/api/v1/workflow", json=body))["id"])


def _start(rig: Rig, workflow_id: str, phone: str = PHONE) -> str:
    lead = {"customerLeadId": f"lead-{phone}", "primaryPhone": phone, "zipcode": "10001"}
    created = _ok(rig.http.post(f"/api/v1/workflow/{workflow_id}/execution", json=lead))
    rig.flush()
    return str(created["id"])


def _get(rig: Rig, workflow_id: str, execution_id: str) -> dict[str, Any]:
    return _ok(rig.http.get(f"/api/v1/workflow/{workflow_id}/execution/{execution_id}"))


def _finished(rig: Rig, workflow_id: str, execution_id: str, status: str) -> dict[str, Any]:
    found: dict[str, Any] = rig.wait_for(
        lambda: (b := _get(rig, workflow_id, execution_id))["status"] == status and b
    )
    return found


def _placed(rig: Rig) -> list[tuple[str, Any]]:
    """The simulator's durable ledger: (idempotency key, when placed), in order."""
    with rig.services.ledger.db.begin() as conn:
        rows = conn.execute(
            sa.select(simulator_calls.c.idempotency_key, simulator_calls.c.placed_at).order_by(
                simulator_calls.c.placed_at
            )
        ).all()
    return [(key, at) for key, at in rows]


def _simulated(rig: Rig) -> str:
    return make_agent(rig.services, rig.org, defaultDisposition="NO_ANSWER", ringDurationSecs=1)


def test_linear_workflow(rig: Rig) -> None:
    agent = _simulated(rig)
    wf = _workflow(rig, [_call(1, agent), _call(2, agent)])
    execution = _start(rig, wf)
    if rig.services.temporal is not None:
        created = _get(rig, wf, execution)
        assert created["temporalWorkflowId"]

    done = _finished(rig, wf, execution, "COMPLETED")
    assert [s["status"] for s in done["stepExecutions"]] == ["COMPLETED", "COMPLETED"]
    assert [s["disposition"] for s in done["stepExecutions"]] == ["NO_ANSWER", "NO_ANSWER"]
    placed = _placed(rig)
    assert len(placed) == 2 == len({key for key, _ in placed})  # one call per step attempt
    # the second step waited for the first's ring (1 s) and its own delay (1 s)
    assert (placed[1][1] - placed[0][1]).total_seconds() >= 2 - 0.05


def _put(rig: Rig, wf: str, execution: str, status: str) -> dict[str, Any]:
    return _ok(
        rig.http.put(f"/api/v1/workflow/{wf}/execution/{execution}", json={"status": status})
    )


def test_pause_resume_and_cancel(rig: Rig) -> None:
    agent = _simulated(rig)
    wf = _workflow(rig, [_call(1, agent, delay=3), _call(2, agent)])
    first = _start(rig, wf, "+12125550123")
    second = _start(rig, wf, "+12125550124")

    assert _put(rig, wf, first, "PAUSED")["status"] == "PAUSED"
    cancelled = _ok(rig.http.post(f"/api/v1/workflow/{wf}/executions/{second}/cancel"))
    assert cancelled["status"] == "CANCELLED"
    # Past the 3 s delay: the paused one has not moved, the cancelled one never will.
    resume_after = time.monotonic() + 4
    while time.monotonic() < resume_after:
        assert _get(rig, wf, first)["status"] == "PAUSED"
        assert _placed(rig) == []
        time.sleep(0.2)
    assert _put(rig, wf, first, "RUNNING")["status"] == "RUNNING"
    _finished(rig, wf, first, "COMPLETED")
    assert _get(rig, wf, second)["status"] == "CANCELLED"
    assert len(_placed(rig)) == 2  # the first execution's two steps, nothing of the second


def test_a_frequency_cap_defers_a_step_and_records_why(rig: Rig) -> None:
    cap = 4.0
    short_cap(rig.services, cap)
    agent = _simulated(rig)
    wf = _workflow(rig, [_call(1, agent), _call(2, agent, delay=0)])
    execution = _start(rig, wf)

    done = _finished(rig, wf, execution, "COMPLETED")
    assert [s["status"] for s in done["stepExecutions"]] == ["COMPLETED", "COMPLETED"]
    placed = _placed(rig)
    assert len(placed) == 2
    gap = (placed[1][1] - placed[0][1]).total_seconds()
    assert gap >= cap - 0.1, gap  # held until the cap allowed it
    events = _ok(rig.http.get(f"/api/v1/workflow/{wf}/execution/{execution}/events"))
    deferrals = [e for e in events["events"] if e["type"] == "deferred"]
    assert deferrals, events
    assert "US-NY-test-cap" in str(deferrals[0])


def test_graph_workflow_call_wait_call(rig: Rig) -> None:
    agent = _simulated(rig)

    def voice(node_id: str) -> dict[str, Any]:
        config = {"agent_id": agent, "needs_tcpa_compliance": False}
        return {"id": node_id, "node_type": "VOICE_CALL", "config": config}

    wait_secs = 2.0
    nodes = [
        voice("first"),
        {"id": "wait", "node_type": "TIME", "config": {"delay_minutes": wait_secs / 60}},
        voice("second"),
        {"id": "lost", "node_type": "DROPPED", "config": {}},
    ]
    pairs = [("first", "wait"), ("wait", "second"), ("second", "lost")]
    definition = {
        "nodes": nodes,
        "edges": [
            {"id": f"e{i}", "from_node_id": a, "to_node_id": b}
            for i, (a, b) in enumerate(pairs, start=1)
        ],
    }
    wf = _ok(
        rig.http.post(
            "/v1/workflows",
            json={"title": "call, wait, call", "definition": definition, "status": "active"},
        )
    )["id"]
    _ok(rig.http.post(f"/v1/workflows/{wf}/leads", json={"leads": [{"phone_number": PHONE}]}))
    rig.flush()
    leads = _ok(rig.http.get(f"/v1/workflows/{wf}/leads"))
    [lead_id] = [lead["id"] for lead in leads["data"]]

    lead = rig.wait_for(
        lambda: (
            (b := _ok(rig.http.get(f"/v1/workflows/{wf}/leads/{lead_id}")))["status"] == "completed"
            and b
        )
    )
    assert lead["outcome"] == "dropped"
    history = _ok(rig.http.get(f"/v1/workflows/{wf}/leads/{lead_id}/history"))
    assert [v["node_id"] for v in history["history"]] == ["first", "wait", "second", "lost"]
    placed = _placed(rig)
    assert len(placed) == 2
    assert (placed[1][1] - placed[0][1]).total_seconds() >= wait_secs


def _webhook_agent(rig: Rig, endpoint: Endpoint, **config: Any) -> str:
    created = _ok(
        rig.http.post(
            "/api/v1/agents",
            json={
                "name": f"webhook {len(rig.endpoints)}",
                "channel": "CALL",
                "provider": "webhook",
                "config": {"url": endpoint.url, **config},
            },
        )
    )
    endpoint.use_secret(created["config"]["secret"])
    return str(created["id"])


def test_agent_retries_go_out_under_one_key_and_place_one_call(rig: Rig) -> None:
    def respond(endpoint: Endpoint, received: Received) -> Reply:
        result = endpoint.place(received)  # placed on the first request; it fails twice
        asked = sum(1 for r in endpoint.received if r.key == received.key)
        return Reply(503, {"error": "busy"}) if asked <= 2 else Reply(200, result)

    endpoint = rig.endpoint(respond)
    retry = {"maxAttempts": 3, "initialBackoffSecs": 0.5, "maxBackoffSecs": 1}
    agent = _webhook_agent(rig, endpoint, retry=retry)
    wf = _workflow(rig, [_call(1, agent, delay=0)])
    executions = [_start(rig, wf, f"+1212555{n:04d}") for n in range(2)]

    for execution in executions:
        done = _finished(rig, wf, execution, "COMPLETED")
        [step] = done["stepExecutions"]
        assert (step["status"], step["disposition"]) == ("COMPLETED", "CALENDLY")
    keys = Counter(r.key for r in endpoint.received)
    assert sorted(keys.values()) == [3, 3]  # three requests per key ...
    assert endpoint.placed == Counter(dict.fromkeys(keys, 1))  # ... one call placed per key
    for key in keys:
        attempts = [r for r in endpoint.received if r.key == key]
        assert len({r.dispatch["callId"] for r in attempts}) == 1
        assert all(r.verified for r in attempts)


def test_a_webhook_agent_reports_later_through_the_api(rig: Rig) -> None:
    def respond(endpoint: Endpoint, received: Received) -> Reply:
        result = endpoint.place(received, "NOT_INTERESTED")
        return Reply(202, {"callId": "prov-1"}, then=endpoint.report_later(received, result))

    endpoint = rig.endpoint(respond)
    agent = _webhook_agent(rig, endpoint)
    wf = _workflow(rig, [_call(1, agent, delay=0), _call(2, _simulated(rig), delay=0)])
    execution = _start(rig, wf)

    done = _finished(rig, wf, execution, "COMPLETED")
    first, second = done["stepExecutions"]
    assert (first["status"], first["disposition"]) == ("COMPLETED", "NOT_INTERESTED")
    assert second["status"] == "COMPLETED"  # the report moved the execution on
    [answer] = endpoint.reports
    assert answer.status_code == 200, answer.text
    assert answer.json()["applied"] is True
    [received] = endpoint.received
    again = endpoint.code["report"](
        received.dispatch["callbackUrl"], endpoint.outcomes[received.key]
    )
    assert (again.status_code, again.json()["applied"]) == (200, False)
    assert sum(endpoint.placed.values()) == 1
    assert len(_placed(rig)) == 1  # the simulator's step
