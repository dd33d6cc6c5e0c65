"""Outbound event webhooks on real loopback subscribers, on both databases: every event
delivered at least once, in order per execution, signed (checked with the ``standardwebhooks``
verifier), through a subscriber that is down, then slow, then back; redelivery; disabling;
a slow subscriber never holding the engine."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from reachflow.api import create_app
from reachflow.bootstrap import Services, bootstrap
from reachflow.domain.enums import ExecutionStatus
from reachflow.runtime.clock import VirtualClock
from reachflow.settings import Settings
from reachflow.store.tables import webhook_attempts, webhook_deliveries, webhook_events
from tests.helpers import lead, make_agent, seed_002_workflow

WAIT = 10.0


@dataclass
class Delivery:
    headers: dict[str, str]
    raw: bytes
    body: dict[str, Any]
    verified: bool


@dataclass
class Subscriber:
    """An HTTP subscriber on 127.0.0.1 that records what it gets. ``mode``: ``up`` (200),
    ``slow`` (answers after ``delay`` seconds), ``error`` (500), ``down`` (nothing listens)."""

    secret: str = ""
    mode: str = "up"
    delay: float = 0.0
    received: list[Delivery] = field(default_factory=list)
    lock: threading.Condition = field(default_factory=threading.Condition)
    port: int = 0
    server: ThreadingHTTPServer | None = None

    def __post_init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/events"

    def start(self) -> None:
        subscriber = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    Webhook(subscriber.secret).verify(raw, headers)
                    verified = True
                except WebhookVerificationError:
                    verified = False
                if subscriber.mode == "slow":
                    time.sleep(subscriber.delay)
                status = 500 if subscriber.mode == "error" else 200
                if status == 200:
                    with subscriber.lock:
                        subscriber.received.append(
                            Delivery(headers, raw, json.loads(raw), verified)
                        )
                        subscriber.lock.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                return

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def go_down(self) -> None:
        self.mode = "down"
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def come_up(self, mode: str = "up") -> None:
        if self.server is None:
            self.start()
        self.mode = mode

    def close(self) -> None:
        self.go_down()

    def bodies(self) -> list[dict[str, Any]]:
        with self.lock:
            return [d.body for d in self.received]


@pytest.fixture
def subscriber() -> Iterator[Subscriber]:
    sub = Subscriber()
    yield sub
    sub.close()


def build(db_url: str, clock: VirtualClock, **settings: Any) -> Services:
    return bootstrap(
        Settings(database_url=db_url, **{"webhook_timeout_seconds": 1.0, **settings}),
        clock=clock,
        migrate=False,
    )


@pytest.fixture
def svc(db_url: str, clock: VirtualClock) -> Iterator[Services]:
    services = build(db_url, clock)
    yield services
    services.close()


def api(services: Services) -> tuple[TestClient, str]:
    org, key = services.accounts.create_api_key("acme")
    client = TestClient(create_app(services))
    client.headers["X-API-Key"] = key
    return client, org


def subscribe(client: TestClient, sub: Subscriber, events: list[str] | None = None) -> str:
    answer = client.post("/api/v1/webhooks", json={"url": sub.url, "events": events or ["*"]})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["secret"].startswith("whsec_")
    sub.secret = body["secret"]
    return str(body["id"])


def start_executions(services: Services, org: str, n: int) -> list[str]:
    call = make_agent(services, org, "CALL", defaultDisposition="NO_ANSWER")
    text = make_agent(services, org, "TEXT", defaultDisposition="ENDED")
    wf = services.workflows.create(org, seed_002_workflow(call, text))
    return [
        services.executions.create(
            org, wf.id, lead(f"+1212555{i:04d}", f"lead-{i}", variables={"firstName": "Ann"})
        ).record.id
        for i in range(n)
    ]


EXPECTED_TYPES = [
    "execution.created",
    "execution.started",
    "execution.step.scheduled",
    "execution.step.dispatched",
    "execution.step.completed",
    "execution.step.scheduled",
    "execution.step.dispatched",
    "execution.step.completed",
    "execution.completed",
]


def by_execution(bodies: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each execution's events in arrival order, duplicates (same id) dropped after the first."""
    seen: set[str] = set()
    out: dict[str, list[dict[str, Any]]] = {}
    for body in bodies:
        if body["id"] in seen:
            continue
        seen.add(body["id"])
        out.setdefault(body["data"]["executionId"], []).append(body)
    return out


