"""The webhook agent against real HTTP endpoints on loopback, with the real engine and a live
reachflow API (uvicorn on loopback) taking the later reports, on SQLite and PostgreSQL.

``Endpoint`` is a customer's agent endpoint (a threaded ``http.server``) written as
``docs/agents.md`` tells customers to: it verifies every dispatch with the docs' own samples
(``standardwebhooks``, and the algorithm by hand), places each idempotency key's call once,
and reports later with the docs' ``report`` sample. What it answers is up to each test.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from reachflow import __version__
from reachflow.agents.port import AgentError, DispatchRequest
from reachflow.agents.signing import new_secret
from reachflow.agents.webhook import WebhookAgent
from reachflow.api import create_app
from reachflow.bootstrap import Services, bootstrap
from reachflow.domain.enums import Channel, Disposition
from reachflow.domain.errors import ValidationFailed
from reachflow.runtime.clock import VirtualClock
from reachflow.settings import Settings
from tests.conftest import MONDAY_10_NY
from tests.helpers import lead, serve

DOCS = Path(__file__).resolve().parents[2] / "docs" / "agents.md"
REPORT_TIMEOUT = 600
WAIT = 30.0


# -- the customer's side, as docs/agents.md writes it ------------------------------------------


def docs_sample(name: str) -> str:
    text = DOCS.read_text(encoding="utf-8")
    found = re.search(rf"<!-- sample: {re.escape(name)} -->\s*```python\n(.*?)```", text, re.S)
    assert found is not None, f"docs/agents.md has no sample {name!r}"
    return found.group(1)


def customer_code(secret: str) -> dict[str, Any]:
    """The docs' samples, run as a customer runs them, with the agent's secret as ``SECRET``:
    ``verify_dispatch``, ``verify_by_hand`` and ``report``."""
    namespace: dict[str, Any] = {}
    for name in ("verify", "verify-by-hand", "report"):
        exec(compile(docs_sample(name), f"docs/agents.md:{name}", "exec"), namespace)
    namespace["SECRET"] = secret
    return namespace


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool
    verified_by_hand: bool

    @property
    def dispatch(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data

    @property
    def key(self) -> str:
        return self.headers["idempotency-key"]


@dataclass
class Reply:
    status: int = 200
    body: dict[str, Any] | bytes | None = None
    #: Run after the answer is sent (a later report).
    then: Callable[[], None] | None = None


def outcome(disposition: str = "CALENDLY", *, at: datetime | None = None) -> dict[str, Any]:
    started = (at or MONDAY_10_NY) + timedelta(seconds=2)
    return {
        "disposition": disposition,
        "agentCall": {
            "id": f"call-{uuid.uuid4().hex[:8]}",
            "status": "completed",
            "callStartedAt": started.isoformat(),
            "callEndedAt": (started + timedelta(seconds=42)).isoformat(),
            "callDuration": 42,
            "callEndedReason": disposition,
            "recordingUrl": "https://recordings.example.com/1.mp3",
            "summary": f"The contact: {disposition}",
        },
    }


class Endpoint:
    """A customer's agent endpoint on 127.0.0.1. ``respond(endpoint, received)`` says what to
    answer; the endpoint verifies, records and counts placements (once per key) itself."""

    def __init__(self, respond: Callable[[Endpoint, Received], Reply]) -> None:
        self.respond = respond
        self.secret = ""
        self.code: dict[str, Any] = {}
        self.lock = threading.Condition()
        self.received: list[Received] = []
        self.placed: Counter[str] = Counter()
        self.outcomes: dict[str, dict[str, Any]] = {}
        self.reports: list[httpx.Response] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.gate = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.endpoint = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/dispatch"

    def use_secret(self, secret: str) -> None:
        self.secret = secret
        self.code = customer_code(secret)

    def place(self, received: Received, disposition: str = "CALENDLY") -> dict[str, Any]:
        """Place the key's call once; the outcome of its one call, however often asked."""
        with self.lock:
            if received.key not in self.outcomes:
                self.placed[received.key] += 1
                self.outcomes[received.key] = outcome(disposition)
            return self.outcomes[received.key]

    def report_later(self, received: Received, result: dict[str, Any]) -> Callable[[], None]:
        def post() -> None:
            answer = self.code["report"](received.dispatch["callbackUrl"], result)
            with self.lock:
                self.reports.append(answer)
                self.lock.notify_all()

        return post

    def wait(self, what: Callable[[], bool]) -> None:
        with self.lock:
            assert self.lock.wait_for(what, WAIT), "the endpoint waited in vain"

    def close(self) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        endpoint: Endpoint = self.server.endpoint  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            endpoint.code["verify_dispatch"](headers, body)
            verified = True
        except WebhookVerificationError:
            verified = False
        received = Received(
            headers, body, verified, endpoint.code["verify_by_hand"](endpoint.secret, headers, body)
        )
        with endpoint.lock:
            endpoint.received.append(received)
            endpoint.in_flight += 1
            endpoint.most_in_flight = max(endpoint.most_in_flight, endpoint.in_flight)
            endpoint.lock.notify_all()
        try:
            reply = endpoint.respond(endpoint, received) if verified else Reply(401)
        finally:
            with endpoint.lock:
                endpoint.in_flight -= 1
                endpoint.lock.notify_all()
        raw = json.dumps(reply.body).encode() if isinstance(reply.body, dict) else reply.body
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw or b"")))
        self.end_headers()
        if raw:
            self.wfile.write(raw)
        self.wfile.flush()
        if reply.then is not None:
            reply.then()

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


