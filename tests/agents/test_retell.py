"""The Retell adapter against a fake Retell on loopback, on SQLite and PostgreSQL.

``FakeRetell`` is a real HTTP server (127.0.0.1, a free port) speaking Retell's
``POST /v2/create-phone-call``: it checks the bearer API key and the documented body, answers
the documented call object with a ``call_id``, then, as Retell does, posts the call's webhooks
(``call_started`` when it connected, ``call_ended``, ``call_analyzed``) to the webhook URL the
test configured, signed ``x-retell-signature: v=<ms>,d=<hex>`` as Retell documents (HMAC-SHA256
under the API key of the raw body followed by the timestamp) by its own code, not ours. Our
API runs on real HTTP too (uvicorn on loopback). The engine runs under a virtual clock.

The mapping (``agents.retell_mapping``) is also tested alone: every documented reason is in the
one table, the table is total over any input (hypothesis), and the docs show the same table.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from hypothesis import given, settings
from hypothesis import strategies as st

from reachflow.agents.port import AgentError, DispatchRequest
from reachflow.agents.retell import (
    BadSignature,
    RetellAgent,
    check_retell_config,
    dynamic_variables,
    verify_signature,
)
from reachflow.agents.retell_mapping import (
    ERROR_REASONS,
    REASONS,
    Kind,
    disposition_of,
    read_event,
    rule_of,
)
from reachflow.api.app import create_app
from reachflow.bootstrap import Services, bootstrap
from reachflow.domain.enums import Channel, Disposition
from reachflow.domain.errors import ProblemCollector, ValidationFailed
from reachflow.runtime.clock import VirtualClock
from reachflow.settings import Settings
from tests.helpers import lead

API_KEY = "key_test_0123456789abcdef"
RETELL_AGENT = "agent_5f0c1d2e3a"
FROM_NUMBER = "+14155550100"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "agents-retell.md"
#: Every ``disconnection_reason`` Retell's reference lists (API reference and "Debug call
#: disconnection"), including the older ``error_*`` ones.
DOCUMENTED_REASONS = (
    "user_hangup",
    "agent_hangup",
    "call_transfer",
    "voicemail_reached",
    "ivr_reached",
    "inactivity",
    "machine_detected",
    "max_duration_reached",
    "concurrency_limit_reached",
    "no_valid_payment",
    "scam_detected",
    "error_inbound_webhook",
    "dial_busy",
    "dial_failed",
    "dial_no_answer",
    "invalid_destination",
    "telephony_provider_permission_denied",
    "telephony_provider_unavailable",
    "sip_routing_error",
    "marked_as_spam",
    "user_declined",
    "error_llm_websocket_open",
    "error_llm_websocket_lost_connection",
    "error_llm_websocket_runtime",
    "error_llm_websocket_corrupt_payload",
    "error_frontend_corrupted_payload",
    "error_twilio",
    "error_no_audio_received",
    "error_asr",
    "error_retell",
    "error_unknown",
    "error_user_not_joined",
    "registered_call_timeout",
    "transfer_bridged",
    "transfer_cancelled",
    "manual_stopped",
)


# -- the fake Retell ----------------------------------------------------------------------------


def retell_sign(api_key: str, body: bytes, timestamp_ms: int) -> str:
    """Retell's documented scheme, written here independently of ``agents.retell``."""
    mac = hmac.new(api_key.encode(), body + str(timestamp_ms).encode(), hashlib.sha256)
    return f"v={timestamp_ms},d={mac.hexdigest()}"


@dataclass
class Scenario:
    """How a call to one number goes: Retell's end-of-call fields."""

    reason: str
    connected: bool
    duration_ms: int = 0
    analysis: dict[str, Any] = field(default_factory=dict)
    recording: bool = True


SCENARIOS = {
    # An answered call: the contact books a meeting (post-call analysis field ``disposition``).
    "+12125550101": Scenario(
        "user_hangup",
        connected=True,
        duration_ms=42_400,
        analysis={
            "call_summary": "The contact booked a demo for Thursday.",
            "user_sentiment": "Positive",
            "call_successful": True,
            "in_voicemail": False,
            "custom_analysis_data": {"disposition": "CALENDLY"},
        },
    ),
    "+12125550102": Scenario("dial_no_answer", connected=False, recording=False),
    "+12125550103": Scenario(
        "voicemail_reached",
        connected=True,
        duration_ms=25_000,
        analysis={"call_summary": "Reached voicemail.", "in_voicemail": True},
    ),
    "+12125550104": Scenario("dial_busy", connected=False, recording=False),
    # Answered, no analysis field: the contact hung up.
    "+12125550105": Scenario(
        "user_hangup",
        connected=True,
        duration_ms=12_000,
        analysis={"call_summary": "Hung up early.", "user_sentiment": "Negative"},
    ),
}