def test_every_event_is_delivered_signed_and_in_order(
    svc: Services, clock: VirtualClock, subscriber: Subscriber
) -> None:
    client, org = api(svc)
    webhook_id = subscribe(client, subscriber)
    ids = start_executions(svc, org, 3)
    svc.engine.run_until_idle(clock)
    for execution_id in ids:
        assert status_of(svc, execution_id) == "COMPLETED"
    assert all(d.verified for d in subscriber.received)
    events = by_execution(subscriber.bodies())
    assert set(events) == set(ids)
    for execution_id in ids:
        assert [e["type"] for e in events[execution_id]] == EXPECTED_TYPES
        completed = [e for e in events[execution_id] if e["type"] == "execution.step.completed"]
        assert [e["data"]["disposition"] for e in completed] == ["LEFT_VOICEMAIL", "ENDED"]
        assert completed[0]["data"]["agentCall"]["callEndedReason"] == "LEFT_VOICEMAIL"
        assert events[execution_id][-1]["data"]["status"] == "COMPLETED"
    # The webhook-id is the event id; the log has one successful attempt per event.
    assert all(d.headers["webhook-id"] == d.body["id"] for d in subscriber.received)
    log = client.get(f"/api/v1/webhooks/{webhook_id}/deliveries", params={"limit": 200}).json()
    assert len(log["deliveries"]) == len(subscriber.received) == 9 * len(ids)
    assert all(a["ok"] and a["statusCode"] == 200 for a in log["deliveries"])
    assert all(a["latencyMs"] >= 0 and a["attempt"] == 1 for a in log["deliveries"])
    client.close()


def test_a_subscriber_down_then_slow_then_back_gets_every_event_in_order(
    db_url: str, clock: VirtualClock, subscriber: Subscriber
) -> None:
    services = build(
        db_url,
        clock,
        webhook_timeout_seconds=0.3,
        webhook_retry_horizon_seconds=3 * 86400,
        webhook_disable_after_failures=100_000,
    )
    try:
        client, org = api(services)
        webhook_id = subscribe(client, subscriber)
        subscriber.go_down()
        ids = start_executions(services, org, 4)
        # The engine does its work while nobody listens: the executions finish on time.
        services.engine.run_until_idle(clock, until=clock.now() + timedelta(days=1, hours=1))
        for execution_id in ids:
            assert status_of(services, execution_id) == ExecutionStatus.COMPLETED
        assert subscriber.received == []
        # Slow: every answer comes after the timeout, so every attempt fails.
        subscriber.come_up("slow")
        subscriber.delay = 0.6
        services.engine.run_until_idle(clock, until=clock.now() + timedelta(hours=2))
        # Back: every event arrives, in order per execution.
        subscriber.mode = "up"
        services.engine.run_until_idle(clock)
        assert all(d.verified for d in subscriber.received)
        events = by_execution(subscriber.bodies())
        for execution_id in ids:
            assert [e["type"] for e in events[execution_id]] == EXPECTED_TYPES
        # An attempt the slow subscriber finished after we gave up on it came back as a
        # duplicate (same id): at least once; the first arrivals above are in order.
        assert len(subscriber.received) >= 9 * len(ids)
        log = client.get(f"/api/v1/webhooks/{webhook_id}/deliveries", params={"limit": 200})
        attempts = log.json()["deliveries"]
        failed = [a for a in attempts if not a["ok"]]
        assert failed, "the down and slow phases were logged"
        assert {a["error"] is not None for a in failed} == {True}
        assert any("no answer within" in a["error"] for a in failed)
        webhook = client.get(f"/api/v1/webhooks/{webhook_id}").json()
        assert webhook["enabled"] is True
        assert webhook["consecutiveFailures"] == 0
        assert webhook["openDeliveries"] == 0
        client.close()
    finally:
        services.close()


def test_a_hanging_subscriber_never_holds_the_engine(
    db_url: str, clock: VirtualClock, subscriber: Subscriber
) -> None:
    services = build(db_url, clock, webhook_timeout_seconds=10.0)
    try:
        client, org = api(services)
        subscribe(client, subscriber)
        subscriber.come_up("slow")
        subscriber.delay = 6.0
        [execution_id] = start_executions(services, org, 1)
        started = time.monotonic()
        # The engine decides and calls the agent while the deliveries hang at the subscriber.
        for _ in range(5):
            services.engine.tick()
            services.engine.dispatcher.wait_idle()
        assert time.monotonic() - started < 5.0  # never waited for the subscriber's answer
        assert services.engine.webhooks.busy
        assert subscriber.received == []
        assert status_of(services, execution_id) == ExecutionStatus.RUNNING
        with services.db.read() as conn:
            [step] = services.store.executions.steps_of(conn, [execution_id])[execution_id]
        assert step.status == "RUNNING"  # the call went out
        client.close()
    finally:
        services.close()  # abandons the hanging attempts: their leases lapse