# -- reachflow: services, the engine, a live API -------------------------------------------


@dataclass
class Rig:
    services: Services
    clock: VirtualClock
    api: str
    org: str
    key: str
    endpoints: list[Endpoint] = field(default_factory=list)

    def endpoint(self, respond: Callable[[Endpoint, Received], Reply]) -> Endpoint:
        made = Endpoint(respond)
        self.endpoints.append(made)
        return made

    def agent(self, endpoint: Endpoint, channel: str = "CALL", **config: Any) -> str:
        record = self.services.agents.create(
            self.org,
            {
                "name": f"webhook {len(self.endpoints)}",
                "channel": channel,
                "provider": "webhook",
                "config": {"url": endpoint.url, **config},
            },
        )
        endpoint.use_secret(record.config["secret"])
        return record.id

    def workflow(self, agent_id: str, channel: str = "CALL", **step: Any) -> str:
        return self.services.workflows.create(
            self.org,
            {
                "name": "one step",
                "active": True,
                "timezone": "America/New_York",
                "definition": {
                    "steps": [
                        {
                            "type": channel,
                            "order": 1,
                            "agentId": agent_id,
                            "needsTCPACompliance": False,
                            **step,
                        }
                    ]
                },
            },
        ).id

    def start(self, workflow_id: str, phone: str = "+12125550123", **extra: Any) -> str:
        view = self.services.executions.create(
            self.org, workflow_id, lead(phone, f"lead-{phone}", **extra)
        )
        return view.record.id

    def step(self, workflow_id: str, execution_id: str) -> Any:
        [step] = self.services.executions.get(self.org, workflow_id, execution_id).steps
        return step

    def status(self, workflow_id: str, execution_id: str) -> str:
        return self.services.executions.get(self.org, workflow_id, execution_id).record.status

    def events(self, workflow_id: str, execution_id: str) -> list[Any]:
        return self.services.executions.events(self.org, workflow_id, execution_id)

    def run(self) -> None:
        """Run everything, moving the clock to each next due instant (timeouts included)."""
        self.services.engine.run_until_idle(self.clock)

    def settle(self) -> None:
        """Do all that is due now, without moving the clock."""
        self.services.engine.run_until_idle(self.clock, until=self.clock.now())

    def dispatch_now(self) -> None:
        """Send what is due and wait for the agents' answers, without moving the clock."""
        engine = self.services.engine
        engine.tick()
        engine.dispatcher.wait_idle(WAIT)
        engine.tick()

    def post(self, url: str, body: Any, **headers: str) -> httpx.Response:
        return httpx.post(url, content=json.dumps(body), headers=headers, timeout=WAIT)


@pytest.fixture
def rig(db_url: str, clock: VirtualClock) -> Iterator[Rig]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    api = f"http://127.0.0.1:{sock.getsockname()[1]}"
    services = bootstrap(
        Settings(database_url=db_url, public_url=api, report_timeout_seconds=REPORT_TIMEOUT),
        clock=clock,
        migrate=False,
    )
    server, thread = serve(create_app(services), sock, WAIT)
    org, key = services.accounts.create_api_key("acme")
    made = Rig(services, clock, api, org, key)
    try:
        yield made
    finally:
        for endpoint in made.endpoints:
            endpoint.gate.set()
        server.should_exit = True
        thread.join(WAIT)
        services.close()
        for endpoint in made.endpoints:
            endpoint.close()
        sock.close()


# -- (a) the outcome at once -----------------------------------------------------------------