class FakeRetell:
    def __init__(self, api_key: str, start_at: datetime) -> None:
        self.api_key = api_key
        self.start_at = start_at
        self.webhook_url = ""
        self.lock = threading.Condition()
        self.requests: list[dict[str, Any]] = []
        self.unauthorized = 0
        #: Statuses to answer before placing anything (a failing Retell), in order.
        self.fail_with: list[int] = []
        #: (event, our API's status, its answer) of every webhook posted.
        self.posted: list[tuple[str, int, dict[str, Any]]] = []
        self.threads: list[threading.Thread] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeRetell:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for thread in self.threads:
            thread.join(10)
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, answer = fake.create_phone_call(
                    self.path, self.headers.get("Authorization"), raw
                )
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                call = answer if status == 201 else None
                if call is not None:  # Retell reports the call's end later
                    thread = threading.Thread(target=fake.report, args=(call,))
                    fake.threads.append(thread)
                    thread.start()

        return Handler

    def create_phone_call(
        self, path: str, authorization: str | None, raw: bytes
    ) -> tuple[int, dict[str, Any]]:
        if path != "/v2/create-phone-call":
            return 404, {"status": "error", "message": "Not Found"}
        if authorization != f"Bearer {self.api_key}":
            with self.lock:
                self.unauthorized += 1
            return 401, {"status": "error", "message": "Unauthorized"}
        body = json.loads(raw)
        with self.lock:
            self.requests.append(body)
            if self.fail_with:
                return self.fail_with.pop(0), {"status": "error", "message": "Try again later"}
        if not isinstance(body.get("from_number"), str) or not isinstance(
            body.get("to_number"), str
        ):
            return 400, {"status": "error", "message": "from_number and to_number are required"}
        if body["to_number"] not in SCENARIOS:
            return 422, {"status": "error", "message": f"Cannot call {body['to_number']}"}
        return 201, {
            "call_type": "phone_call",
            "call_id": "call_" + uuid.uuid4().hex,
            "agent_id": body.get("override_agent_id") or "agent_bound_to_number",
            "agent_version": 1,
            "call_status": "registered",
            "direction": "outbound",
            "from_number": body["from_number"],
            "to_number": body["to_number"],
            "metadata": body.get("metadata") or {},
            "retell_llm_dynamic_variables": body.get("retell_llm_dynamic_variables") or {},
        }

    def ended_call(self, call: dict[str, Any]) -> dict[str, Any]:
        scenario = SCENARIOS[call["to_number"]]
        start_ms = int(self.start_at.timestamp() * 1000) + 3_000
        ended: dict[str, Any] = {
            **call,
            "call_status": "ended" if scenario.connected else "not_connected",
            "disconnection_reason": scenario.reason,
            "end_timestamp": start_ms + scenario.duration_ms,
        }
        if scenario.connected:
            ended |= {
                "start_timestamp": start_ms,
                "duration_ms": scenario.duration_ms,
                "transcript": "Agent: Hi!\nUser: Hello.\n",
            }
        if scenario.recording:
            ended["recording_url"] = f"https://retell.example/recordings/{call['call_id']}.wav"
        return ended

    def report(self, call: dict[str, Any]) -> None:
        ended = self.ended_call(call)
        scenario = SCENARIOS[call["to_number"]]
        if scenario.connected:
            self.post("call_started", {**call, "call_status": "ongoing"})
        self.post("call_ended", ended)
        self.post("call_analyzed", {**ended, "call_analysis": scenario.analysis})

    def post(self, event: str, call: dict[str, Any], *, key: str | None = None) -> None:
        raw = json.dumps({"event": event, "call": call}).encode()
        now_ms = int(time.time() * 1000)
        headers = {
            "Content-Type": "application/json",
            "x-retell-signature": retell_sign(key or self.api_key, raw, now_ms),
        }
        response = httpx.post(self.webhook_url, content=raw, headers=headers, timeout=30)
        with self.lock:
            self.posted.append((event, response.status_code, response.json()))
            self.lock.notify_all()

    def wait_posted(self, count: int) -> list[tuple[str, int, dict[str, Any]]]:
        with self.lock:
            assert self.lock.wait_for(lambda: len(self.posted) >= count, 30), self.posted
            return list(self.posted)