def test_redelivery_of_one_event_and_of_a_time_range(
    svc: Services, clock: VirtualClock, subscriber: Subscriber
) -> None:
    client, org = api(svc)
    webhook_id = subscribe(client, subscriber)
    start = clock.now()
    [execution_id] = start_executions(svc, org, 1)
    svc.engine.run_until_idle(clock)
    first = subscriber.bodies()
    assert len(first) == 9
    again = client.post(
        f"/api/v1/webhooks/{webhook_id}/redeliver", json={"eventId": first[3]["id"]}
    )
    assert again.status_code == 202, again.text
    assert again.json()["queued"] == 1
    svc.engine.run_until_idle(clock)
    assert subscriber.bodies()[-1] == first[3]
    assert subscriber.received[-1].headers["webhook-id"] == first[3]["id"]
    ranged = client.post(
        f"/api/v1/webhooks/{webhook_id}/redeliver",
        json={"since": start.isoformat(), "until": (start + timedelta(hours=1)).isoformat()},
    )
    assert ranged.json()["queued"] == 6  # created .. the call's completion, the text scheduled
    svc.engine.run_until_idle(clock)
    assert [b["id"] for b in subscriber.bodies()[-6:]] == [b["id"] for b in first[:6]]
    missing = client.post(f"/api/v1/webhooks/{webhook_id}/redeliver", json={"eventId": "evt_x"})
    assert missing.status_code == 404
    neither = client.post(f"/api/v1/webhooks/{webhook_id}/redeliver", json={})
    assert neither.status_code == 400
    assert execution_id
    client.close()


def test_a_failing_endpoint_is_disabled_and_says_why(
    db_url: str, clock: VirtualClock, subscriber: Subscriber
) -> None:
    services = build(
        db_url,
        clock,
        webhook_disable_after_failures=5,
        webhook_disable_after_seconds=600,
    )
    try:
        client, org = api(services)
        webhook_id = subscribe(client, subscriber)
        subscriber.mode = "error"
        start_executions(services, org, 2)
        services.engine.run_until_idle(clock)
        webhook = client.get(f"/api/v1/webhooks/{webhook_id}").json()
        assert webhook["enabled"] is False
        assert webhook["status"] == "disabled"
        assert "failed delivery attempts in a row" in webhook["disabledReason"]
        assert "HTTP 500" in webhook["disabledReason"]
        assert webhook["openDeliveries"] == 0
        # Disabled: new events are kept for a redelivery, but not sent.
        subscriber.mode = "up"
        start_executions(services, org, 1)
        services.engine.run_until_idle(clock)
        assert subscriber.received == []
        refused = client.post(
            f"/api/v1/webhooks/{webhook_id}/redeliver", json={"since": "2026-01-01T00:00:00Z"}
        )
        assert refused.status_code == 409
        # Enabled again: the streak is cleared, and a redelivery of the range catches up.
        enabled = client.patch(f"/api/v1/webhooks/{webhook_id}", json={"enabled": True}).json()
        assert enabled["enabled"] is True
        assert enabled["consecutiveFailures"] == 0
        assert enabled["disabledReason"] is None
        queued = client.post(
            f"/api/v1/webhooks/{webhook_id}/redeliver", json={"since": "2026-01-01T00:00:00Z"}
        )
        # 9 events each, and the third one's text was deferred (to the next Monday).
        assert queued.json()["queued"] == 28
        services.engine.run_until_idle(clock)
        assert len(by_execution(subscriber.bodies())) == 3
        assert len(subscriber.received) == 28
        client.close()
    finally:
        services.close()