def test_an_agent_that_answers_at_once(rig: Rig) -> None:
    endpoint = rig.endpoint(lambda e, r: Reply(200, e.place(r, "CALENDLY")))
    agent_id = rig.agent(endpoint, channel="TEXT")
    wf = rig.workflow(agent_id, channel="TEXT", initialMessage="Hi {{firstName}}, still keen?")
    execution = rig.start(wf, variables={"firstName": "Ada"})
    rig.run()

    assert rig.status(wf, execution) == "COMPLETED"
    step = rig.step(wf, execution)
    assert (step.status, step.disposition) == ("COMPLETED", "CALENDLY")
    [received] = endpoint.received
    sent = endpoint.outcomes[received.key]["agentCall"]
    assert step.agent_call["recordingUrl"] == sent["recordingUrl"]
    assert step.agent_call["summary"] == sent["summary"]
    assert step.agent_call["callDuration"] == 42
    assert step.agent_call["id"] == sent["id"]

    # What the endpoint received, header by header and field by field (docs/agents.md).
    body = received.dispatch
    assert received.verified
    assert received.verified_by_hand
    assert received.headers["content-type"] == "application/json"
    assert received.headers["user-agent"] == f"reachflow/{__version__}"
    assert received.headers["webhook-id"].startswith("msg_")
    assert received.headers["webhook-signature"].startswith("v1,")
    assert abs(int(received.headers["webhook-timestamp"]) - time.time()) < 60
    call_id = body["callId"]
    assert body == {
        "type": "dispatch",
        "callId": call_id,
        "idempotencyKey": received.key,
        "workflowExecutionId": execution,
        "stepExecutionId": step.id,
        "agentId": agent_id,
        "channel": "TEXT",
        "phoneNumber": "+12125550123",
        "message": "Hi Ada, still keen?",
        "variables": {"firstName": "Ada"},
        "leaveVoicemail": False,
        "forwardingPhoneNumber": None,
        "sequence": 1,
        "callbackUrl": f"{rig.api}/api/v1/agent-calls/{call_id}/result",
        "sentAt": MONDAY_10_NY.isoformat(),
    }
    record = rig.services.agent_calls.find(call_id)
    assert record.status == "reported"
    assert endpoint.placed == Counter({received.key: 1})


# -- (b) accepted, reported later --------------------------------------------------------------


def test_an_agent_that_accepts_and_reports_later(rig: Rig) -> None:
    signed_phone, keyed_phone = "+12125550123", "+12125550124"

    def respond(endpoint: Endpoint, received: Received) -> Reply:
        result = endpoint.place(received, "NOT_INTERESTED")
        if received.dispatch["phoneNumber"] != signed_phone:
            return Reply(202, b"")  # this one the test reports, with the API key
        return Reply(202, {"callId": "prov-1"}, then=endpoint.report_later(received, result))

    endpoint = rig.endpoint(respond)
    wf = rig.workflow(rig.agent(endpoint))
    signed = rig.start(wf, signed_phone)
    keyed = rig.start(wf, keyed_phone)
    rig.dispatch_now()
    endpoint.wait(lambda: len(endpoint.reports) == 1)
    [answer] = endpoint.reports
    assert answer.status_code == 200, answer.text
    assert answer.json()["applied"] is True
    rig.settle()

    assert rig.status(wf, signed) == "COMPLETED"
    step = rig.step(wf, signed)
    assert (step.status, step.disposition) == ("COMPLETED", "NOT_INTERESTED")
    by_phone = {r.dispatch["phoneNumber"]: r for r in endpoint.received}
    first = by_phone[signed_phone]
    assert step.agent_call["summary"] == endpoint.outcomes[first.key]["agentCall"]["summary"]
    call = rig.services.agent_calls.find(first.dispatch["callId"])
    assert (call.status, call.provider_call_id) == ("reported", "prov-1")

    # The other call: still waiting; reported with the organization's API key.
    assert rig.status(wf, keyed) == "RUNNING"
    other = by_phone[keyed_phone]
    callback = other.dispatch["callbackUrl"]
    assert (
        rig.services.agent_calls.find(other.dispatch["callId"]).provider_call_id
        == (
            other.dispatch["callId"]  # a 202 without callId: ours
        )
    )
    result = endpoint.outcomes[other.key]
    answer = rig.post(callback, result, **{"X-API-Key": rig.key})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"call_id": other.dispatch["callId"], "applied": True, "success": True}
    rig.settle()
    assert rig.status(wf, keyed) == "COMPLETED"
    assert rig.step(wf, keyed).disposition == "NOT_INTERESTED"

    # A duplicate report, signed afresh or with the key: 200, nothing applied.
    again = endpoint.code["report"](callback, result)
    assert (again.status_code, again.json()["applied"]) == (200, False)
    again = rig.post(callback, result, Authorization=f"Bearer {rig.key}")
    assert (again.status_code, again.json()["applied"]) == (200, False)
    # Another outcome for a reported call: 409.
    conflict = endpoint.code["report"](callback, outcome("CALENDLY"))
    assert conflict.status_code == 409, conflict.text
    conflict = rig.post(callback, outcome("CALENDLY"), **{"X-API-Key": rig.key})
    assert conflict.status_code == 409
    # An unknown call: 404, signed or keyed.
    unknown = f"{rig.api}/api/v1/agent-calls/{uuid.uuid4()}/result"
    assert endpoint.code["report"](unknown, result).status_code == 404
    assert rig.post(unknown, result, **{"X-API-Key": rig.key}).status_code == 404
    # Another organization's key does not reach this call.
    _, stranger = rig.services.accounts.create_api_key("someone else")
    assert rig.post(callback, result, **{"X-API-Key": stranger}).status_code == 404
    # No signature and no key: 401. A malformed body: 400 naming the field.
    assert rig.post(callback, result).status_code == 401
    bad = rig.post(callback, {"disposition": "MAYBE"}, **{"X-API-Key": rig.key})
    assert bad.status_code == 400
    assert "disposition" in bad.text
    assert rig.step(wf, keyed).disposition == "NOT_INTERESTED"
    assert sorted(endpoint.placed.values()) == [1, 1]


