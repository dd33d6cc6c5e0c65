"""Public execution sessions (seed 004) over HTTP, on SQLite and PostgreSQL: publishable keys,
client tokens, the status lifecycle (free and priced, under the virtual clock), the signed
payment webhook, the envelope, and the stream replayed after the end."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from reachflow.agents.signing import new_secret, sign
from reachflow.api import create_app
from reachflow.bootstrap import Services, bootstrap
from reachflow.cli import main
from reachflow.runtime.clock import VirtualClock
from reachflow.settings import Settings
from tests.helpers import make_agent

PHONE = "+12125550123"
ENVELOPE_KEYS = {"code", "data", "message", "requestId"}
SEED_EXECUTION_KEYS = {
    "checkoutSessionId",
    "clientSafeMetadata",
    "createdAt",
    "externalRef",
    "finishedAt",
    "id",
    "idempotencyKey",
    "initiatedById",
    "initiatedByType",
    "orderId",
    "organizationId",
    "paymentStatus",
    "requestPayload",
    "responsePayload",
    "runId",
    "sourceEntityId",
    "sourceEntityType",
    "sourceSystem",
    "startedAt",
    "status",
    "statusReason",
    "updatedAt",
    "workflowId",
}
#: What a client token never shows.
PRIVATE_KEYS = {"requestPayload", "responsePayload", "organizationId"}
EVENT_KEYS = {"createdAt", "eventType", "id", "level", "message", "nodeId", "runId", "title"}
SECRET = new_secret()


@pytest.fixture
def services(db_url: str, clock: VirtualClock) -> Iterator[Services]:
    settings = Settings(
        database_url=db_url,
        payment_webhook_secret=SECRET,
        payment_timeout_minutes=30,
        client_token_ttl_hours=48,
        public_stream_poll_seconds=0.01,
    )
    built = bootstrap(settings, clock=clock, migrate=False)
    yield built
    built.close()


@pytest.fixture
def publishable(services: Services) -> str:
    return services.accounts.create_api_key("acme", scope="publishable")[1]


@pytest.fixture
def public(services: Services, publishable: str) -> Iterator[TestClient]:
    """A client as a browser page is: the publishable key as a bearer token."""
    with TestClient(create_app(services)) as test_client:
        test_client.headers["Authorization"] = f"Bearer {publishable}"
        yield test_client


def public_workflow(client: TestClient, price: dict[str, Any] | None = None, **call: Any) -> str:
    agent = client.post(
        "/api/v1/agents",
        json={
            "name": "caller",
            "channel": "CALL",
            "config": call or {"defaultDisposition": "ENDED"},
        },
    )
    assert agent.status_code == 201, agent.text
    body: dict[str, Any] = {
        "name": "Call me back",
        "publicExecute": True,
        "tcpaSchedule": None,
        "definition": {
            "steps": [
                {
                    "type": "CALL",
                    "order": 1,
                    "agentId": agent.json()["id"],
                    "needsTCPACompliance": False,
                    "finishOn": ["ENDED"],
                }
            ]
        },
    }
    if price is not None:
        body["price"] = price
    created = client.post("/api/v1/workflow", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["publicExecute"] is True
    assert created.json()["price"] == (
        {"amount": price["amount"], "currency": price["currency"].lower()} if price else None
    )
    workflow_id: str = created.json()["id"]
    return workflow_id


def session_body(**extra: Any) -> dict[str, Any]:
    return {
        "sourceSystem": "web-form",
        "sourceEntityType": "callback_request",
        "sourceEntityId": "req-42",
        "externalRef": "campaign-7",
        "requestPayload": {"primaryPhone": PHONE, "zipcode": "10001", "variables": {"a": 1}},
        "clientSafeMetadata": {"plan": "gold"},
        **extra,
    }


def start(public: TestClient, workflow_id: str, **extra: Any) -> dict[str, Any]:
    response = public.post(
        f"/v1/public/workflows/{workflow_id}/executions", json=session_body(**extra)
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == ENVELOPE_KEYS
    assert body["code"] == 200
    assert body["message"] == "success"
    assert body["requestId"] == response.headers["x-request-id"]
    data: dict[str, Any] = body["data"]
    return data


def read(public: TestClient, session_id: str, token: str) -> dict[str, Any]:
    response = public.get(f"/v1/public/executions/{session_id}", params={"token": token})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def envelope_error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == ENVELOPE_KEYS, body
    assert body["code"] == status
    assert body["requestId"] == response.headers["x-request-id"]
    assert isinstance(body["message"], str)
    assert body["message"]
    return body


def stream_statuses(public: TestClient, session_id: str, token: str) -> list[dict[str, Any]]:
    """The stream read to its end (it ends at a terminal status)."""
    response = public.get(f"/v1/public/executions/{session_id}/stream", params={"token": token})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return parse_sse(response.text)


def parse_sse(text: str) -> list[dict[str, Any]]:
    out = []
    for block in text.split("\n\n"):
        fields = dict(
            line.split(": ", 1)
            for line in block.splitlines()
            if ": " in line and not line.startswith(":")
        )
        if fields.get("event") == "status":
            item = json.loads(fields["data"])
            assert int(fields["id"]) == item["sequence"]
            out.append(item)
    return out


def signed_payment(client: TestClient, body: dict[str, Any], secret: str = SECRET) -> Any:
    raw = json.dumps(body)
    headers = sign(secret, raw, datetime.now(UTC))
    return client.post(
        "/v1/public/payments/webhook",
        content=raw,
        headers={**headers, "content-type": "application/json", "authorization": ""},
    )


# -- keys ------------------------------------------------------------------------------------


def test_a_publishable_key_starts_public_executions_and_nothing_else(
    client: TestClient, public: TestClient
) -> None:
    workflow_id = public_workflow(client)
    for method, path in (
        ("get", "/api/v1/agents"),
        ("get", "/api/v1/workflow"),
        ("get", f"/api/v1/workflow/{workflow_id}"),
        ("get", "/v1/workflows"),
    ):
        response = public.request(method, path)
        assert response.status_code == 403, (path, response.text)
        assert response.json()["code"] == "FORBIDDEN"
    # Sent as X-API-Key it is the same key: still only the public endpoint.
    key = public.headers["Authorization"].removeprefix("Bearer ")
    assert client.get("/api/v1/agents", headers={"X-API-Key": key}).status_code == 403
    assert start(public, workflow_id)["execution"]["initiatedByType"] == "publishable_key"


def test_a_secret_key_may_start_a_public_execution_too(client: TestClient) -> None:
    workflow_id = public_workflow(client)
    response = client.post(f"/v1/public/workflows/{workflow_id}/executions", json=session_body())
    assert response.status_code == 200, response.text
    assert response.json()["data"]["execution"]["initiatedByType"] == "api_key"


def test_only_public_active_workflows_start(
    client: TestClient, public: TestClient, services: Services
) -> None:
    org = services.accounts.authenticate(client.headers["X-API-Key"])
    private = client.post(
        "/api/v1/workflow",
        json={
            "name": "private",
            "definition": {
                "steps": [{"type": "CALL", "order": 1, "agentId": make_agent(services, org)}]
            },
        },
    ).json()["id"]
    envelope_error(
        public.post(f"/v1/public/workflows/{private}/executions", json=session_body()), 404
    )
    workflow_id = public_workflow(client)
    assert (
        client.patch(f"/api/v1/workflow/{workflow_id}", json={"active": False}).status_code == 200
    )
    body = envelope_error(
        public.post(f"/v1/public/workflows/{workflow_id}/executions", json=session_body()), 409
    )
    assert body["data"]["error"] == "CONFLICT"
    # Another organization's public workflow is not found either.
    other = services.accounts.create_api_key("globex", scope="publishable")[1]
    assert client.patch(f"/api/v1/workflow/{workflow_id}", json={"active": True}).status_code == 200
    envelope_error(
        public.post(
            f"/v1/public/workflows/{workflow_id}/executions",
            json=session_body(),
            headers={"Authorization": f"Bearer {other}"},
        ),
        404,
    )


def test_the_contact_is_validated_like_any_execution(
    client: TestClient, public: TestClient
) -> None:
    workflow_id = public_workflow(client)
    url = f"/v1/public/workflows/{workflow_id}/executions"
    body = envelope_error(
        public.post(url, json=session_body(requestPayload={"primaryPhone": "12"})), 400
    )
    assert body["data"]["field"] == "requestPayload.primaryPhone"
    body = envelope_error(public.post(url, json={"sourceSystem": "x"}), 400)
    fields = {e["field"] for e in body["data"]["errors"]}
    assert "sourceEntityType" in fields
    body = envelope_error(public.post(url, json=session_body(requestPayload=None)), 400)
    assert body["data"]["field"] == "requestPayload"
    suppressed = client.post("/api/v1/suppressions", json={"phoneNumber": PHONE})
    assert suppressed.status_code == 201, suppressed.text
    body = envelope_error(public.post(url, json=session_body()), 422)
    assert PHONE not in json.dumps(body)


# -- an unpriced session, start to end -------------------------------------------------------


def test_a_free_session_runs_to_its_end(
    client: TestClient, public: TestClient, services: Services, clock: VirtualClock
) -> None:
    workflow_id = public_workflow(client)
    data = start(public, workflow_id)
    execution = data["execution"]
    assert set(execution) == SEED_EXECUTION_KEYS
    assert data["clientToken"].startswith("rf_ct_")
    assert execution["status"] == "workflow_queued"
    assert execution["paymentStatus"] == "not_required"
    assert execution["checkoutSessionId"] is None
    assert execution["runId"] is not None
    assert execution["requestPayload"]["primaryPhone"] == PHONE
    assert execution["clientSafeMetadata"] == {"plan": "gold"}
    assert execution["responsePayload"] is None
    # The run is a Feather execution of the workflow; its metadata names the session.
    run = client.get(f"/api/v1/workflow/{workflow_id}/execution/{execution['runId']}").json()
    assert run["status"] == "CREATED"
    assert run["customerLeadId"] == "req-42"  # sourceEntityId, as none was given
    assert run["metadata"]["publicSession"]["id"] == execution["id"]

    services.engine.run_until_idle(clock)

    view = read(public, execution["id"], data["clientToken"])
    assert view["status"] == "workflow_succeeded"
    assert view["finishedAt"] is not None
    assert view["startedAt"] is not None
    assert not PRIVATE_KEYS & set(view)
    assert PHONE not in json.dumps(view)
    assert "212555" not in json.dumps(view)
    assert all(set(e) == EVENT_KEYS for e in view["events"])
    kinds = [e["eventType"] for e in view["events"]]
    assert kinds[:2] == ["session_created", "run_started"]
    assert "dispatched" in kinds
    assert kinds[-1] == "finished"
    assert all(
        e["runId"] == execution["runId"] for e in view["events"] if e["id"].startswith("ev_")
    )

    changes = stream_statuses(public, execution["id"], data["clientToken"])
    assert [c["status"] for c in changes] == [
        "workflow_queued",
        "workflow_running",
        "workflow_succeeded",
    ]
    assert [c["sequence"] for c in changes] == [1, 2, 3]
    # A client reconnecting after change 2 gets the rest only.
    rest = public.get(
        f"/v1/public/executions/{execution['id']}/stream",
        params={"token": data["clientToken"]},
        headers={"Last-Event-ID": "2"},
    )
    assert [c["status"] for c in parse_sse(rest.text)] == ["workflow_succeeded"]


def test_waits_delays_and_pauses_show_as_waiting(
    client: TestClient, public: TestClient, services: Services, clock: VirtualClock
) -> None:
    workflow_id = public_workflow(client, defaultDisposition="NO_ANSWER")
    two_steps = client.get(f"/api/v1/workflow/{workflow_id}").json()["definition"]
    agent = two_steps["steps"][0]["agentId"]
    two_steps["steps"].append(
        {
            "type": "CALL",
            "order": 2,
            "delayInSecs": 3600,
            "agentId": agent,
            "needsTCPACompliance": False,
        }
    )
    assert (
        client.patch(f"/api/v1/workflow/{workflow_id}", json={"definition": two_steps}).status_code
        == 200
    )
    data = start(public, workflow_id)
    session_id, token = data["execution"]["id"], data["clientToken"]
    services.engine.run_until_idle(clock, until=clock.now() + timedelta(minutes=5))
    view = read(public, session_id, token)
    assert view["status"] == "workflow_waiting"
    assert "next step is due" in view["statusReason"]
    run_id = data["execution"]["runId"]
    paused = client.put(
        f"/api/v1/workflow/{workflow_id}/execution/{run_id}", json={"status": "PAUSED"}
    )
    assert paused.status_code == 200, paused.text
    assert read(public, session_id, token)["status"] == "workflow_waiting"
    client.put(f"/api/v1/workflow/{workflow_id}/execution/{run_id}", json={"status": "RUNNING"})
    services.engine.run_until_idle(clock)
    changes = stream_statuses(public, session_id, token)
    assert [c["status"] for c in changes] == [
        "workflow_queued",
        "workflow_running",
        "workflow_waiting",
        "workflow_running",
        "workflow_succeeded",
    ]


def test_a_cancelled_run_cancels_the_session(
    client: TestClient, public: TestClient, services: Services, clock: VirtualClock
) -> None:
    workflow_id = public_workflow(client)
    data = start(public, workflow_id)
    run_id = data["execution"]["runId"]
    cancel = client.post(f"/api/v1/workflow/{workflow_id}/executions/{run_id}/cancel")
    assert cancel.status_code == 200, cancel.text
    view = read(public, data["execution"]["id"], data["clientToken"])
    assert view["status"] == "workflow_cancelled"
    assert [c["status"] for c in stream_statuses(public, view["id"], data["clientToken"])] == [
        "workflow_queued",
        "workflow_cancelled",
    ]


def test_a_deleted_run_ends_the_session(client: TestClient, public: TestClient) -> None:
    workflow_id = public_workflow(client)
    data = start(public, workflow_id)
    run_id = data["execution"]["runId"]
    assert client.delete(f"/api/v1/workflow/{workflow_id}/execution/{run_id}").status_code == 200
    view = read(public, data["execution"]["id"], data["clientToken"])
    assert view["status"] == "workflow_cancelled"
    assert view["statusReason"] == "the execution was deleted"


# -- client tokens ---------------------------------------------------------------------------


def test_a_client_token_reads_its_own_execution_only(
    client: TestClient, public: TestClient, clock: VirtualClock
) -> None:
    workflow_id = public_workflow(client)
    first = start(public, workflow_id)
    second = start(public, workflow_id, sourceEntityId="req-43")
    first_id, second_id = first["execution"]["id"], second["execution"]["id"]
    anonymous = {"Authorization": ""}

    def get(session_id: str, token: str | None, **headers: str) -> Any:
        params = {"token": token} if token is not None else {}
        return public.get(
            f"/v1/public/executions/{session_id}", params=params, headers={**anonymous, **headers}
        )

    assert get(first_id, first["clientToken"]).status_code == 200
    # Another execution's token.
    body = envelope_error(get(second_id, first["clientToken"]), 403)
    assert body["data"]["error"] == "FORBIDDEN"
    envelope_error(
        public.get(
            f"/v1/public/executions/{second_id}/stream", params={"token": first["clientToken"]}
        ),
        403,
    )
    # Tampered: one character changed, cut short, made longer.
    token = first["clientToken"]
    swapped = token[:-1] + ("A" if token[-1] != "A" else "B")
    for bad in (swapped, token[:-4], token + "x", "rf_ct_guess"):
        envelope_error(get(first_id, bad), 403)
    # Neither the publishable key nor a secret key is a client token.
    envelope_error(get(first_id, public.headers["Authorization"].removeprefix("Bearer ")), 403)
    envelope_error(get(first_id, client.headers["X-API-Key"]), 403)
    # No token: 401; an unknown execution: 404 (whatever the token).
    envelope_error(get(first_id, None), 401)
    envelope_error(get("4bb0c1e0-0000-4000-8000-000000000000", token), 404)
    # As a bearer token it works the same.
    assert get(first_id, None, Authorization=f"Bearer {token}").status_code == 200
    envelope_error(get(second_id, None, Authorization=f"Bearer {token}"), 403)
    # Expired: the settings give tokens 48 hours.
    clock.advance(timedelta(hours=48))
    body = envelope_error(get(first_id, token), 403)
    assert "expired" in body["message"]
    envelope_error(
        public.get(f"/v1/public/executions/{first_id}/stream", params={"token": token}), 403
    )


def test_client_tokens_are_stored_hashed(
    client: TestClient, public: TestClient, services: Services
) -> None:
    workflow_id = public_workflow(client)
    token = start(public, workflow_id)["clientToken"]
    with services.db.engine.connect() as conn:
        rows = [tuple(r) for r in conn.exec_driver_sql("SELECT * FROM client_tokens")]
    assert rows
    assert token not in json.dumps(rows, default=str)


# -- a priced session: payment, then the run -------------------------------------------------


PRICE = {"amount": 1500, "currency": "USD"}


def test_the_priced_lifecycle_through_the_payment_webhook(
    client: TestClient, public: TestClient, services: Services, clock: VirtualClock
) -> None:
    workflow_id = public_workflow(client, price=PRICE)
    data = start(public, workflow_id)
    execution, token = data["execution"], data["clientToken"]
    assert execution["status"] == "awaiting_payment"
    assert execution["paymentStatus"] == "unpaid"
    assert execution["checkoutSessionId"].startswith("cs_")
    assert execution["runId"] is None
    assert "1500 USD" in execution["statusReason"]
    clock.advance(timedelta(minutes=10))
    services.engine.run_until_idle(clock, until=clock.now())
    assert read(public, execution["id"], token)["status"] == "awaiting_payment"

    failed = signed_payment(
        public, {"checkoutSessionId": execution["checkoutSessionId"], "paymentStatus": "failed"}
    )
    assert failed.status_code == 200, failed.text
    view = read(public, execution["id"], token)
    assert (view["status"], view["paymentStatus"]) == ("awaiting_payment", "failed")

    paid = signed_payment(
        public,
        {
            "checkoutSessionId": execution["checkoutSessionId"],
            "orderId": "order-1",
            "paymentStatus": "paid",
            "amount": 1500,
            "currency": "usd",
        },
    )
    assert paid.status_code == 200, paid.text
    answer = paid.json()
    assert set(answer) == ENVELOPE_KEYS
    assert answer["data"]["applied"] is True
    assert answer["data"]["execution"]["status"] == "workflow_queued"
    assert answer["data"]["execution"]["orderId"] == "order-1"
    assert answer["data"]["execution"]["paymentStatus"] == "paid"
    assert answer["data"]["execution"]["runId"] is not None
    # The payment system retries: nothing more happens.
    again = signed_payment(
        public,
        {
            "checkoutSessionId": execution["checkoutSessionId"],
            "orderId": "order-1",
            "paymentStatus": "paid",
        },
    )
    assert again.status_code == 200
    assert again.json()["data"]["applied"] is False

    services.engine.run_until_idle(clock)
    view = read(public, execution["id"], token)
    assert view["status"] == "workflow_succeeded"
    changes = stream_statuses(public, execution["id"], token)
    assert [c["status"] for c in changes] == [
        "awaiting_payment",
        "payment_confirmed",
        "workflow_queued",
        "workflow_running",
        "workflow_succeeded",
    ]
    times = [c["at"] for c in changes]
    assert times == sorted(times)
    # A later, different payment for the same session is refused.
    envelope_error(
        signed_payment(
            public,
            {"executionId": execution["id"], "orderId": "order-2", "paymentStatus": "paid"},
        ),
        409,
    )


def test_a_payment_of_another_amount_is_refused(client: TestClient, public: TestClient) -> None:
    workflow_id = public_workflow(client, price=PRICE)
    execution = start(public, workflow_id)["execution"]
    for wrong in ({"amount": 100}, {"currency": "eur"}):
        response = signed_payment(
            public,
            {"checkoutSessionId": execution["checkoutSessionId"], "paymentStatus": "paid", **wrong},
        )
        envelope_error(response, 409)


def test_an_unpaid_session_expires(
    client: TestClient, public: TestClient, clock: VirtualClock
) -> None:
    workflow_id = public_workflow(client, price=PRICE)
    data = start(public, workflow_id)
    execution, token = data["execution"], data["clientToken"]
    clock.advance(timedelta(minutes=30))
    view = read(public, execution["id"], token)
    assert (view["status"], view["paymentStatus"]) == ("workflow_cancelled", "expired")
    assert "30 minutes" in view["statusReason"]
    created = datetime.fromisoformat(execution["createdAt"])
    assert datetime.fromisoformat(view["finishedAt"]) == created + timedelta(minutes=30)
    late = signed_payment(
        public, {"checkoutSessionId": execution["checkoutSessionId"], "paymentStatus": "paid"}
    )
    envelope_error(late, 409)
    assert [c["status"] for c in stream_statuses(public, execution["id"], token)] == [
        "awaiting_payment",
        "workflow_cancelled",
    ]


def test_a_canceled_payment_cancels_the_session(client: TestClient, public: TestClient) -> None:
    workflow_id = public_workflow(client, price=PRICE)
    data = start(public, workflow_id)
    execution = data["execution"]
    response = signed_payment(public, {"executionId": execution["id"], "paymentStatus": "canceled"})
    assert response.status_code == 200, response.text
    view = read(public, execution["id"], data["clientToken"])
    assert (view["status"], view["paymentStatus"]) == ("workflow_cancelled", "canceled")


def test_a_paid_session_whose_workflow_stopped_fails(
    client: TestClient, public: TestClient
) -> None:
    workflow_id = public_workflow(client, price=PRICE)
    data = start(public, workflow_id)
    execution = data["execution"]
    assert (
        client.patch(f"/api/v1/workflow/{workflow_id}", json={"active": False}).status_code == 200
    )
    paid = signed_payment(
        public, {"checkoutSessionId": execution["checkoutSessionId"], "paymentStatus": "paid"}
    )
    assert paid.status_code == 200, paid.text
    view = paid.json()["data"]["execution"]
    assert (view["status"], view["paymentStatus"]) == ("workflow_failed", "paid")
    assert "not active" in view["statusReason"]


def test_a_forged_payment_webhook_is_refused(
    client: TestClient, public: TestClient, services: Services
) -> None:
    workflow_id = public_workflow(client, price=PRICE)
    data = start(public, workflow_id)
    execution = data["execution"]
    body = {"checkoutSessionId": execution["checkoutSessionId"], "paymentStatus": "paid"}
    raw = json.dumps(body)
    url = "/v1/public/payments/webhook"
    good = sign(SECRET, raw, datetime.now(UTC))
    forged = [
        ({}, raw),  # unsigned
        (sign(new_secret(), raw, datetime.now(UTC)), raw),  # another secret
        (good, raw.replace('": "', '":"')),  # the body changed after signing
        (sign(SECRET, raw, datetime.now(UTC) - timedelta(minutes=10)), raw),  # too old
        ({**good, "webhook-signature": "v1,AAAA"}, raw),  # a made-up signature
    ]
    for headers, content in forged:
        response = public.post(
            url, content=content, headers={**headers, "content-type": "application/json"}
        )
        body_out = envelope_error(response, 401)
        assert body_out["data"]["field"] == "webhook-signature"
    view = read(public, execution["id"], data["clientToken"])
    assert (view["status"], view["paymentStatus"]) == ("awaiting_payment", "unpaid")
    # An organization's own secret replaces the setting's.
    _, own = services.public_sessions.set_payment_secret("acme")
    envelope_error(signed_payment(public, body), 401)
    assert signed_payment(public, body, secret=own).status_code == 200
    # Unknown sessions are 404; a body naming none is 400.
    envelope_error(
        signed_payment(public, {"checkoutSessionId": "cs_nope", "paymentStatus": "paid"}, own), 404
    )
    envelope_error(signed_payment(public, {"paymentStatus": "paid"}, own), 400)


def test_a_free_session_takes_no_payment(client: TestClient, public: TestClient) -> None:
    workflow_id = public_workflow(client)
    execution = start(public, workflow_id)["execution"]
    envelope_error(
        signed_payment(public, {"executionId": execution["id"], "paymentStatus": "paid"}), 409
    )


# -- idempotency on the public endpoint ------------------------------------------------------


def test_the_same_idempotency_key_answers_the_same_session(
    client: TestClient, public: TestClient, services: Services
) -> None:
    workflow_id = public_workflow(client)
    first = start(public, workflow_id, idempotencyKey="order-77")
    again = start(public, workflow_id, idempotencyKey="order-77")
    assert again["execution"]["id"] == first["execution"]["id"]
    assert again["execution"]["runId"] == first["execution"]["runId"]
    assert again["execution"]["idempotencyKey"] == "order-77"
    # A new token, for a client whose first answer was lost; both read the session.
    assert again["clientToken"] != first["clientToken"]
    for token in (first["clientToken"], again["clientToken"]):
        assert read(public, first["execution"]["id"], token)["id"] == first["execution"]["id"]
    other = public.post(
        f"/v1/public/workflows/{workflow_id}/executions",
        json=session_body(idempotencyKey="order-77", externalRef="another"),
    )
    body = envelope_error(other, 409)
    assert body["data"]["error"] == "IDEMPOTENCY_KEY_REUSED"
    assert body["data"]["field"] == "idempotencyKey"
    with services.db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM public_sessions").scalar() == 1
        assert conn.exec_driver_sql("SELECT count(*) FROM executions").scalar() == 1


# -- the envelope on every error of the surface ----------------------------------------------


def test_every_error_of_the_surface_is_the_envelope(db_url: str, clock: VirtualClock) -> None:
    settings = Settings(database_url=db_url, rate_limit_per_key="3/minute")
    built = bootstrap(settings, clock=clock, migrate=False)
    try:
        key = built.accounts.create_api_key("acme", scope="publishable")[1]
        with TestClient(create_app(built)) as test_client:
            url = "/v1/public/workflows/nope/executions"
            envelope_error(test_client.post(url, json={}), 401)
            headers = {"Authorization": f"Bearer {key}"}
            envelope_error(test_client.post(url, content=b"{", headers=headers), 400)
            envelope_error(test_client.post(url, json=session_body(), headers=headers), 404)
            envelope_error(test_client.get("/v1/public/executions/nope", headers=headers), 404)
            limited = test_client.post(url, json={}, headers=headers)
            assert envelope_error(limited, 429)["data"]["error"] == "RATE_LIMITED"
            assert int(limited.headers["retry-after"]) >= 1
            too_big = test_client.post(
                url, content=b"x" * (2 * 1024 * 1024), headers={"content-type": "application/json"}
            )
            assert envelope_error(too_big, 413)["data"]["error"] == "PAYLOAD_TOO_LARGE"
    finally:
        built.close()


def test_the_secret_api_keeps_its_own_error_body(client: TestClient) -> None:
    body = client.get("/api/v1/workflow/nope").json()
    assert body["success"] is False
    assert body["status"] == 404


# -- the command line ------------------------------------------------------------------------


@pytest.fixture
def run_cli(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Any]:
    """``reachflow ARGS`` in this process: (exit code, stdout). The root logger is put back."""
    monkeypatch.setenv("REACHFLOW_DATABASE_URL", db_url)
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    saved = [(h, list(h.filters), h.formatter) for h in handlers]
    capsys.readouterr()

    def run(*argv: str) -> tuple[int, str]:
        code = main(list(argv))
        return code, capsys.readouterr().out

    yield run
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler, filters, formatter in saved:
        handler.filters[:] = filters
        handler.setFormatter(formatter)
    root.setLevel(level)


def test_the_cli_makes_publishable_keys_and_payment_secrets(
    run_cli: Any, client: TestClient
) -> None:
    workflow_id = public_workflow(client, price=PRICE)
    code, out = run_cli("api-key", "create", "--org", "acme", "--publishable")
    assert code == 0
    key = out.strip().splitlines()[-1]
    assert key.startswith("rf_pk_")
    assert "scope: publishable" in out
    code, out = run_cli("api-key", "list", "--org", "acme")
    assert "publishable" in out
    assert key not in out
    headers = {"Authorization": f"Bearer {key}", "X-API-Key": ""}
    assert client.get("/api/v1/agents", headers=headers).status_code == 403
    started = client.post(
        f"/v1/public/workflows/{workflow_id}/executions", json=session_body(), headers=headers
    )
    assert started.status_code == 200, started.text
    execution = started.json()["data"]["execution"]
    code, out = run_cli("payment-secret", "create", "--org", "acme")
    assert code == 0
    secret = out.strip().splitlines()[-1]
    assert secret.startswith("whsec_")
    body = {"checkoutSessionId": execution["checkoutSessionId"], "paymentStatus": "paid"}
    envelope_error(signed_payment(client, body), 401)  # the setting's secret no longer applies
    paid = signed_payment(client, body, secret=secret)
    assert paid.status_code == 200, paid.text
    assert paid.json()["data"]["execution"]["status"] == "workflow_queued"
    with pytest.raises(SystemExit):
        run_cli("api-key", "create", "--admin", "--publishable")