def test_a_subscription_gets_only_its_event_types_and_contact_events(
    svc: Services, clock: VirtualClock, subscriber: Subscriber
) -> None:
    client, org = api(svc)
    subscribe(
        client, subscriber, ["execution.completed", "contact.suppressed", "contact.consented"]
    )
    ids = start_executions(svc, org, 2)
    svc.engine.run_until_idle(clock)
    added = client.post(
        "/api/v1/suppressions", json={"phoneNumber": "+12125559999", "reason": "asked"}
    )
    assert added.status_code == 201
    client.post("/api/v1/consents", json={"phoneNumber": "+12125559998", "channel": "TEXT"})
    svc.engine.run_until_idle(clock)
    types = [b["type"] for b in subscriber.bodies()]
    assert types.count("execution.completed") == len(ids)
    suppressed = [b for b in subscriber.bodies() if b["type"] == "contact.suppressed"]
    assert [(b["data"]["phoneNumber"], b["data"]["channel"]) for b in suppressed] == [
        ("+12125559999", "ALL")
    ]
    assert suppressed[0]["data"]["reason"] == "asked"
    consented = [b for b in subscriber.bodies() if b["type"] == "contact.consented"]
    assert [b["data"]["phoneNumber"] for b in consented] == ["+12125559998"]
    client.close()


def test_a_rotated_secret_signs_beside_the_old_one(
    svc: Services, clock: VirtualClock, subscriber: Subscriber
) -> None:
    client, org = api(svc)
    webhook_id = subscribe(client, subscriber, ["execution.created"])
    old = subscriber.secret
    rotated = client.post(f"/api/v1/webhooks/{webhook_id}/rotate-secret", json={})
    assert rotated.status_code == 200
    new = rotated.json()["secret"]
    assert new != old
    assert new.startswith("whsec_")
    assert client.get(f"/api/v1/webhooks/{webhook_id}").json()["secret"] == f"whsec_...{new[-4:]}"
    subscriber.secret = new
    start_executions(svc, org, 1)
    svc.engine.run_until_idle(clock)
    [delivery] = subscriber.received
    assert delivery.verified
    Webhook(old).verify(delivery.raw, delivery.headers)  # the old one still verifies
    assert len(delivery.headers["webhook-signature"].split()) == 2


def test_subscription_bodies_are_checked(svc: Services) -> None:
    client, _ = api(svc)
    bad = client.post("/api/v1/webhooks", json={"url": "ftp://x", "events": ["execution.nope"]})
    assert bad.status_code == 400
    fields = {e["field"] for e in bad.json()["errors"]}
    assert "events[0]" in fields
    none = client.post("/api/v1/webhooks", json={"url": "https://example.com/h", "events": []})
    assert none.status_code == 400
    assert client.get("/api/v1/webhooks/nope").status_code == 404
    made = client.post(
        "/api/v1/webhooks",
        json={"url": "https://example.com/h", "events": ["*"], "description": "crm"},
    ).json()
    listed = client.get("/api/v1/webhooks").json()
    assert [w["id"] for w in listed["webhooks"]] == [made["id"]]
    assert listed["webhooks"][0]["secret"].startswith("whsec_...")
    assert client.delete(f"/api/v1/webhooks/{made['id']}").status_code == 200
    assert client.get(f"/api/v1/webhooks/{made['id']}").status_code == 404
    client.close()


def status_of(services: Services, execution_id: str) -> str:
    with services.db.read() as conn:
        return services.store.executions.get_many(conn, [execution_id])[execution_id].status