# -- (c) never reports -------------------------------------------------------------------------


def test_an_agent_that_never_reports_times_out_as_could_not_connect(rig: Rig) -> None:
    endpoint = rig.endpoint(
        lambda e, r: Reply(202, {"id": f"prov-{e.place(r)['agentCall']['id']}"})
    )
    wf = rig.workflow(rig.agent(endpoint))
    execution = rig.start(wf)
    rig.run()

    assert rig.clock.now() >= MONDAY_10_NY + timedelta(seconds=REPORT_TIMEOUT)
    step = rig.step(wf, execution)
    assert (step.status, step.disposition) == ("FAILED", "COULD_NOT_CONNECT")
    assert rig.status(wf, execution) == "COMPLETED"
    assert "report_timeout" in [e.kind for e in rig.events(wf, execution)]
    [received] = endpoint.received
    call = rig.services.agent_calls.find(received.dispatch["callId"])
    assert call.status == "accepted"
    assert call.provider_call_id.startswith("prov-call-")
    # A report after the timeout is refused, and changes nothing.
    late = endpoint.code["report"](received.dispatch["callbackUrl"], outcome("CALENDLY"))
    assert late.status_code == 409, late.text
    assert "ended as FAILED with COULD_NOT_CONNECT" in late.json()["message"]
    assert rig.services.agent_calls.find(received.dispatch["callId"]).status == "accepted"
    assert rig.step(wf, execution).disposition == "COULD_NOT_CONNECT"


# -- (d) fails twice, then succeeds ------------------------------------------------------------


def test_transient_failures_are_retried_under_one_key_and_the_call_is_placed_once(
    rig: Rig,
) -> None:
    def respond(endpoint: Endpoint, received: Received) -> Reply:
        result = endpoint.place(received)  # placed on the first request; then it fails twice
        asked = sum(1 for r in endpoint.received if r.key == received.key)
        return Reply(503, {"error": "busy"}) if asked <= 2 else Reply(200, result)

    endpoint = rig.endpoint(respond)
    wf = rig.workflow(rig.agent(endpoint))
    executions = [rig.start(wf, f"+1212555{n:04d}") for n in range(3)]
    rig.run()

    for execution in executions:
        step = rig.step(wf, execution)
        assert (step.status, step.disposition) == ("COMPLETED", "CALENDLY")
    keys = Counter(r.key for r in endpoint.received)
    assert sorted(keys.values()) == [3, 3, 3]  # three requests per key ...
    assert endpoint.placed == Counter(dict.fromkeys(keys, 1))  # ... one call placed per key
    for key in keys:
        attempts = [r for r in endpoint.received if r.key == key]
        assert {r.dispatch["idempotencyKey"] for r in attempts} == {key}
        assert len({r.dispatch["callId"] for r in attempts}) == 1
        assert len({r.headers["webhook-id"] for r in attempts}) == 3  # fresh per attempt
        assert all(r.verified and r.verified_by_hand for r in attempts)
    # The retries waited their backoff (about 5 s, then 10 s) on the engine's clock.
    assert rig.clock.now() >= MONDAY_10_NY + timedelta(seconds=15)


def test_retries_stop_at_the_agents_max_attempts(rig: Rig) -> None:
    endpoint = rig.endpoint(lambda e, r: Reply(503))
    wf = rig.workflow(rig.agent(endpoint, retry={"maxAttempts": 3, "initialBackoffSecs": 1}))
    execution = rig.start(wf)
    rig.run()

    assert len(endpoint.received) == 3
    assert len({r.key for r in endpoint.received}) == 1
    step = rig.step(wf, execution)
    assert (step.status, step.disposition) == ("FAILED", "COULD_NOT_CONNECT")
    [failed] = [e for e in rig.events(wf, execution) if e.kind == "dispatch_failed"]
    assert "HTTP 503" in failed.data["reason"]


