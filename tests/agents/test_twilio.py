"""Twilio Messaging for TEXT steps, against a loopback server speaking Twilio's Messages API,
with our API on real HTTP on loopback receiving the status and inbound webhooks signed as
Twilio signs them (``RequestValidator.compute_signature`` with the account's auth token), on
SQLite and PostgreSQL.

The engine is driven by the test under a virtual clock (``run_until_idle`` up to now: no
report timeout is reached); the webhooks arrive at the real server in between.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import uvicorn
from twilio.request_validator import RequestValidator

from reachflow.agents.port import AgentError, DispatchRequest
from reachflow.agents.twilio import TwilioAgent, status_result
from reachflow.api import create_app
from reachflow.bootstrap import Services, bootstrap
from reachflow.domain.enums import Channel
from reachflow.domain.errors import ValidationFailed
from reachflow.runtime.clock import VirtualClock
from reachflow.settings import Settings
from tests.conftest import MONDAY_10_NY

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "twilio-auth-token-0123456789abcdef"
API_KEY_SID = "SK" + "2" * 32
API_KEY_SECRET = "api-key-secret"
SERVICE_SID = "MG" + "3" * 32
SENDER = "+14155550100"

DELIVERED = "+12125550101"
UNREACHABLE = "+12125550102"  # failed, 30003: the handset is off
GONE = "+12125550103"  # undelivered, 30005: no such handset
INVALID = "+12125550104"  # the REST API refuses it: 21211
FLAKY = "+12125550105"  # the REST API answers 503 once
STOPPER = "+12125550106"  # delivered, then replies STOP
UNSUBSCRIBED = "+12125550107"  # the REST API refuses it: 21610 (replied STOP to the sender)
ALL = (DELIVERED, UNREACHABLE, GONE, INVALID, FLAKY, STOPPER, UNSUBSCRIBED)


# -- a loopback server speaking Twilio's Messages API -----------------------------------------


@dataclass
class Message:
    sid: str
    account: str
    to: str
    body: str
    sender: str | None
    service: str | None
    status_callback: str


@dataclass
class FakeTwilio:
    """``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` with basic auth, answering as
    Twilio does; then the webhooks Twilio would send, signed with the auth token."""

    username: str
    password: str
    auth_token: str = AUTH_TOKEN
    url: str = ""
    messages: list[Message] = field(default_factory=list)
    requests: Counter[str] = field(default_factory=Counter)
    #: Numbers the API refuses: (HTTP status, Twilio error code).
    refuse: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: Numbers the API answers 503 the first time.
    fail_once: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def message_to(self, phone: str) -> Message:
        found = [m for m in self.messages if m.to == phone]
        assert len(found) == 1, (phone, found)
        return found[0]

    def answer(self, path: str, authorization: str, form: dict[str, str]) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if (
            len(parts) != 4
            or parts[:2] != ["2010-04-01", "Accounts"]
            or parts[3] != ("Messages.json")
        ):
            return 404, _error(20404, "The requested resource was not found", 404)
        expected = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        if authorization != f"Basic {expected}":
            return 401, _error(20003, "Authenticate", 401)
        to = form.get("To", "")
        with self.lock:
            self.requests[to] += 1
            if to in self.fail_once and self.requests[to] == 1:
                return 503, _error(20500, "Service unavailable", 503)
            if to in self.refuse:
                status, code = self.refuse[to]
                return status, _error(code, f"The 'To' number {to} is refused", status)
            message = Message(
                sid="SM" + uuid.uuid4().hex,
                account=parts[2],
                to=to,
                body=form.get("Body", ""),
                sender=form.get("From"),
                service=form.get("MessagingServiceSid"),
                status_callback=form["StatusCallback"],
            )
            self.messages.append(message)
        return 201, _message_json(message)

    def post_status(
        self,
        message: Message,
        status: str,
        *,
        error_code: int | None = None,
        signature: str | None = None,
        to_url: str | None = None,
    ) -> httpx.Response:
        """A status callback as Twilio posts it to the message's ``StatusCallback``."""
        params = {
            "AccountSid": message.account,
            "ApiVersion": "2010-04-01",
            "From": message.sender or SENDER,
            "MessageSid": message.sid,
            "MessageStatus": status,
            "SmsSid": message.sid,
            "SmsStatus": status,
            "To": message.to,
        }
        if message.service:
            params["MessagingServiceSid"] = message.service
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        return self._post(message.status_callback, params, signature, to_url)

    def post_inbound(
        self, url: str, sender: str, body: str, *, signature: str | None = None
    ) -> httpx.Response:
        """A contact's text to the agent's number, as Twilio posts it to the number's
        incoming-message webhook."""
        sid = "SM" + uuid.uuid4().hex
        params = {
            "ToCountry": "US",
            "ToState": "CA",
            "SmsMessageSid": sid,
            "NumMedia": "0",
            "ToCity": "SAN FRANCISCO",
            "FromZip": "10001",
            "SmsSid": sid,
            "FromState": "NY",
            "SmsStatus": "received",
            "FromCity": "NEW YORK",
            "Body": body,
            "FromCountry": "US",
            "To": SENDER,
            "ToZip": "94105",
            "NumSegments": "1",
            "MessageSid": sid,
            "AccountSid": ACCOUNT_SID,
            "From": sender,
            "ApiVersion": "2010-04-01",
        }
        return self._post(url, params, signature)

    def _post(
        self,
        url: str,
        params: dict[str, str],
        signature: str | None,
        to_url: str | None = None,
    ) -> httpx.Response:
        """Signed for ``url``; sent there, or to ``to_url``."""
        signed = RequestValidator(self.auth_token).compute_signature(url, params)
        return httpx.post(
            to_url or url,
            data=params,
            headers={"X-Twilio-Signature": signature or signed, "User-Agent": "TwilioProxy/1.1"},
            timeout=10,
        )


def _error(code: int, message: str, status: int) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def _message_json(m: Message) -> dict[str, Any]:
    now = "Mon, 09 Mar 2026 14:00:00 +0000"
    uri = f"/2010-04-01/Accounts/{m.account}/Messages/{m.sid}"
    return {
        "account_sid": m.account,
        "api_version": "2010-04-01",
        "body": m.body,
        "date_created": now,
        "date_sent": None,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": m.sender,
        "messaging_service_sid": m.service,
        "num_media": "0",
        "num_segments": "1",
        "price": None,
        "price_unit": "USD",
        "sid": m.sid,
        "status": "queued",
        "subresource_uris": {"media": f"{uri}/Media.json"},
        "to": m.to,
        "uri": f"{uri}.json",
    }


@contextmanager
def serving_fake(fake: FakeTwilio) -> Iterator[FakeTwilio]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = dict(parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True))
            status, body = fake.answer(
                urlsplit(self.path).path, self.headers.get("Authorization", ""), form
            )
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


# -- our API on loopback ----------------------------------------------------------------------


@dataclass
class Env:
    services: Services
    clock: VirtualClock
    fake: FakeTwilio
    base: str
    org: str

    def settle(self, seconds: float = 0) -> None:
        """Do all the engine's work due up to ``seconds`` from now."""
        engine = self.services.engine
        engine.run_until_idle(self.clock, until=self.clock.now() + timedelta(seconds=seconds))

    def execution(self, workflow_id: str, execution_id: str) -> tuple[str, str | None, Any]:
        view = self.services.executions.get(self.org, workflow_id, execution_id)
        step = view.steps[-1]
        return view.record.status, step.disposition, step.agent_call


@contextmanager
def environment(db_url: str, fake: FakeTwilio) -> Iterator[Env]:
    with serving_fake(fake):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        clock = VirtualClock(MONDAY_10_NY)
        services = bootstrap(
            Settings(
                database_url=db_url,
                public_url=base,
                twilio_base_url=fake.url,
                rate_limit_enabled=False,
            ),
            clock=clock,
            migrate=False,
        )
        server = uvicorn.Server(
            uvicorn.Config(create_app(services), log_config=None, lifespan="off")
        )
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive(), "uvicorn stopped"
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        try:
            org, _ = services.accounts.create_api_key("acme")
            yield Env(services, clock, fake, base, org)
        finally:
            server.should_exit = True
            thread.join(10)
            sock.close()
            services.close()


def twilio_agent(env: Env, **config: Any) -> str:
    return env.services.agents.create(
        env.org,
        {
            "name": "Twilio texter",
            "channel": "TEXT",
            "provider": "twilio",
            "config": {"accountSid": ACCOUNT_SID, "authToken": AUTH_TOKEN, **config},
        },
    ).id


def text_workflow(env: Env, agent_id: str) -> str:
    return env.services.workflows.create(
        env.org,
        {
            "name": "one text",
            "active": True,
            "timezone": "America/New_York",
            "definition": {
                "steps": [
                    {
                        "type": "TEXT",
                        "order": 1,
                        "agentId": agent_id,
                        "delayInSecs": 0,
                        "initialMessage": "Hi {{firstName}}, shall we talk?",
                        "needsTCPACompliance": False,
                    }
                ]
            },
        },
    ).id


def start(env: Env, workflow_id: str, phone: str) -> str:
    body = {"customerLeadId": phone, "primaryPhone": phone, "variables": {"firstName": "Ann"}}
    return env.services.executions.create(env.org, workflow_id, body).record.id


def error_code(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["success"] is False
    code: str = body["code"]
    return code


# -- the tests --------------------------------------------------------------------------------


def test_texts_go_out_through_twilio_and_its_callbacks_end_the_steps(db_url: str) -> None:
    fake = FakeTwilio(username=ACCOUNT_SID, password=AUTH_TOKEN)
    fake.refuse = {INVALID: (400, 21211), UNSUBSCRIBED: (400, 21610)}
    fake.fail_once = {FLAKY}
    with environment(db_url, fake) as env:
        agent = twilio_agent(env, **{"from": SENDER})
        workflow = text_workflow(env, agent)
        executions = {phone: start(env, workflow, phone) for phone in ALL}

        env.settle()  # every text is sent, but FLAKY's (503: retried in 5-6 s)
        assert {m.to for m in fake.messages} == set(ALL) - {INVALID, UNSUBSCRIBED, FLAKY}
        env.settle(30)
        assert fake.requests[FLAKY] == 2
        assert {m.to for m in fake.messages} == set(ALL) - {INVALID, UNSUBSCRIBED}
        sent = fake.message_to(DELIVERED)
        assert (sent.account, sent.sender, sent.service) == (ACCOUNT_SID, SENDER, None)
        assert sent.body == "Hi Ann, shall we talk?"
        assert sent.status_callback.startswith(f"{env.base}/api/v1/providers/twilio/status?callId=")

        # Accepted, not finished: the steps wait for Twilio's callbacks.
        status, disposition, _ = env.execution(workflow, executions[DELIVERED])
        assert (status, disposition) == ("RUNNING", None)
        # Refused numbers end at once.
        assert env.execution(workflow, executions[INVALID])[:2] == ("COMPLETED", "BAD_NUMBER")
        unsubscribed = env.execution(workflow, executions[UNSUBSCRIBED])
        assert unsubscribed[:2] == ("COMPLETED", "COULD_NOT_CONNECT")
        assert env.services.contacts.check(env.org, UNSUBSCRIBED)["channels"] == ["TEXT"]

        for phone in (DELIVERED, FLAKY, STOPPER):
            message = fake.message_to(phone)
            for step in ("sent", "delivered"):
                response = fake.post_status(message, step)
                assert response.status_code == 200, response.text
                assert response.json()["final"] is (step == "delivered")
        failed = fake.post_status(fake.message_to(UNREACHABLE), "failed", error_code=30003)
        assert failed.json()["disposition"] == "COULD_NOT_CONNECT"
        gone = fake.post_status(fake.message_to(GONE), "undelivered", error_code=30005)
        assert gone.json()["disposition"] == "BAD_NUMBER"
        # Twilio may post a status twice: taken once.
        again = fake.post_status(fake.message_to(DELIVERED), "delivered")
        assert again.status_code == 200
        assert again.json()["applied"] is False

        env.settle()
        for phone in (DELIVERED, FLAKY, STOPPER):
            status, disposition, call = env.execution(workflow, executions[phone])
            assert (status, disposition) == ("COMPLETED", "ENDED"), phone
            assert call["id"] == fake.message_to(phone).sid
            assert call["status"] == "delivered"
            assert call["callDuration"] == 0
        assert env.execution(workflow, executions[UNREACHABLE])[:2] == (
            "COMPLETED",
            "COULD_NOT_CONNECT",
        )
        assert env.execution(workflow, executions[GONE])[:2] == ("COMPLETED", "BAD_NUMBER")
        with env.services.db.read() as conn:
            call = env.services.store.agent_calls.find_by_provider(
                conn, "twilio", fake.message_to(DELIVERED).sid
            )
        assert call is not None
        assert call.status == "reported"

        # The contact answers STOP: the number is suppressed for texts, as an inbound text is.
        inbound = f"{env.base}/api/v1/providers/twilio/inbound/{agent}"
        assert env.services.contacts.check(env.org, STOPPER)["suppressed"] is False
        forged = fake.post_inbound(inbound, STOPPER, "STOP", signature="bm90IFR3aWxpbw==")
        assert error_code(forged, 401) == "UNAUTHORIZED"
        assert env.services.contacts.check(env.org, STOPPER)["suppressed"] is False
        chat = fake.post_inbound(inbound, DELIVERED, "Sounds good, call me tomorrow")
        assert chat.status_code == 200
        stop = fake.post_inbound(inbound, STOPPER, "Stop")
        assert stop.status_code == 200
        assert stop.headers["content-type"].startswith("text/xml")
        assert stop.text == '<?xml version="1.0" encoding="UTF-8"?><Response/>'
        assert env.services.contacts.check(env.org, STOPPER)["channels"] == ["TEXT"]
        assert env.services.contacts.check(env.org, DELIVERED)["suppressed"] is False


def test_a_forged_or_misdirected_status_callback_is_refused(db_url: str) -> None:
    fake = FakeTwilio(username=ACCOUNT_SID, password=AUTH_TOKEN)
    with environment(db_url, fake) as env:
        workflow = text_workflow(env, twilio_agent(env, **{"from": SENDER}))
        execution = start(env, workflow, DELIVERED)
        env.settle()
        message = fake.message_to(DELIVERED)

        forged = fake.post_status(message, "delivered", signature="bm90IFR3aWxpbw==")
        assert error_code(forged, 401) == "UNAUTHORIZED"
        other_token = FakeTwilio(username="", password="", auth_token="another account's token")
        assert error_code(other_token.post_status(message, "delivered"), 401) == "UNAUTHORIZED"
        unsigned = httpx.post(message.status_callback, data={"MessageStatus": "delivered"})
        assert error_code(unsigned, 401) == "UNAUTHORIZED"
        # The signature covers the URL: signed for one, sent to another, it is refused.
        moved = fake.post_status(message, "delivered", to_url=message.status_callback + "&x=1")
        assert error_code(moved, 401) == "UNAUTHORIZED"
        unknown = f"{env.base}/api/v1/providers/twilio/status?callId={uuid.uuid4()}"
        stray = Message(**{**message.__dict__, "status_callback": unknown})
        assert error_code(fake.post_status(stray, "delivered"), 404) == "NOT_FOUND"
        as_json = httpx.post(message.status_callback, json={"MessageStatus": "delivered"})
        assert error_code(as_json, 400) == "VALIDATION_ERROR"

        env.settle()
        assert env.execution(workflow, execution)[:2] == ("RUNNING", None)
        assert fake.post_status(message, "delivered").status_code == 200
        env.settle()
        assert env.execution(workflow, execution)[:2] == ("COMPLETED", "ENDED")


def test_an_api_key_and_a_messaging_service_send_and_sent_can_be_final(db_url: str) -> None:
    fake = FakeTwilio(username=API_KEY_SID, password=API_KEY_SECRET)
    with environment(db_url, fake) as env:
        agent = twilio_agent(
            env,
            apiKeySid=API_KEY_SID,
            apiKeySecret=API_KEY_SECRET,
            messagingServiceSid=SERVICE_SID,
            successOn="sent",
        )
        workflow = text_workflow(env, agent)
        execution = start(env, workflow, DELIVERED)
        env.settle()
        message = fake.message_to(DELIVERED)
        assert (message.account, message.sender, message.service) == (
            ACCOUNT_SID,
            None,
            SERVICE_SID,
        )
        # Webhooks are signed with the account's auth token, whatever sent the message.
        assert fake.post_status(message, "sent").json()["disposition"] == "ENDED"
        env.settle()
        assert env.execution(workflow, execution)[:2] == ("COMPLETED", "ENDED")


def test_twilio_errors_that_are_not_the_numbers_fault(db_url: str) -> None:
    """Wrong credentials are not retried; an unreachable Twilio is, then fails."""
    fake = FakeTwilio(username=ACCOUNT_SID, password="the right token")
    with environment(db_url, fake) as env:
        workflow = text_workflow(env, twilio_agent(env, **{"from": SENDER}))
        execution = start(env, workflow, DELIVERED)
        env.settle()
        assert fake.requests[DELIVERED] == 0  # 401 before the form is read
        assert env.execution(workflow, execution)[:2] == ("COMPLETED", "COULD_NOT_CONNECT")

    agent = TwilioAgent(base_url="http://127.0.0.1:9")  # nothing listens there
    request = DispatchRequest(
        idempotency_key="k",
        organization_id="o",
        execution_id="e",
        step_execution_id="s",
        agent_id="a",
        agent_config={"accountSid": ACCOUNT_SID, "authToken": AUTH_TOKEN, "from": SENDER},
        channel=Channel.TEXT,
        phone=DELIVERED,
        message="hello",
        leave_voicemail=False,
        variables={},
        sequence=1,
        now=MONDAY_10_NY,
        call_id="c",
        callback_url="https://reach.example.com/api/v1/agent-calls/c/result",
    )
    with pytest.raises(AgentError, match="Twilio unreachable") as raised:
        agent.dispatch(request)
    assert raised.value.transient is True


def test_the_status_table() -> None:
    def outcome(status: str, code: int | None = None, **kw: Any) -> tuple[str, str | None] | None:
        form = {"MessageSid": "SM1", "MessageStatus": status}
        if code is not None:
            form["ErrorCode"] = str(code)
        result = status_result(form, sent_at=MONDAY_10_NY, now=MONDAY_10_NY, **kw)
        return None if result is None else (result.disposition.value, result.reply)

    for status in ("queued", "accepted", "scheduled", "sending", "sent", "receiving"):
        assert outcome(status) is None, status
    assert outcome("sent", success_on="sent") == ("ENDED", None)
    assert outcome("delivered") == ("ENDED", None)
    assert outcome("read") == ("ENDED", None)
    assert outcome("failed", 30003) == ("COULD_NOT_CONNECT", None)
    assert outcome("undelivered", 30007) == ("COULD_NOT_CONNECT", None)
    assert outcome("canceled") == ("COULD_NOT_CONNECT", None)
    for code in (21211, 21614, 30005, 30006):
        assert outcome("undelivered", code) == ("BAD_NUMBER", None), code
    assert outcome("failed", 21610) == ("COULD_NOT_CONNECT", "STOP")


def test_a_twilio_agent_needs_its_credentials_and_a_sender(db_url: str) -> None:
    services = bootstrap(Settings(database_url=db_url), migrate=False)
    try:
        org, _ = services.accounts.create_api_key("acme")
        body: dict[str, Any] = {"name": "t", "channel": "CALL", "provider": "twilio", "config": {}}
        with pytest.raises(ValidationFailed) as refused:
            services.agents.create(org, body)
        fields = {p.field for p in refused.value.problems}
        assert fields == {"channel", "config.accountSid", "config.authToken", "config.from"}
        body = {
            "name": "t",
            "channel": "TEXT",
            "provider": "twilio",
            "config": {
                "accountSid": "AC123",
                "authToken": "",
                "apiKeySid": API_KEY_SID,
                "messagingServiceSid": "MGxyz",
                "from": "not a sender!",
                "successOn": "queued",
            },
        }
        with pytest.raises(ValidationFailed) as refused:
            services.agents.create(org, body)
        fields = {p.field for p in refused.value.problems}
        assert fields == {
            "config.accountSid",
            "config.authToken",
            "config.apiKeySecret",
            "config.messagingServiceSid",
            "config.from",
            "config.successOn",
        }
        good = {"accountSid": ACCOUNT_SID, "authToken": AUTH_TOKEN, "from": SENDER}
        agent = services.agents.create(org, {**body, "config": good})
        with pytest.raises(ValidationFailed):  # an update is checked against the provider too
            services.agents.update(org, agent.id, {"config": {"accountSid": ACCOUNT_SID}})
        assert services.agents.find(agent.id).organization_id == org
    finally:
        services.close()