# -- the harness --------------------------------------------------------------------------------


@contextmanager
def live_api(services: Services) -> Iterator[str]:
    """Our API (``create_app``) served by uvicorn on a free loopback port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(services), log_config=None, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@dataclass
class World:
    services: Services
    clock: VirtualClock
    retell: FakeRetell
    api: str
    org: str
    agent_id: str

    def webhook_url(self, agent_id: str | None = None) -> str:
        return f"{self.api}/api/v1/providers/retell/webhook/{agent_id or self.agent_id}"

    def workflow(self, *, leave_voicemail: bool = False) -> str:
        step = {
            "type": "CALL",
            "order": 1,
            "agentId": self.agent_id,
            "delayInSecs": 0,
            "needsTCPACompliance": False,
            "leaveVoicemail": leave_voicemail,
        }
        return self.services.workflows.create(
            self.org,
            {
                "name": "one Retell call",
                "active": True,
                "timezone": "America/New_York",
                "definition": {"steps": [step]},
            },
        ).id

    def dispatch(self, phone: str, **extra: Any) -> tuple[str, str]:
        """Start an execution calling ``phone``; returns (workflow, execution) once its call
        is placed and recorded."""
        workflow = self.workflow(leave_voicemail=bool(extra.pop("leave_voicemail", False)))
        execution = self.services.executions.create(
            self.org, workflow, lead(phone, f"lead-{phone[-4:]}", **extra)
        ).record.id
        engine = self.services.engine
        engine.tick()
        engine.dispatcher.wait_idle(30)
        engine.tick()
        return workflow, execution


@pytest.fixture
def world(db_url: str, clock: VirtualClock) -> Iterator[World]:
    with FakeRetell(API_KEY, clock.now()) as retell:
        services = bootstrap(
            Settings(database_url=db_url, retell_base_url=retell.url, rate_limit_enabled=False),
            clock=clock,
            migrate=False,
        )
        try:
            org, _ = services.accounts.create_api_key("acme")
            agent = services.agents.create(org, agent_body())
            with live_api(services) as api:
                world = World(services, clock, retell, api, org, agent.id)
                retell.webhook_url = world.webhook_url()
                yield world
        finally:
            services.close()


def agent_body(**config: Any) -> dict[str, Any]:
    return {
        "name": "Retell caller",
        "channel": "CALL",
        "provider": "retell",
        "config": {"apiKey": API_KEY, "agentId": RETELL_AGENT, "fromNumber": FROM_NUMBER, **config},
    }


def finish(world: World, workflow: str, execution: str) -> Any:
    world.services.engine.run_until_idle(world.clock)
    return world.services.executions.get(world.org, workflow, execution)


def events(posted: list[tuple[str, int, dict[str, Any]]]) -> list[tuple[str, int, bool]]:
    return [(event, status, bool(answer.get("applied"))) for event, status, answer in posted]


# -- end to end ---------------------------------------------------------------------------------


def test_an_answered_call_ends_with_the_analysis_disposition(world: World) -> None:
    variables = {"firstName": "Ada", "visits": 3, "vip": True, "tags": ["a", "b"], "none": None}
    workflow, execution = world.dispatch("+12125550101", variables=variables)
    [request] = world.retell.requests
    assert request["from_number"] == FROM_NUMBER
    assert request["to_number"] == "+12125550101"
    assert request["override_agent_id"] == RETELL_AGENT
    assert request["retell_llm_dynamic_variables"] == {
        "firstName": "Ada",
        "visits": "3",
        "vip": "true",
        "tags": '["a","b"]',
    }
    metadata = request["metadata"]
    assert set(metadata) == {
        "callId",
        "idempotencyKey",
        "workflowExecutionId",
        "stepExecutionId",
        "leaveVoicemail",
    }
    assert metadata["workflowExecutionId"] == execution
    assert metadata["leaveVoicemail"] is False
    # call_started and call_ended are acknowledged; call_analyzed finishes the step.
    posted = world.retell.wait_posted(3)
    assert events(posted) == [
        ("call_started", 200, False),
        ("call_ended", 200, False),
        ("call_analyzed", 200, True),
    ]
    assert posted[2][2]["disposition"] == "CALENDLY"
    record = world.services.agent_calls.find(metadata["callId"])
    assert record.status == "reported"
    assert record.provider_call_id is not None
    assert record.provider_call_id.startswith("call_")
    view = finish(world, workflow, execution)
    assert view.record.status == "COMPLETED"
    [step] = view.steps
    assert step.disposition == "CALENDLY"
    call = step.agent_call
    assert call is not None
    assert call["callDuration"] == 42
    assert call["callEndedReason"] == "CALENDLY"
    assert call["status"] == "ended"
    assert call["summary"] == "The contact booked a demo for Thursday."
    assert call["recordingUrl"].startswith("https://retell.example/recordings/call_")
    start = datetime.fromisoformat(call["callStartedAt"])
    end = datetime.fromisoformat(call["callEndedAt"])
    assert (end - start) == timedelta(milliseconds=42_400)
    assert call["id"] == record.provider_call_id


def test_no_answer_and_busy_finish_at_call_ended(world: World) -> None:
    no_answer = world.dispatch("+12125550102")
    world.retell.wait_posted(2)
    busy = world.dispatch("+12125550104")
    posted = world.retell.wait_posted(4)
    # Nobody was reached: call_ended reports; call_analyzed repeats the same outcome.
    assert events(posted) == [
        ("call_ended", 200, True),
        ("call_analyzed", 200, False),
        ("call_ended", 200, True),
        ("call_analyzed", 200, False),
    ]
    for (workflow, execution), disposition in ((no_answer, "NO_ANSWER"), (busy, "LINE_BUSY")):
        view = finish(world, workflow, execution)
        [step] = view.steps
        assert step.disposition == disposition
        assert step.agent_call is not None
        assert step.agent_call["callDuration"] == 0
        assert step.agent_call["status"] == "not_connected"
        assert step.agent_call["recordingUrl"] is None


def test_voicemail_is_left_when_the_step_asks_for_one(world: World) -> None:
    workflow, execution = world.dispatch("+12125550103", leave_voicemail=True)
    assert world.retell.requests[0]["metadata"]["leaveVoicemail"] is True
    posted = world.retell.wait_posted(3)
    assert events(posted) == [
        ("call_started", 200, False),
        ("call_ended", 200, True),  # a machine answered: the analysis cannot change it
        ("call_analyzed", 200, False),
    ]
    [step] = finish(world, workflow, execution).steps
    assert step.disposition == "LEFT_VOICEMAIL"
    assert step.agent_call["callDuration"] == 25


def test_voicemail_is_detected_when_the_step_asks_for_none(world: World) -> None:
    workflow, execution = world.dispatch("+12125550103")
    world.retell.wait_posted(3)
    [step] = finish(world, workflow, execution).steps
    assert step.disposition == "VOICEMAIL_DETECTED"


def test_without_wait_for_analysis_call_ended_finishes_the_call(world: World) -> None:
    world.services.agents.update(
        world.org, world.agent_id, {"config": {**agent_body()["config"], "waitForAnalysis": False}}
    )
    workflow, execution = world.dispatch("+12125550101")
    posted = world.retell.wait_posted(3)
    assert events(posted) == [
        ("call_started", 200, False),
        ("call_ended", 200, True),
        ("call_analyzed", 200, False),  # the same outcome again: a duplicate
    ]
    [step] = finish(world, workflow, execution).steps
    assert step.disposition == "ENDED"
    assert step.agent_call["summary"] is None  # call_ended carries no analysis


def test_an_answered_call_without_an_analysis_disposition_is_ended(world: World) -> None:
    workflow, execution = world.dispatch("+12125550105")
    world.retell.wait_posted(3)
    [step] = finish(world, workflow, execution).steps
    assert step.disposition == "ENDED"
    assert step.agent_call["summary"] == "Hung up early."


def test_retell_failing_transiently_is_retried_and_the_call_placed_once(world: World) -> None:
    world.retell.fail_with = [503, 429]
    workflow, execution = world.dispatch("+12125550102")
    engine = world.services.engine
    for _ in range(2):  # each retry waits for its backoff
        upcoming = engine.next_work_at()
        assert upcoming is not None
        world.clock.advance_to(max(upcoming, world.clock.now()))
        engine.tick()
        engine.dispatcher.wait_idle(30)
        engine.tick()
    posted = world.retell.wait_posted(2)
    assert len(world.retell.requests) == 3
    keys = {r["metadata"]["idempotencyKey"] for r in world.retell.requests}
    calls = {r["metadata"]["callId"] for r in world.retell.requests}
    assert len(keys) == len(calls) == 1  # the same key and call id on every try
    assert events(posted)[0] == ("call_ended", 200, True)
    [step] = finish(world, workflow, execution).steps
    assert step.disposition == "NO_ANSWER"


def test_a_refused_call_is_not_retried(world: World) -> None:
    workflow, execution = world.dispatch("+12125559999")  # the fake refuses it: 422
    view = finish(world, workflow, execution)
    assert len(world.retell.requests) == 1
    [step] = view.steps
    assert step.disposition == "COULD_NOT_CONNECT"
    logged = json.dumps(
        [e.data for e in world.services.executions.events(world.org, workflow, execution)]
    )
    assert "HTTP 422" in logged
    assert "2125559999" not in logged  # Retell's message names the number: masked


def test_a_wrong_api_key_is_a_permanent_failure(world: World) -> None:
    world.services.agents.update(
        world.org, world.agent_id, {"config": {**agent_body()["config"], "apiKey": "key_wrong"}}
    )
    workflow, execution = world.dispatch("+12125550101")
    [step] = finish(world, workflow, execution).steps
    assert world.retell.unauthorized == 1
    assert step.disposition == "COULD_NOT_CONNECT"


# -- the webhook route ----------------------------------------------------------------------------


def signed_post(
    world: World,
    body: dict[str, Any],
    *,
    key: str = API_KEY,
    at_ms: int | None = None,
    agent_id: str | None = None,
    signature: str | None = None,
) -> httpx.Response:
    raw = json.dumps(body).encode()
    at_ms = at_ms if at_ms is not None else int(time.time() * 1000)
    header = signature if signature is not None else retell_sign(key, raw, at_ms)
    return httpx.post(
        world.webhook_url(agent_id),
        content=raw,
        headers={"Content-Type": "application/json", "x-retell-signature": header},
    )


def placed_call(world: World, phone: str = "+12125550102") -> dict[str, Any]:
    """A call placed for a fresh execution, as its ``call_ended`` webhook carries it."""
    world.dispatch(phone)
    world.retell.wait_posted(2)
    request = world.retell.requests[-1]
    return world.retell.ended_call(
        {
            "call_id": "call_" + uuid.uuid4().hex,
            "to_number": phone,
            "from_number": FROM_NUMBER,
            "metadata": request["metadata"],
        }
    )


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert (body["status"], body["code"], body["success"]) == (status, code, False)


def test_a_forged_or_stale_signature_is_refused(world: World) -> None:
    call = placed_call(world)
    body = {"event": "call_ended", "call": call}
    now_ms = int(time.time() * 1000)
    assert_error(signed_post(world, body, key="key_someone_else"), 401, "UNAUTHORIZED")
    assert_error(signed_post(world, body, at_ms=now_ms - 6 * 60_000), 401, "UNAUTHORIZED")
    assert_error(signed_post(world, body, signature="v=1,d=abc"), 401, "UNAUTHORIZED")
    raw = json.dumps(body).encode()
    missing = httpx.post(world.webhook_url(), content=raw)
    assert_error(missing, 401, "UNAUTHORIZED")
    # A body changed after signing.
    good = retell_sign(API_KEY, raw, now_ms)
    tampered = httpx.post(
        world.webhook_url(),
        content=raw.replace(b"dial_no_answer", b"user_hangup"),
        headers={"x-retell-signature": good},
    )
    assert_error(tampered, 401, "UNAUTHORIZED")
    # The genuine one, again: a duplicate of the report already taken.
    again = signed_post(world, body)
    assert again.status_code == 200
    assert again.json()["applied"] is False


def test_unknown_agents_and_calls_are_404(world: World) -> None:
    call = placed_call(world)
    body = {"event": "call_ended", "call": call}
    assert_error(signed_post(world, body, agent_id=str(uuid.uuid4())), 404, "NOT_FOUND")
    simulator = world.services.agents.create(
        world.org, {"name": "sim", "channel": "CALL", "config": {}}
    )
    assert_error(signed_post(world, body, agent_id=simulator.id), 404, "NOT_FOUND")
    stranger = {**call, "call_id": "call_never_placed", "metadata": {}}
    assert_error(signed_post(world, {"event": "call_ended", "call": stranger}), 404, "NOT_FOUND")
    unknown = {**call, "call_id": "call_x", "metadata": {"callId": str(uuid.uuid4())}}
    assert_error(signed_post(world, {"event": "call_ended", "call": unknown}), 404, "NOT_FOUND")
    # Another organization's Retell agent cannot report this organization's call.
    other_org, _ = world.services.accounts.create_api_key("globex")
    other = world.services.agents.create(other_org, agent_body())
    assert_error(signed_post(world, body, agent_id=other.id), 404, "NOT_FOUND")
    assert_error(
        signed_post(world, {"event": "call_ended", "call": "nope"}), 400, "VALIDATION_ERROR"
    )


def test_the_call_is_found_by_retells_call_id_without_metadata(world: World) -> None:
    workflow, execution = world.dispatch("+12125550104")
    posted = world.retell.wait_posted(2)
    assert events(posted)[0] == ("call_ended", 200, True)
    record = world.services.agent_calls.find(world.retell.requests[-1]["metadata"]["callId"])
    assert record.provider_call_id is not None
    call = world.retell.ended_call(
        {
            "call_id": record.provider_call_id,
            "to_number": "+12125550104",
            "from_number": FROM_NUMBER,
            "metadata": {},
        }
    )
    again = signed_post(world, {"event": "call_ended", "call": call})
    assert again.status_code == 200
    assert (again.json()["call_id"], again.json()["applied"]) == (record.id, False)
    # Another outcome for a reported call: the first report stands.
    other = signed_post(
        world, {"event": "call_ended", "call": {**call, "disconnection_reason": "dial_no_answer"}}
    )
    assert (other.status_code, other.json()["applied"]) == (200, False)
    [step] = finish(world, workflow, execution).steps
    assert step.disposition == "LINE_BUSY"


# -- config ---------------------------------------------------------------------------------------


def test_the_config_is_checked() -> None:
    problems = ProblemCollector()
    check_retell_config(
        {"apiKey": "", "fromNumber": "4155550100", "waitForAnalysis": "yes", "timeoutSecs": 0},
        problems,
    )
    fields = {p.field for p in problems.problems}
    assert fields == {
        "config.apiKey",
        "config.agentId",
        "config.fromNumber",
        "config.waitForAnalysis",
        "config.timeoutSecs",
    }
    ok = ProblemCollector()
    check_retell_config(agent_body(timeoutSecs=5, maxConcurrent=3)["config"], ok)
    assert ok.problems == []


def test_a_retell_agent_needs_a_complete_config_and_the_call_channel(
    services: Services, org_key: tuple[str, str]
) -> None:
    org, _ = org_key
    with pytest.raises(ValidationFailed) as caught:
        services.agents.create(org, {**agent_body(), "config": {"apiKey": API_KEY}})
    assert {p.field for p in caught.value.problems} == {"config.agentId", "config.fromNumber"}
    with pytest.raises(ValidationFailed):
        services.agents.create(org, {**agent_body(), "channel": "TEXT"})
    agent = services.agents.create(org, agent_body())
    with pytest.raises(ValidationFailed):
        services.agents.update(org, agent.id, {"config": {"apiKey": API_KEY}})
    simulator = services.agents.create(org, {"name": "s", "channel": "CALL", "config": {}})
    with pytest.raises(ValidationFailed):  # becoming a retell agent needs its config
        services.agents.update(org, simulator.id, {"provider": "retell"})


def test_a_text_step_or_a_broken_config_is_not_sent() -> None:
    agent = RetellAgent(base_url="http://127.0.0.1:9")
    request = DispatchRequest(
        idempotency_key="k",
        organization_id="o",
        execution_id="e",
        step_execution_id="s",
        agent_id="a",
        agent_config=agent_body()["config"],
        channel=Channel.TEXT,
        phone="+12125550101",
        message="hi",
        leave_voicemail=False,
        variables={},
        sequence=1,
        now=datetime(2026, 3, 9, tzinfo=UTC),
    )
    with pytest.raises(AgentError) as text:
        agent.dispatch(request)
    assert text.value.transient is False
    call = {**_fields(request), "channel": Channel.CALL}
    with pytest.raises(AgentError, match="config is unusable") as broken:
        agent.dispatch(DispatchRequest(**{**call, "agent_config": {}}))
    assert broken.value.transient is False
    # Nothing listens on port 9: a connection error is transient.
    with pytest.raises(AgentError, match="ConnectError") as refused:
        agent.dispatch(DispatchRequest(**call))
    assert refused.value.transient is True
    agent.close()


def _fields(request: DispatchRequest) -> dict[str, Any]:
    return {name: getattr(request, name) for name in DispatchRequest.__slots__}


def test_signature_verification_follows_retells_scheme() -> None:
    body = b'{"event":"call_ended","call":{}}'
    now = 1_773_000_000_000
    verify_signature(API_KEY, retell_sign(API_KEY, body, now), body, now_ms=now + 299_000)
    for header, at in (
        (retell_sign(API_KEY, body, now), now + 301_000),
        (retell_sign("key_other", body, now), now),
        (retell_sign(API_KEY, body + b" ", now), now),
        ("", now),
        (None, now),
        ("v=abc,d=00", now),
    ):
        with pytest.raises(BadSignature):
            verify_signature(API_KEY, header, body, now_ms=at)
    with pytest.raises(BadSignature):
        verify_signature("", retell_sign("", body, now), body, now_ms=now)


def test_dynamic_variables_are_strings() -> None:
    assert dynamic_variables({"a": "x", "b": 1.5, "c": False, "d": {"e": 1}, "f": None}) == {
        "a": "x",
        "b": "1.5",
        "c": "false",
        "d": '{"e":1}',
    }


# -- the mapping table ----------------------------------------------------------------------------


def test_every_documented_reason_is_in_the_table() -> None:
    for reason in DOCUMENTED_REASONS:
        assert reason in REASONS or reason in ERROR_REASONS, reason
    assert set(ERROR_REASONS) <= {r for r in DOCUMENTED_REASONS if r.startswith("error_")}
    for reason in ERROR_REASONS:
        assert rule_of(reason, True).disposition is Disposition.COULD_NOT_CONNECT
        assert rule_of(reason, False).kind is Kind.NOT_CONNECTED


EXPECTED = {
    # reason: (disposition without analysis, with leaveVoicemail)
    "user_hangup": (Disposition.ENDED, Disposition.ENDED),
    "agent_hangup": (Disposition.ENDED, Disposition.ENDED),
    "call_transfer": (Disposition.WARM_TRANSFER, Disposition.WARM_TRANSFER),
    "inactivity": (Disposition.SILENCE_TIMEOUT, Disposition.SILENCE_TIMEOUT),
    "voicemail_reached": (Disposition.VOICEMAIL_DETECTED, Disposition.LEFT_VOICEMAIL),
    "machine_detected": (Disposition.VOICEMAIL_DETECTED, Disposition.VOICEMAIL_DETECTED),
    "dial_no_answer": (Disposition.NO_ANSWER, Disposition.NO_ANSWER),
    "dial_busy": (Disposition.LINE_BUSY, Disposition.LINE_BUSY),
    "invalid_destination": (Disposition.BAD_NUMBER, Disposition.BAD_NUMBER),
    "dial_failed": (Disposition.COULD_NOT_CONNECT, Disposition.COULD_NOT_CONNECT),
    "concurrency_limit_reached": (Disposition.COULD_NOT_CONNECT, Disposition.COULD_NOT_CONNECT),
}


@pytest.mark.parametrize("reason", sorted(EXPECTED))
def test_the_table_maps_the_main_reasons(reason: str) -> None:
    plain, voicemail = EXPECTED[reason]
    assert disposition_of(reason, None, leave_voicemail=False, connected=True) is plain
    assert disposition_of(reason, None, leave_voicemail=True, connected=True) is voicemail


def test_the_analysis_refines_only_a_conversation() -> None:
    named = {"custom_analysis_data": {"disposition": " not_interested "}, "in_voicemail": True}
    for reason in ("user_hangup", "agent_hangup", "inactivity", "error_asr", "what_is_this"):
        assert (
            disposition_of(reason, named, leave_voicemail=False, connected=True)
            is Disposition.NOT_INTERESTED
        )
    in_voicemail = {"in_voicemail": True, "custom_analysis_data": {"disposition": "MAYBE"}}
    assert (
        disposition_of("agent_hangup", in_voicemail, leave_voicemail=True, connected=True)
        is Disposition.LEFT_VOICEMAIL
    )
    for reason, rule in REASONS.items():
        if rule.kind is not Kind.CONVERSATION:
            assert disposition_of(reason, named, leave_voicemail=False, connected=True) in (
                rule.disposition,
                Disposition.VOICEMAIL_DETECTED,
            )


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
REASON = st.sampled_from(DOCUMENTED_REASONS) | st.text(max_size=30) | JSON
ANALYSIS = (
    st.none()
    | JSON
    | st.fixed_dictionaries(
        {},
        optional={
            "custom_analysis_data": st.fixed_dictionaries(
                {}, optional={"disposition": st.sampled_from([d.value for d in Disposition]) | JSON}
            )
            | JSON,
            "in_voicemail": JSON,
            "call_successful": JSON,
            "user_sentiment": JSON,
            "call_summary": JSON,
        },
    )
)


@settings(max_examples=300, deadline=None)
@given(reason=REASON, analysis=ANALYSIS, leave_voicemail=st.booleans(), connected=st.booleans())
def test_the_mapping_is_total(
    reason: object, analysis: object, leave_voicemail: bool, connected: bool
) -> None:
    got = disposition_of(reason, analysis, leave_voicemail=leave_voicemail, connected=connected)
    assert isinstance(got, Disposition)
    rule = rule_of(reason, connected)
    if rule.kind is Kind.NOT_CONNECTED:
        assert got is rule.disposition


TIMESTAMP = st.integers(min_value=-(10**15), max_value=10**15) | JSON
CALL = st.fixed_dictionaries(
    {},
    optional={
        "call_id": JSON,
        "call_status": JSON,
        "disconnection_reason": REASON,
        "start_timestamp": TIMESTAMP,
        "end_timestamp": TIMESTAMP,
        "duration_ms": TIMESTAMP,
        "recording_url": JSON,
        "metadata": JSON,
        "call_analysis": ANALYSIS,
    },
)


@settings(max_examples=300, deadline=None)
@given(
    event=st.sampled_from(["call_started", "call_ended", "call_analyzed"]) | JSON,
    call=CALL,
    wait=st.booleans(),
)
def test_any_webhook_reads_as_a_result_or_nothing(event: object, call: Any, wait: bool) -> None:
    now = datetime(2026, 3, 9, 14, tzinfo=UTC)
    result = read_event(event, call, wait_for_analysis=wait, now=now, our_call_id="ours")
    if event == "call_analyzed":
        assert result is not None
    if event not in ("call_ended", "call_analyzed"):
        assert result is None
    if result is None:
        return
    assert isinstance(result.disposition, Disposition)
    assert result.call.call_ended_reason is result.disposition
    assert 0 <= result.call.call_duration <= 86_400
    assert result.call.call_started_at <= result.call.call_ended_at
    assert result.call.id
    json.dumps(result.call.to_json())
    if event == "call_analyzed" and not wait:
        # The analysis is not read: the same outcome call_ended reported.
        ended = read_event("call_ended", call, wait_for_analysis=False, now=now)
        assert ended is not None
        assert ended.disposition is result.disposition


def test_the_docs_show_the_table() -> None:
    rows = re.findall(r"^\| `([a-z_*]+)` \| (\w+) \| `([A-Z_]+)` \|", DOCS.read_text(), re.M)
    documented = {reason: (kind, disposition) for reason, kind, disposition in rows}
    expected = {
        reason: (rule.kind.value, rule.disposition.value) for reason, rule in REASONS.items()
    }
    expected["error_*"] = (Kind.CONVERSATION.value, Disposition.COULD_NOT_CONNECT.value)
    assert documented == expected