def test_a_permanent_refusal_is_not_retried(rig: Rig) -> None:
    endpoint = rig.endpoint(lambda e, r: Reply(422, {"error": "no such campaign"}))
    wf = rig.workflow(rig.agent(endpoint))
    execution = rig.start(wf)
    rig.run()

    assert len(endpoint.received) == 1
    step = rig.step(wf, execution)
    assert (step.status, step.disposition) == ("FAILED", "COULD_NOT_CONNECT")
    [failed] = [e for e in rig.events(wf, execution) if e.kind == "dispatch_failed"]
    assert "HTTP 422" in failed.data["reason"]


def test_a_malformed_answer_fails_the_step_naming_the_problem(rig: Rig) -> None:
    bad = {"disposition": "CALENDLY", "agentCall": {"callDuration": -1}}
    endpoint = rig.endpoint(lambda e, r: Reply(200, bad))
    wf = rig.workflow(rig.agent(endpoint))
    execution = rig.start(wf)
    rig.run()

    assert len(endpoint.received) == 1
    assert rig.step(wf, execution).disposition == "COULD_NOT_CONNECT"
    [failed] = [e for e in rig.events(wf, execution) if e.kind == "dispatch_failed"]
    assert "agentCall.callDuration" in failed.data["reason"]


def test_an_unreachable_endpoint_is_retried_then_fails(rig: Rig) -> None:
    closed = rig.endpoint(lambda e, r: Reply(200))
    agent_id = rig.agent(closed, retry={"maxAttempts": 3})
    closed.close()  # nothing listens there now
    wf = rig.workflow(agent_id)
    execution = rig.start(wf)
    rig.run()

    step = rig.step(wf, execution)
    assert (step.status, step.disposition) == ("FAILED", "COULD_NOT_CONNECT")
    [failed] = [e for e in rig.events(wf, execution) if e.kind == "dispatch_failed"]
    assert "ConnectError" in failed.data["reason"]


# -- (e) a slow agent --------------------------------------------------------------------------


def test_a_slow_agent_does_not_hold_up_another(rig: Rig) -> None:
    def slow_answer(endpoint: Endpoint, received: Received) -> Reply:
        assert endpoint.gate.wait(WAIT)
        return Reply(200, endpoint.place(received))

    slow = rig.endpoint(slow_answer)
    fast = rig.endpoint(lambda e, r: Reply(200, e.place(r, "NO_ANSWER")))
    slow_agent = rig.agent(slow, maxConcurrent=2, timeoutSecs=60)
    slow_wf = rig.workflow(slow_agent)
    fast_wf = rig.workflow(rig.agent(fast))
    slow_runs = [rig.start(slow_wf, f"+1212555{n:04d}") for n in range(3)]
    fast_runs = [rig.start(fast_wf, f"+1212666{n:04d}") for n in range(8)]

    engine = rig.services.engine
    for _ in range(100):
        engine.tick()
        assert engine.dispatcher.wait_idle(WAIT, ignoring=frozenset({slow_agent}))
        engine.tick()
        if all(rig.status(fast_wf, e) == "COMPLETED" for e in fast_runs):
            break
    # Every fast call came back while the slow endpoint held its two.
    assert [rig.step(fast_wf, e).disposition for e in fast_runs] == ["NO_ANSWER"] * 8
    slow.wait(lambda: slow.in_flight == 2)
    assert [rig.status(slow_wf, e) for e in slow_runs] == ["RUNNING"] * 3
    assert len(slow.received) == 2  # its bound: the third waits unsent

    slow.gate.set()
    rig.run()
    assert [rig.step(slow_wf, e).disposition for e in slow_runs] == ["CALENDLY"] * 3
    assert slow.most_in_flight == 2
    assert sorted(slow.placed.values()) == [1, 1, 1]
    assert len(slow.received) == 3


# -- (f) forged, replayed and stale signatures on the callback ----------------------------------