def wait_for(what: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_a_hanging_subscriber_never_slows_another(db_url: str) -> None:
    """On the real clock, with the embedded worker: one subscriber answers after 2 s a request,
    the other at once; the fast one has every event long before the slow one."""
    services = bootstrap(
        Settings(database_url=db_url, webhook_timeout_seconds=10.0, worker_poll_seconds=0.05),
        migrate=False,
    )
    slow, fast = Subscriber(), Subscriber()
    try:
        client, org = api(services)
        subscribe(client, slow)
        subscribe(client, fast)
        slow.come_up("slow")
        slow.delay = 2.0
        agent = make_agent(services, org, "CALL", defaultDisposition="CALENDLY", callDurationSecs=0)
        made = client.post(
            "/api/v1/workflow",
            json={
                "name": "one call",
                "definition": {
                    "steps": [
                        {"type": "CALL", "order": 1, "agentId": agent, "needsTCPACompliance": False}
                    ]
                },
            },
        )
        workflow_id = made.json()["id"]
        services.worker.start()
        started = time.monotonic()
        for i in range(3):
            client.post(
                f"/api/v1/workflow/{workflow_id}/execution",
                json={"customerLeadId": f"l{i}", "primaryPhone": f"+1212555{i:04d}"},
            )
        # created, started, step.scheduled, step.dispatched, step.completed, completed
        wait_for(lambda: len(fast.received) >= 18, timeout=20)
        fast_done = time.monotonic() - started
        assert len(slow.received) < 18
        assert fast_done < 2 * 6  # the slow chain alone takes 6 x 2 s
        one_call = [
            "execution.created",
            "execution.started",
            "execution.step.scheduled",
            "execution.step.dispatched",
            "execution.step.completed",
            "execution.completed",
        ]
        for events in by_execution(fast.bodies()).values():
            assert [b["type"] for b in events] == one_call
        client.close()
    finally:
        services.worker.stop()
        services.close()
        slow.close()
        fast.close()


def test_the_documented_verification_code_accepts_our_deliveries(
    svc: Services, clock: VirtualClock, subscriber: Subscriber
) -> None:
    """docs/webhooks.md's "by hand" verifier, run as a subscriber would run it."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "webhooks.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    [by_hand] = [b for b in blocks if "def verify(" in b]
    namespace: dict[str, Any] = {}
    exec(by_hand, namespace)
    client, org = api(svc)
    subscribe(client, subscriber, ["execution.created"])
    start_executions(svc, org, 1)
    svc.engine.run_until_idle(clock)
    [delivery] = subscriber.received
    assert namespace["verify"](subscriber.secret, delivery.headers, delivery.raw)
    assert not namespace["verify"](subscriber.secret, delivery.headers, delivery.raw + b" ")
    client.close()


def webhook_rows(services: Services) -> tuple[int, int, int]:
    """How many events, deliveries and attempts are stored."""
    with services.db.read() as conn:
        return tuple(  # type: ignore[return-value]
            int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())
            for t in (webhook_events, webhook_deliveries, webhook_attempts)
        )


def test_retention_prunes_finished_deliveries_in_batches_never_an_open_one(
    db_url: str, clock: VirtualClock, subscriber: Subscriber
) -> None:
    services = build(
        db_url,
        clock,
        webhook_retention_days=2,
        webhook_retry_horizon_seconds=6 * 86400,
        webhook_disable_after_failures=100_000,
    )
    down = Subscriber()
    try:
        deliverer = services.engine.webhooks
        assert deliverer.limits.retention == timedelta(days=2)
        deliverer.limits = replace(deliverer.limits, prune_batch=4)
        client, org = api(services)
        up_id = subscribe(client, subscriber)
        down_id = subscribe(client, down)
        down.go_down()
        start = clock.now()
        ids = start_executions(services, org, 2)
        # The executions finish (the text goes out a day after the call).
        services.engine.run_until_idle(clock, until=start + timedelta(days=1, hours=2))
        assert len(subscriber.received) == 18
        events, deliveries, attempts = webhook_rows(services)
        assert (events, deliveries) == (18, 36)
        # Two days after the last delivery finished: one prune deletes one bounded batch, the
        # oldest first, and a full batch lets the next one follow at once.
        clock.advance_to(start + timedelta(days=3, hours=3))
        assert deliverer.prune() == 4
        assert webhook_rows(services)[1] == 32
        assert deliverer.prune() == 4
        # The worker prunes the rest on its way: every delivered delivery and its attempts;
        # no event, as the subscriber that is down has not had them yet.
        services.engine.run_until_idle(clock, until=clock.now() + timedelta(hours=1))
        events, deliveries, attempts = webhook_rows(services)
        assert (events, deliveries) == (18, 18)
        assert deliverer.pruned == 18
        assert client.get(f"/api/v1/webhooks/{up_id}/deliveries").json()["deliveries"] == []
        down_log = client.get(f"/api/v1/webhooks/{down_id}/deliveries", params={"limit": 200})
        assert len(down_log.json()["deliveries"]) == attempts > 0
        assert client.get(f"/api/v1/webhooks/{down_id}").json()["openDeliveries"] == 18
        # Back up: every event is delivered, in order, and pruned two days later.
        down.come_up()
        services.engine.run_until_idle(clock, until=clock.now() + timedelta(hours=2))
        events_of = by_execution(down.bodies())
        assert [[e["type"] for e in events_of[i]] for i in ids] == [EXPECTED_TYPES] * 2
        assert webhook_rows(services)[0] == 18
        services.engine.run_until_idle(clock, until=clock.now() + timedelta(days=2, hours=1))
        assert webhook_rows(services) == (0, 0, 0)
        client.close()
    finally:
        down.close()
        services.close()


def test_retention_zero_keeps_everything(db_url: str, clock: VirtualClock) -> None:
    services = build(db_url, clock, webhook_retention_days=0)
    try:
        assert services.engine.webhooks.limits.retention is None
        assert services.engine.webhooks.prune() == 0
    finally:
        services.close()