def test_forged_replayed_and_stale_reports_are_refused(rig: Rig) -> None:
    endpoint = rig.endpoint(lambda e, r: Reply(202, {"callId": "prov-7"}))
    wf = rig.workflow(rig.agent(endpoint))
    execution = rig.start(wf)
    rig.dispatch_now()
    endpoint.wait(lambda: len(endpoint.received) == 1)
    [received] = endpoint.received
    callback = received.dispatch["callbackUrl"]
    body = json.dumps(outcome("CALENDLY"))

    def signed(secret: str, at: datetime, message_id: str | None = None) -> dict[str, str]:
        message_id = message_id or f"msg_{uuid.uuid4().hex}"
        return {
            "Content-Type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Webhook(secret).sign(message_id, at, body),
        }

    def send(headers: dict[str, str], content: str = body) -> httpx.Response:
        return httpx.post(callback, content=content, headers=headers, timeout=WAIT)

    now = datetime.now(UTC)
    forged = send(signed(new_secret(), now))
    assert forged.status_code == 401, forged.text
    assert forged.json()["field"] == "webhook-signature"
    tampered = send(signed(endpoint.secret, now), body.replace("CALENDLY", "DNC"))
    assert tampered.status_code == 401
    stale = send(signed(endpoint.secret, now - timedelta(minutes=6)))
    assert stale.status_code == 401
    assert "old" in stale.json()["message"]
    early = send(signed(endpoint.secret, now + timedelta(minutes=6)))
    assert early.status_code == 401
    partial = signed(endpoint.secret, now)
    del partial["webhook-id"]
    assert send(partial).status_code == 401
    # None of these touched the call.
    assert rig.services.agent_calls.find(received.dispatch["callId"]).status == "accepted"

    good = signed(endpoint.secret, now, "msg_once")
    taken = send(good)
    assert (taken.status_code, taken.json()["applied"]) == (200, True)
    replay = send(good)
    assert replay.status_code == 409, replay.text
    assert replay.json()["field"] == "webhook-id"
    rig.run()
    assert rig.step(wf, execution).disposition == "CALENDLY"


# -- (g) the agent verifies our signature as the docs say --------------------------------------


def test_the_endpoint_verifies_dispatches_as_the_docs_say(rig: Rig) -> None:
    endpoint = rig.endpoint(lambda e, r: Reply(200, e.place(r)))
    wf = rig.workflow(rig.agent(endpoint))
    rig.start(wf)
    rig.run()
    [received] = endpoint.received
    assert endpoint.secret.startswith("whsec_")  # generated, returned in the agent's config
    verify_dispatch = endpoint.code["verify_dispatch"]
    verify_by_hand = endpoint.code["verify_by_hand"]
    # Both of the docs' ways accept our dispatch and give back its body ...
    assert verify_dispatch(received.headers, received.body) == received.dispatch
    assert verify_by_hand(endpoint.secret, received.headers, received.body)
    # ... and refuse it changed, under another secret, or without a signature.
    changed = received.body.replace(b'"CALL"', b'"TEXT"')
    with pytest.raises(WebhookVerificationError):
        verify_dispatch(received.headers, changed)
    assert not verify_by_hand(endpoint.secret, received.headers, changed)
    other = new_secret()
    with pytest.raises(WebhookVerificationError):
        customer_code(other)["verify_dispatch"](received.headers, received.body)
    assert not verify_by_hand(other, received.headers, received.body)
    unsigned = {k: v for k, v in received.headers.items() if k != "webhook-signature"}
    with pytest.raises(WebhookVerificationError):
        verify_dispatch(unsigned, received.body)


# -- the agent alone: how each answer is read --------------------------------------------------


def request_to(url: str, **config: Any) -> DispatchRequest:
    return DispatchRequest(
        idempotency_key="exec-1:step-1:1",
        organization_id="org",
        execution_id="exec-1",
        step_execution_id="step-1",
        agent_id="agent-1",
        agent_config={"url": url, "secret": new_secret(), **config},
        channel=Channel.CALL,
        phone="+12125550123",
        message=None,
        leave_voicemail=True,
        variables={},
        sequence=1,
        now=MONDAY_10_NY,
        call_id="call-1",
        callback_url="http://127.0.0.1:1/api/v1/agent-calls/call-1/result",
    )


@pytest.fixture
def agent() -> Iterator[WebhookAgent]:
    made = WebhookAgent()
    yield made
    made.close()


@pytest.fixture
def endpoints() -> Iterator[Callable[[Reply], Endpoint]]:
    made: list[Endpoint] = []

    def endpoint(reply: Reply) -> Endpoint:
        server = Endpoint(lambda e, r: reply)
        made.append(server)
        return server

    yield endpoint
    for server in made:
        server.close()


def ask(agent: WebhookAgent, endpoint: Endpoint, **config: Any) -> Any:
    request = request_to(endpoint.url, **config)
    endpoint.use_secret(request.agent_config["secret"])
    return agent.dispatch(request)


@pytest.mark.parametrize(
    ("status", "body", "provider_call_id"),
    [
        (202, b"", "call-1"),
        (202, {"callId": "theirs"}, "theirs"),
        (200, {"id": "theirs", "status": "queued"}, "theirs"),
        (204, None, "call-1"),
    ],
)
def test_an_answer_without_a_disposition_is_accepted(
    agent: WebhookAgent,
    endpoints: Callable[[Reply], Endpoint],
    status: int,
    body: Any,
    provider_call_id: str,
) -> None:
    receipt = ask(agent, endpoints(Reply(status, body)))
    assert receipt.result is None
    assert receipt.provider_call_id == provider_call_id


def test_an_answer_with_a_disposition_is_the_outcome(
    agent: WebhookAgent, endpoints: Callable[[Reply], Endpoint]
) -> None:
    body = {**outcome("LEFT_VOICEMAIL"), "callId": "theirs", "reply": None}
    receipt = ask(agent, endpoints(Reply(200, body)))
    assert receipt.provider_call_id == "theirs"
    assert receipt.result is not None
    assert receipt.result.disposition is Disposition.LEFT_VOICEMAIL
    assert receipt.result.call.recording_url == body["agentCall"]["recordingUrl"]
    assert receipt.result.call.call_duration == 42


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_statuses(
    agent: WebhookAgent, endpoints: Callable[[Reply], Endpoint], status: int
) -> None:
    with pytest.raises(AgentError, match=f"HTTP {status}") as raised:
        ask(agent, endpoints(Reply(status, {"error": "later"})))
    assert raised.value.transient


@pytest.mark.parametrize("status", [301, 400, 401, 403, 404, 409, 410, 422])
def test_permanent_statuses(
    agent: WebhookAgent, endpoints: Callable[[Reply], Endpoint], status: int
) -> None:
    with pytest.raises(AgentError, match=f"HTTP {status}") as raised:
        ask(agent, endpoints(Reply(status, {"error": "no"})))
    assert not raised.value.transient


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"<html>ok</html>", "not JSON"),
        (b"[1, 2]", "must be a JSON object"),
        ({"disposition": "MAYBE"}, "disposition"),
        ({"disposition": "CALENDLY", "agentCall": "x"}, "agentCall"),
        ({"disposition": "CALENDLY", "agentCall": {"callStartedAt": "yesterday"}}, "callStarted"),
        ({"disposition": "CALENDLY", "surprise": 1}, "surprise"),
        ({"disposition": "CALENDLY", "callId": 7}, "callId"),
    ],
)
def test_a_malformed_2xx_is_permanent_and_named(
    agent: WebhookAgent, endpoints: Callable[[Reply], Endpoint], body: Any, problem: str
) -> None:
    with pytest.raises(AgentError, match=r"malformed|not JSON|JSON object") as raised:
        ask(agent, endpoints(Reply(200, body)))
    assert problem in str(raised.value)
    assert not raised.value.transient


def test_a_timeout_is_transient(
    agent: WebhookAgent, endpoints: Callable[[Reply], Endpoint]
) -> None:
    held = Endpoint(lambda e, r: Reply(200) if e.gate.wait(WAIT) else Reply(500))
    try:
        started = time.monotonic()
        with pytest.raises(AgentError, match=r"no answer within 0\.3s") as raised:
            ask(agent, held, timeoutSecs=0.3)
        assert raised.value.transient
        assert time.monotonic() - started < 10
    finally:
        held.close()


def test_a_refused_connection_is_transient(agent: WebhookAgent) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(AgentError, match="ConnectError") as raised:
        agent.dispatch(request_to(f"http://127.0.0.1:{port}/dispatch"))
    assert raised.value.transient


@pytest.mark.parametrize(
    "config",
    [{"url": "ftp://example.com/x"}, {"url": None}, {"secret": None}, {"secret": ""}],
)
def test_an_unusable_config_is_permanent(agent: WebhookAgent, config: dict[str, Any]) -> None:
    request = request_to("http://127.0.0.1:1/x")
    broken = {**request.agent_config, **config}
    with pytest.raises(AgentError) as raised:
        agent.dispatch(
            DispatchRequest(**{**_fields(request), "agent_config": broken})  # type: ignore[arg-type]
        )
    assert not raised.value.transient


def _fields(request: DispatchRequest) -> dict[str, Any]:
    return {name: getattr(request, name) for name in DispatchRequest.__dataclass_fields__}


# -- config validation ---------------------------------------------------------------------------


def webhook(services: Services, org: str, **config: Any) -> Any:
    return services.agents.create(
        org, {"name": "w", "channel": "CALL", "provider": "webhook", "config": config}
    )


def problems_of(call: Callable[[], Any]) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as raised:
        call()
    return {p.field: p.message for p in raised.value.problems}


def test_a_webhook_agents_config_is_checked(services: Services, org_key: tuple[str, str]) -> None:
    org, _ = org_key
    assert "config.url" in problems_of(lambda: webhook(services, org))
    assert "config.url" in problems_of(lambda: webhook(services, org, url="ftp://x.example/"))
    assert "config.url" in problems_of(lambda: webhook(services, org, url="https://"))
    url = "https://agents.example.com/dispatch"
    for secret in ("s3cr3t", "whsec_", "whsec_!!!!", "whsec_" + "QUFB" * 4):  # 12 bytes: short
        assert "config.secret" in problems_of(
            lambda s=secret: webhook(services, org, url=url, secret=s)
        )
    for timeout in (0, -1, 121, "10", True):
        found = problems_of(lambda t=timeout: webhook(services, org, url=url, timeoutSecs=t))
        assert "config.timeoutSecs" in found
    for rate in (0, -2, "5", 10_001):
        found = problems_of(lambda r=rate: webhook(services, org, url=url, dispatchesPerSecond=r))
        assert "config.dispatchesPerSecond" in found
    assert "config.maxConcurrent" in problems_of(
        lambda: webhook(services, org, url=url, maxConcurrent=0)
    )
    found = problems_of(
        lambda: webhook(
            services,
            org,
            url=url,
            retry={"maxAttempts": 11, "initialBackoffSecs": 30, "maxBackoffSecs": 10, "x": 1},
        )
    )
    assert {
        "config.retry.maxAttempts",
        "config.retry.maxBackoffSecs",
        "config.retry.x",
    } <= found.keys()
    assert "config.retry" in problems_of(lambda: webhook(services, org, url=url, retry=[]))

    made = webhook(
        services,
        org,
        url=url,
        timeoutSecs=120,
        retry={"maxAttempts": 10, "initialBackoffSecs": 0.5, "maxBackoffSecs": 60},
    )
    assert made.config["retry"]["maxAttempts"] == 10
    assert made.config["secret"].startswith("whsec_")  # generated
    given = new_secret()
    assert webhook(services, org, url=url, secret=given).config["secret"] == given


def test_an_update_keeps_or_replaces_the_secret(
    services: Services, org_key: tuple[str, str]
) -> None:
    org, _ = org_key
    made = webhook(services, org, url="https://a.example.com/d")
    secret = made.config["secret"]
    moved = services.agents.update(org, made.id, {"config": {"url": "https://b.example.com/d"}})
    assert moved.config == {"url": "https://b.example.com/d", "secret": secret}
    rotated = new_secret()
    updated = services.agents.update(
        org, made.id, {"config": {"url": "https://b.example.com/d", "secret": rotated}}
    )
    assert updated.config["secret"] == rotated
    assert "config.url" in problems_of(
        lambda: services.agents.update(org, made.id, {"config": {"url": "mailto:x@example.com"}})
    )
    assert services.agents.get(org, made.id).config["secret"] == rotated
    # A simulator agent turned into a webhook agent needs a URL, and gets a secret.
    sim = services.agents.create(org, {"name": "s", "channel": "CALL"})
    assert "config.url" in problems_of(
        lambda: services.agents.update(org, sim.id, {"provider": "webhook"})
    )
    turned = services.agents.update(
        org, sim.id, {"provider": "webhook", "config": {"url": "https://c.example.com/d"}}
    )
    assert turned.config["secret"].startswith("whsec_")


def test_the_api_returns_the_generated_secret(client: Any) -> None:
    answer = client.post(
        "/api/v1/agents",
        json={
            "name": "Voice agent",
            "channel": "CALL",
            "provider": "webhook",
            "config": {"url": "https://agents.example.com/reachflow/dispatch"},
        },
    )
    assert answer.status_code == 201, answer.text
    secret = answer.json()["config"]["secret"]
    assert secret.startswith("whsec_")  # shown once, at creation ...
    agent_id = answer.json()["id"]
    shown = client.get(f"/api/v1/agents/{agent_id}").json()["config"]
    assert shown["secret"] == "****" + secret[-4:]  # ... masked after
    # A config read back and sent again keeps the secret.
    put = client.put(f"/api/v1/agents/{agent_id}", json={"config": {**shown, "timeoutSecs": 5}})
    assert put.status_code == 200, put.text
    kept = client.app.state.services.agents.list(answer.json()["organizationId"])
    assert [a.config["secret"] for a in kept if a.id == agent_id] == [secret]
    refused = client.post(
        "/api/v1/agents",
        json={"name": "v", "channel": "CALL", "provider": "webhook", "config": {"url": "x"}},
    )
    assert refused.status_code == 400
    assert "config.url" in refused.text
