"""The console at the HTML level, on SQLite and PostgreSQL: sign-in and sessions, CSRF, the
organization boundary, and every page over real services (no browser needed)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from reachflow.api import create_app
from reachflow.bootstrap import Services
from reachflow.runtime.clock import VirtualClock
from reachflow.web import routes
from reachflow.web.session import SESSION_COOKIE
from tests.helpers import lead, make_agent
from tests.web.harness import Demo, csrf_of, demo, hook_receiver, nurture, sign_in


@pytest.fixture
def data(services: Services, clock: VirtualClock) -> Demo:
    return demo(services, clock)


@pytest.fixture
def browser(services: Services, data: Demo) -> Iterator[TestClient]:
    """A client signed in to the console (cookies only: no API key header)."""
    with TestClient(create_app(services)) as client:
        yield sign_in(client, data.key)


@pytest.fixture
def anonymous(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services)) as client:
        yield client


def _post(client: TestClient, path: str, page: str, **form: str) -> object:
    token = csrf_of(client.get(page).text)
    return client.post(path, data={"csrf": token, **form}, follow_redirects=False)


# -- sign-in and sessions --------------------------------------------------------------------


def test_root_sends_a_stranger_to_sign_in(anonymous: TestClient) -> None:
    answer = anonymous.get("/", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/sign-in"
    page = anonymous.get("/console/executions", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"].startswith("/console/sign-in?next=")
    assert anonymous.get("/console/executions/rows").status_code == 401


def test_sign_in_sets_a_signed_httponly_strict_cookie_without_the_key(
    anonymous: TestClient, data: Demo
) -> None:
    page = anonymous.get("/console/sign-in")
    assert 'type="password"' in page.text
    assert '<label for="api_key">' in page.text
    answer = anonymous.post(
        "/console/sign-in",
        data={"csrf": csrf_of(page.text), "api_key": data.key, "next": "/console/workflows"},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/workflows"
    cookie = next(
        c for c in answer.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE + "=")
    )
    assert "HttpOnly" in cookie
    assert "samesite=strict" in cookie.lower()
    assert data.key not in cookie
    assert data.key[3:] not in cookie
    assert anonymous.get("/", follow_redirects=False).headers["location"] == ("/console/executions")


def test_a_wrong_or_revoked_key_is_refused(
    anonymous: TestClient, services: Services, data: Demo
) -> None:
    page = anonymous.get("/console/sign-in")
    wrong = anonymous.post(
        "/console/sign-in",
        data={"csrf": csrf_of(page.text), "api_key": data.key + "x"},
        follow_redirects=False,
    )
    assert wrong.status_code == 401
    assert "not valid" in wrong.text
    assert SESSION_COOKIE + "=" not in wrong.headers.get("set-cookie", "")
    assert anonymous.get("/console/executions", follow_redirects=False).status_code == 303
    # A session ends as soon as its key is revoked.
    sign_in(anonymous, data.key)
    assert anonymous.get("/console/executions").status_code == 200
    services.accounts.revoke_api_key(data.key[:10])
    assert anonymous.get("/console/executions", follow_redirects=False).status_code == 303


def test_a_tampered_session_cookie_is_no_session(browser: TestClient) -> None:
    value = browser.cookies[SESSION_COOKIE]
    payload, signature = value.split(".")
    browser.cookies.clear()
    browser.cookies.set(SESSION_COOKIE, payload + "." + signature[::-1])
    assert browser.get("/console/executions", follow_redirects=False).status_code == 303


def test_sign_in_needs_its_own_csrf_token(anonymous: TestClient, data: Demo) -> None:
    anonymous.get("/console/sign-in")
    forged = anonymous.post(
        "/console/sign-in", data={"csrf": "forged", "api_key": data.key}, follow_redirects=False
    )
    assert forged.status_code == 403
    assert SESSION_COOKIE + "=" not in forged.headers.get("set-cookie", "")


def test_sign_out_ends_the_session(browser: TestClient) -> None:
    answer = _post(browser, "/console/sign-out", "/console/executions")
    assert answer.status_code == 303  # type: ignore[attr-defined]
    assert browser.get("/console/executions", follow_redirects=False).status_code == 303


def test_pages_forbid_scripts_and_frames_from_elsewhere(browser: TestClient) -> None:
    page = browser.get("/console/executions")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert page.headers["cache-control"] == "no-store"
    assert "http" not in re.sub(r'href="https?://[^"]*"', "", page.text.split("<main")[0])


# -- CSRF and the organization boundary ---------------------------------------------------------


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(
    browser: TestClient, services: Services, data: Demo
) -> None:
    for form in ({}, {"csrf": "wrong"}):
        answer = browser.post(
            f"/console/executions/{data.deferred}/pause", data=form, follow_redirects=False
        )
        assert answer.status_code == 403
        assert "CSRF" in answer.text
    record = services.executions.get(data.org, data.workflow, data.deferred).record
    assert record.status == "RUNNING"
    refused = browser.post(
        "/console/suppressions", data={"phone": "+12125550123"}, follow_redirects=False
    )
    assert refused.status_code == 403


def test_another_organizations_execution_is_not_visible(
    services: Services, clock: VirtualClock, browser: TestClient, data: Demo
) -> None:
    other = demo(services, clock, org_name="globex")
    page = browser.get(f"/console/executions/{other.finished}")
    assert page.status_code == 404
    assert "lead-finished" not in page.text
    assert browser.get(f"/console/workflows/{other.workflow}").status_code == 404
    listed = browser.get("/console/executions").text
    assert other.finished[:8] not in listed
    assert data.finished[:8] in listed
    assert other.finished[:8] not in browser.get("/console/executions/rows").text
    # Nor can it be paused from here.
    answer = _post(browser, f"/console/executions/{other.deferred}/pause", "/console/executions")
    assert answer.status_code == 404  # type: ignore[attr-defined]
    assert services.executions.get(other.org, other.workflow, other.deferred).record.status == (
        "RUNNING"
    )


# -- executions --------------------------------------------------------------------------------


def test_executions_list_filters(browser: TestClient, data: Demo) -> None:
    def ids(**params: str) -> set[str]:
        page = browser.get("/console/executions", params=params)
        assert page.status_code == 200, page.text
        return set(re.findall(r'href="/console/executions/([0-9a-f-]{36})"', page.text))

    assert {data.finished, data.paused, data.deferred} <= ids()
    assert ids(status="PAUSED") == {data.paused}
    assert ids(phone="(310) 555-0104") == {data.deferred}
    assert ids(lead="lead-finished") == {data.finished}
    assert ids(disposition="ENDED") == {data.finished}  # its last step, the text
    assert data.deferred in ids(due_before="2030-01-01T00:00")
    assert ids(due_before="2000-01-01T00:00") == set()
    assert ids(workflow=data.graph_workflow).isdisjoint({data.finished, data.paused})
    bad = browser.get("/console/executions", params={"phone": "not a phone"})
    assert bad.status_code == 400
    assert 'role="alert"' in bad.text
    assert browser.get("/console/executions", params={"due_before": "soon"}).status_code == 400


def test_executions_page_by_keyset_cursor(
    browser: TestClient, monkeypatch: pytest.MonkeyPatch, data: Demo
) -> None:
    monkeypatch.setattr(routes, "PAGE_SIZE", 2)
    seen: list[str] = []
    page = browser.get("/console/executions", params={"workflow": data.workflow}).text
    while True:
        seen += re.findall(r'href="/console/executions/([0-9a-f-]{36})"', page)
        found = re.search(r'rel="next" href="([^"]+)"', page)
        if not found:
            break
        page = browser.get(found.group(1).replace("&amp;", "&")).text
    assert sorted(seen) == sorted({data.finished, data.paused, data.deferred})
    assert len(seen) == 3


def test_execution_timeline_shows_the_deferral_rules_with_citations(
    browser: TestClient, data: Demo
) -> None:
    page = browser.get(f"/console/executions/{data.deferred}")
    assert page.status_code == 200
    text = page.text
    assert "Step deferred" in text
    assert "US-FED-64.1200c1-hours@1" in text
    assert "47 CFR § 64.1200(c)(1)" in text
    assert "Zones considered: America/Los_Angeles" in text
    finished = browser.get(f"/console/executions/{data.finished}").text
    assert "Agent reported" in finished
    assert re.search(r"LEFT_VOICEMAIL\s*· \d+ s", finished)  # the call's outcome, duration
    assert "Simulated call" in finished  # its summary
    assert "simulator://recordings/" in finished  # its recording (not a link: not http)


def test_pause_resume_and_cancel_from_the_page(
    browser: TestClient, services: Services, data: Demo
) -> None:
    page = f"/console/executions/{data.deferred}"

    def status() -> str:
        return services.executions.get(data.org, data.workflow, data.deferred).record.status

    answer = _post(browser, f"{page}/pause", page)
    assert answer.status_code == 303  # type: ignore[attr-defined]
    assert status() == "PAUSED"
    shown = browser.get(answer.headers["location"]).text  # type: ignore[attr-defined]
    assert 'data-status="PAUSED"' in shown
    assert "Paused." in shown
    _post(browser, f"{page}/resume", page)
    assert status() == "RUNNING"
    _post(browser, f"{page}/cancel", page)
    assert status() == "CANCELLED"
    again = _post(browser, f"{page}/resume", page)
    assert again.status_code == 409  # type: ignore[attr-defined]


def test_bulk_cancel_by_phone_asks_first(
    browser: TestClient, services: Services, data: Demo
) -> None:
    confirm = browser.get("/console/bulk-cancel", params={"phone": "+13105550104"})
    assert confirm.status_code == 200
    assert data.deferred[:8] in confirm.text
    assert "Yes, cancel them" in confirm.text
    assert services.executions.get(data.org, data.workflow, data.deferred).record.status == (
        "RUNNING"
    )
    done = browser.post(
        "/console/bulk-cancel",
        data={"csrf": csrf_of(confirm.text), "phone": "+13105550104", "lead": "", "workflow": ""},
    )
    assert done.status_code == 200
    assert "Cancelled 1 executions." in done.text
    assert services.executions.get(data.org, data.workflow, data.deferred).record.status == (
        "CANCELLED"
    )
    assert browser.get("/console/bulk-cancel").status_code == 400


def test_live_fragments_follow_the_engine(
    browser: TestClient, services: Services, clock: VirtualClock, data: Demo
) -> None:
    created = services.executions.create(
        data.org, data.workflow, lead("+12125550177", "lead-live", zipcode="10001")
    ).record
    clock.advance_to(clock.now() + timedelta(days=(7 - clock.now().weekday()) % 7))
    live = f"/console/executions/{created.id}/live"
    before = browser.get(live).text
    assert "Agent reported" not in before
    services.engine.run_until_idle(clock, until=clock.now() + timedelta(hours=3))
    after = browser.get(live).text
    assert "Agent reported" in after
    assert "lead-live" in browser.get("/console/executions/rows").text


# -- workflows, compliance, suppressions, agents ---------------------------------------------------


def test_workflows_list_and_funnel(browser: TestClient, data: Demo) -> None:
    page = browser.get("/console/workflows").text
    assert "Two-step follow-up" in page
    assert "Nurture (graph)" in page
    assert "3 started" in page  # seed 002's workflow: three executions this week
    assert "v1" in page


def test_linear_workflow_graph_versions_and_schedule(
    browser: TestClient, services: Services, data: Demo
) -> None:
    services.workflows.update(data.org, data.workflow, {"description": "v2", "timezone": "UTC"})
    page = browser.get(f"/console/workflows/{data.workflow}").text
    assert page.count("<svg") >= 2  # the graph and the weekly bands
    assert "1. CALL" in page
    assert "2. TEXT" in page
    assert "finish: CALENDLY" in page
    assert "v2 (current)" in page
    assert ">v1<" in page
    assert "Workflow schedule" in page
    assert "09:00-17:00" in page
    leads = re.findall(
        r'<tr data-node="[^"]+"><td>([^<]+)</td><td>[^<]+</td><td class="leads-now">(\d+)', page
    )
    assert sum(int(n) for _, n in leads) >= 1


def test_graph_workflow_draws_nodes_edges_and_leads_now(browser: TestClient, data: Demo) -> None:
    page = browser.get(f"/console/workflows/{data.graph_workflow}").text
    for label in ("Call", "3 tries?", "Wait 2 days", "Converted", "Unresponsive"):
        assert f">{label}" in page
    assert "COMPLETED" in page
    assert ">true<" in page
    row = re.search(
        r'<tr data-node="wait"><td>Wait 2 days</td><td>TIME</td><td class="leads-now">(\d+)', page
    )
    assert row is not None
    assert row.group(1) == "1"
    fragment = browser.get(f"/console/workflows/{data.graph_workflow}/graph")
    assert fragment.status_code == 200
    assert "<svg" in fragment.text


def test_compliance_explain_view(browser: TestClient, data: Demo) -> None:
    page = browser.get(
        "/console/compliance",
        params={
            "phone": "+13105550104",
            "zipcode": "90001",
            "channel": "CALL",
            "at": "2026-03-10T05:00:00Z",
            "workflow": data.workflow,
        },
    )
    assert page.status_code == 200
    text = page.text
    assert "Not allowed now" in text
    assert 'id="next-opening">2026-03-10T' in text
    assert "47 CFR § 64.1200(c)(1)" in text
    assert "America/Los_Angeles" in text
    assert "Open under every rule above" in text  # the week drawn
    bad = browser.get("/console/compliance", params={"phone": "123"})
    assert bad.status_code == 400
    assert 'role="alert"' in bad.text


def test_suppression_add_cancels_the_waiting_execution_and_remove_keeps_the_audit(
    browser: TestClient, services: Services, data: Demo
) -> None:
    answer = _post(
        browser,
        "/console/suppressions",
        "/console/suppressions",
        phone="+13105550104",
        channel="ALL",
        reason="asked on the phone",
    )
    assert answer.status_code == 303  # type: ignore[attr-defined]
    page = browser.get(answer.headers["location"]).text  # type: ignore[attr-defined]
    assert "1 waiting executions cancelled" in page
    record = services.executions.get(data.org, data.workflow, data.deferred).record
    assert record.status == "CANCELLED"
    mine = browser.get("/console/suppressions", params={"phone": "+13105550104"}).text
    entry = re.search(r'action="/console/suppressions/([^/]+)/remove"', mine)
    assert entry is not None
    removed = _post(
        browser,
        f"/console/suppressions/{entry.group(1)}/remove",
        "/console/suppressions",
        reason="consent given",
    )
    assert removed.status_code == 303  # type: ignore[attr-defined]
    audit = browser.get("/console/suppressions", params={"phone": "+13105550104"}).text
    assert "consent given" in audit
    assert "asked on the phone" in audit
    bad = _post(browser, "/console/suppressions", "/console/suppressions", phone="12")
    assert bad.status_code == 400  # type: ignore[attr-defined]


def test_agents_show_their_health(browser: TestClient, data: Demo) -> None:
    page = browser.get("/console/agents").text
    assert "CALL agent" in page
    assert "TEXT agent" in page
    assert "closed" in page  # the breaker
    assert browser.get("/console/agents/rows").status_code == 200


def test_console_routes_are_not_in_the_openapi_document(anonymous: TestClient) -> None:
    paths = anonymous.get("/openapi.json").json()["paths"]
    assert not any(p == "/" or p.startswith("/console") for p in paths)


def test_an_execution_of_a_deleted_workflow_stays_visible(
    browser: TestClient, services: Services, data: Demo
) -> None:
    services.workflows.delete(data.org, data.workflow)
    page = browser.get(f"/console/executions/{data.finished}")
    assert page.status_code == 200
    assert "(deleted)" in page.text


# -- event webhooks ------------------------------------------------------------------------------


def _open(services: Services, org: str, webhook_id: str) -> int:
    """Deliveries of the subscription waiting to be sent (as GET /api/v1/webhooks/{id} says)."""
    return services.webhooks.open_deliveries(services.webhooks.get(org, webhook_id).id)


@pytest.fixture
def hooked(services: Services, clock: VirtualClock, data: Demo) -> Iterator[tuple[str, str]]:
    """A subscription of the demo organization to every event, at a loopback endpoint that
    answers 200, with one execution's events delivered; yields (its id, the first event id)."""
    with hook_receiver() as url:
        webhook = services.webhooks.create(
            data.org, {"url": url, "events": ["*"], "description": "CRM sync"}
        )
        services.executions.create(
            data.org, data.workflow, lead("+12125550160", "lead-hooked", zipcode="10001")
        )
        services.engine.run_until_idle(clock, until=clock.now() + timedelta(hours=1))
        attempts, _ = services.webhooks.deliveries(
            data.org, webhook.id, limit=200, cursor=None, event_id=None
        )
        assert attempts, "the loopback endpoint got nothing"
        yield webhook.id, attempts[-1].event_id


def test_webhooks_page_lists_subscriptions_their_status_and_why_disabled(
    browser: TestClient,
    services: Services,
    clock: VirtualClock,
    data: Demo,
    hooked: tuple[str, str],
) -> None:
    webhook_id, _ = hooked
    off = services.webhooks.create(
        data.org, {"url": "https://example.com/off", "events": ["*"], "enabled": False}
    )
    other = demo(services, clock, org_name="globex")
    theirs = services.webhooks.create(
        other.org, {"url": "https://globex.example/hook", "events": ["*"]}
    )
    page = browser.get("/console/webhooks")
    assert page.status_code == 200
    text = page.text
    assert '<a href="/console/webhooks" aria-current="page">Webhooks</a>' in text
    row = re.search(rf'<tr data-webhook="{webhook_id}">(.*?)</tr>', text, re.S)
    assert row is not None
    assert "CRM sync" in row.group(1)
    assert ">enabled<" in row.group(1)
    disabled = re.search(rf'<tr data-webhook="{off.id}">(.*?)</tr>', text, re.S)
    assert disabled is not None
    assert ">disabled<" in disabled.group(1)
    assert "disabled by request" in disabled.group(1)
    assert theirs.id not in text
    assert "globex.example" not in text
    assert browser.get(f"/console/webhooks/{theirs.id}").status_code == 404
    # The agents page links here too.
    assert 'href="/console/webhooks"' in browser.get("/console/agents").text


def test_webhook_delivery_log_shows_each_attempt(
    browser: TestClient, services: Services, data: Demo, hooked: tuple[str, str]
) -> None:
    webhook_id, first_event = hooked
    page = browser.get(f"/console/webhooks/{webhook_id}")
    assert page.status_code == 200
    text = page.text
    row = re.search(rf'<tr data-event="{first_event}">(.*?)</tr>', text, re.S)
    assert row is not None
    cells = re.findall(r"<td>(.*?)</td>", row.group(1), re.S)
    assert "execution.created" in cells[1]
    assert cells[2] == "1"  # the attempt
    assert cells[3] == "200"  # the status code
    assert cells[4].endswith(" ms")  # the latency
    assert ">ok<" in cells[5]
    assert cells[6] == "delivered"
    assert f'value="{first_event}"' in row.group(1)  # its redeliver button
    assert '<span class="visually-hidden"> event ' in row.group(1)
    assert '<label for="r-since">' in text
    assert '<label for="r-event">' in text
    # One event's attempts alone; an unknown cursor is refused.
    only = browser.get(f"/console/webhooks/{webhook_id}", params={"event": first_event}).text
    assert set(re.findall(r'<tr data-event="([^"]+)"', only)) == {first_event}
    assert browser.get(f"/console/webhooks/{webhook_id}", params={"cursor": "x"}).status_code == (
        400
    )


def test_webhook_log_pages_by_cursor(
    browser: TestClient,
    monkeypatch: pytest.MonkeyPatch,
    services: Services,
    data: Demo,
    hooked: tuple[str, str],
) -> None:
    webhook_id, _ = hooked
    monkeypatch.setattr(routes, "PAGE_SIZE", 2)
    every, _ = services.webhooks.deliveries(
        data.org, webhook_id, limit=200, cursor=None, event_id=None
    )
    seen: list[str] = []
    page = browser.get(f"/console/webhooks/{webhook_id}").text
    while True:
        seen += re.findall(r'<tr data-event="([^"]+)"', page)
        found = re.search(r'rel="next" href="([^"]+)"', page)
        if not found:
            break
        page = browser.get(found.group(1).replace("&amp;", "&")).text
    assert seen == [a.event_id for a in every]


def test_redeliver_one_event_and_a_time_range_from_the_page(
    browser: TestClient,
    services: Services,
    clock: VirtualClock,
    data: Demo,
    hooked: tuple[str, str],
) -> None:
    webhook_id, first_event = hooked
    page = f"/console/webhooks/{webhook_id}"
    assert _open(services, data.org, webhook_id) == 0
    answer = _post(browser, f"{page}/redeliver", page, event=first_event)
    assert answer.status_code == 303  # type: ignore[attr-defined]
    shown = browser.get(answer.headers["location"])  # type: ignore[attr-defined]
    assert "Queued 1 event for delivery again." in shown.text
    # Queued again, as the API sees it.
    api = browser.get(f"/api/v1/webhooks/{webhook_id}", headers={"X-API-Key": data.key})
    assert api.json()["openDeliveries"] == 1
    with hook_receiver() as url:
        services.webhooks.update(data.org, webhook_id, {"url": url})
        services.engine.run_until_idle(clock, until=clock.now())
    again, _ = services.webhooks.deliveries(
        data.org, webhook_id, limit=10, cursor=None, event_id=first_event
    )
    assert len(again) == 2  # the first delivery, and the redelivery
    assert _open(services, data.org, webhook_id) == 0
    # A time range, as a browser's datetime-local field sends it (read as UTC).
    start = (clock.now() - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M")
    ranged = _post(browser, f"{page}/redeliver", page, since=start, until="")
    assert ranged.status_code == 303  # type: ignore[attr-defined]
    queued = int(re.search(r"queued=(\d+)", ranged.headers["location"]).group(1))  # type: ignore[attr-defined,union-attr]
    every, _ = services.webhooks.deliveries(
        data.org, webhook_id, limit=200, cursor=None, event_id=None
    )
    assert queued == len({a.event_id for a in every}) > 1
    assert _open(services, data.org, webhook_id) == queued


def test_redeliver_is_refused_without_the_csrf_token_or_for_another_organization(
    browser: TestClient,
    services: Services,
    clock: VirtualClock,
    data: Demo,
    hooked: tuple[str, str],
) -> None:
    webhook_id, first_event = hooked
    for form in ({"event": first_event}, {"event": first_event, "csrf": "forged"}):
        refused = browser.post(
            f"/console/webhooks/{webhook_id}/redeliver", data=form, follow_redirects=False
        )
        assert refused.status_code == 403
        assert "CSRF" in refused.text
    assert _open(services, data.org, webhook_id) == 0
    # Another organization's subscription, with this session's valid token: not found here.
    other = demo(services, clock, org_name="globex")
    with hook_receiver() as url:
        theirs = services.webhooks.create(other.org, {"url": url, "events": ["*"]})
        services.executions.create(
            other.org, other.workflow, lead("+12125550161", "lead-theirs", zipcode="10001")
        )
        services.engine.run_until_idle(clock, until=clock.now() + timedelta(hours=1))
    their_attempts, _ = services.webhooks.deliveries(
        other.org, theirs.id, limit=200, cursor=None, event_id=None
    )
    their_event = their_attempts[-1].event_id
    page = f"/console/webhooks/{webhook_id}"
    for path, form in (
        (f"/console/webhooks/{theirs.id}/redeliver", {"event": their_event}),
        (f"/console/webhooks/{theirs.id}/redeliver", {"since": "2026-01-01T00:00"}),
        # Their event through my subscription: not an event of my organization.
        (f"{page}/redeliver", {"event": their_event}),
    ):
        answer = _post(browser, path, page, **form)
        assert answer.status_code == 404, path  # type: ignore[attr-defined]
        assert "not found" in answer.text  # type: ignore[attr-defined]
    assert _open(services, other.org, theirs.id) == 0
    assert _open(services, data.org, webhook_id) == 0
    # Signed out: 401, nothing queued.
    browser.cookies.clear()
    gone = browser.post(
        f"/console/webhooks/{webhook_id}/redeliver",
        data={"event": first_event, "csrf": "x"},
        follow_redirects=False,
    )
    assert gone.status_code == 401


@pytest.mark.parametrize(
    ("path", "form", "status"),
    [
        ("{id}/redeliver", {"since": "yesterday-ish"}, 400),
        ("{id}/redeliver", {"since": "2026-03-09T10:00", "until": "2026-03-01T00:00"}, 400),
        ("{id}/redeliver", {"since": "2026-13-45T99:99"}, 400),
        ("{id}/redeliver", {"event": "evt_x", "since": "2026-03-01T00:00"}, 400),
        ("{id}/redeliver", {}, 400),
        ("{id}/redeliver", {"event": "evt\x00x"}, 400),
        ("{id}/redeliver", {"since": "2026-03-01\x00T00:00"}, 400),
        ("{id}/redeliver", {"event": "e" * 5000}, 400),
        ("{id}/redeliver", {"event": "evt_unknown"}, 404),
        ("no-such-webhook/redeliver", {"event": "evt_x"}, 404),
        ("%00/redeliver", {"event": "evt_x"}, 400),
        ("{long}/redeliver", {"event": "evt_x"}, 400),
    ],
)
def test_hostile_redeliver_forms_answer_4xx_and_queue_nothing(
    browser: TestClient,
    services: Services,
    data: Demo,
    hooked: tuple[str, str],
    path: str,
    form: dict[str, str],
    status: int,
) -> None:
    webhook_id, _ = hooked
    target = "/console/webhooks/" + path.format(id=webhook_id, long="w" * 300)
    answer = _post(browser, target, f"/console/webhooks/{webhook_id}", **form)
    assert answer.status_code == status, answer.text  # type: ignore[attr-defined]
    assert 'role="alert"' in answer.text  # type: ignore[attr-defined]
    assert _open(services, data.org, webhook_id) == 0


def test_odd_time_ranges_are_queued_or_refused_never_a_server_error(
    browser: TestClient, data: Demo, hooked: tuple[str, str]
) -> None:
    webhook_id, _ = hooked
    page = f"/console/webhooks/{webhook_id}"
    for since, until in (
        ("0001-01-01T00:00", "9999-12-31T23:59"),
        ("2026-03-01T00:00:00+14:00", "2026-03-20T00:00:00-12:00"),
        ("2026-03-01T00:00:00.123456789Z", ""),
        ("2026-03-01", ""),
        ("\uff12\uff10\uff12\uff16-03-01T00:00", ""),  # fullwidth digits
        ("2026-03-01T24:00", ""),
        ("99999-01-01T00:00", ""),
        ("9999-12-31T23:59", ""),
        ("2026-W10", ""),
        ("1741500000", ""),
    ):
        answer = _post(browser, f"{page}/redeliver", page, since=since, until=until)
        assert answer.status_code in (303, 400), (since, until)  # type: ignore[attr-defined]


def test_hostile_webhook_page_queries_answer_4xx(
    browser: TestClient, hooked: tuple[str, str]
) -> None:
    webhook_id, _ = hooked
    page = f"/console/webhooks/{webhook_id}"
    for params in (
        {"cursor": "9" * 40},
        {"cursor": "-1"},
        {"cursor": "²"},  # a digit to str.isdigit, not to int()
        {"cursor": "١٢"},
        {"event": "a\x00b"},
    ):
        assert browser.get(page, params=params).status_code == 400, params
    # A notice's count that is not one is no notice.
    for queued in ("²", "1" * 40, "-3"):
        shown = browser.get(page, params={"queued": queued})
        assert shown.status_code == 200
        assert 'role="status"' not in shown.text
    assert browser.get("/console/webhooks/%00").status_code == 400
    assert browser.get("/console/webhooks/nope").status_code == 404


def test_a_disabled_subscription_cannot_redeliver_until_enabled(
    browser: TestClient, services: Services, data: Demo, hooked: tuple[str, str]
) -> None:
    webhook_id, first_event = hooked
    services.webhooks.update(data.org, webhook_id, {"enabled": False})
    page = f"/console/webhooks/{webhook_id}"
    shown = browser.get(page).text
    assert 'data-status="disabled"' in shown
    assert "disabled by request" in shown
    assert "enable it first" in shown.lower() or "enable it" in shown
    answer = _post(browser, f"{page}/redeliver", page, event=first_event)
    assert answer.status_code == 409  # type: ignore[attr-defined]
    assert _open(services, data.org, webhook_id) == 0


# -- conversion per graph edge ---------------------------------------------------------------------


def _edges(page: str) -> dict[tuple[str, str, str], tuple[int, int, str]]:
    """The edge table: (from, to, label) -> (took it, reached from, conversion)."""
    table = page.split('id="edge-table"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(
        r"<tr data-edge=\"[^\"]*\"><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td>"
        r'<td class="taken">(\d+)</td><td class="reached">(\d+)</td><td class="rate">([^<]*)</td>',
        table,
    )
    return {(a, b, label): (int(t), int(r), rate) for a, b, label, t, r, rate in rows}


def test_graph_edges_show_their_conversion_on_a_known_run(
    browser: TestClient, services: Services, clock: VirtualClock, data: Demo
) -> None:
    # Three leads: one books on the first call, one on the second, one never answers (three
    # calls, then dropped as unresponsive).
    agent = make_agent(
        services,
        data.org,
        "CALL",
        defaultDisposition="NO_ANSWER",
        script={"+13125550201": ["CALENDLY"], "+13125550202": ["NO_ANSWER", "CALENDLY"]},
    )
    graph = services.graph_workflows.create(
        data.org, {"title": "Known run", "status": "active", "definition": nurture(agent)}
    ).id
    services.leads.enroll(
        data.org,
        graph,
        [{"phone_number": p} for p in ("+13125550201", "+13125550202", "+13125550203")],
    )
    services.engine.run_until_idle(clock, until=clock.now() + timedelta(days=14))
    page = browser.get(f"/console/workflows/{graph}").text
    assert _edges(page) == {
        ("Call", "Converted", "COMPLETED"): (2, 3, "67 %"),
        ("Call", "3 tries?", "—"): (2, 3, "67 %"),
        ("3 tries?", "Unresponsive", "true"): (1, 2, "50 %"),
        ("3 tries?", "Wait 2 days", "false"): (2, 2, "100 %"),
        ("Wait 2 days", "Call", "—"): (2, 2, "100 %"),
    }
    # On the drawing too, on each edge's label.
    assert 'data-edge="call&gt;won">' in page
    assert re.search(
        r'data-edge="call&gt;won"><title>2 of the 3 executions[^<]*</title>2/3 · 67%<', page
    )
    assert re.search(r'data-edge="check&gt;lost"><title>[^<]*</title>1/2 · 50%<', page)
    # The live fragment carries them as well.
    assert _edges(browser.get(f"/console/workflows/{graph}/graph").text) == _edges(page)


def test_linear_workflow_edges_show_their_conversion(browser: TestClient, data: Demo) -> None:
    # Seed 002's workflow: two executions started (one ran to the end, one waits for its
    # window at the call); the paused one never started.
    page = browser.get(f"/console/workflows/{data.workflow}").text
    assert _edges(page) == {
        ("Start", "1. CALL", "at once"): (2, 2, "100 %"),
        ("1. CALL", "2. TEXT", "1 d"): (1, 2, "50 %"),
        ("1. CALL", "End", "finish: CALENDLY, NOT_INTERESTED, DNC"): (0, 2, "0 %"),
        ("2. TEXT", "End", "finish: DNC"): (0, 1, "0 %"),
        ("2. TEXT", "End", "done"): (1, 1, "100 %"),
    }


def test_edge_conversion_is_one_indexed_statement(services: Services, data: Demo) -> None:
    """One statement per graph, served by the executions (organization, workflow) index and
    the events' execution index: no scan of either table, on either database."""
    import sqlalchemy as sa

    from reachflow.web import stats

    with services.db.read() as conn:
        query = stats.edge_query(data.org, data.graph_workflow, conn.dialect.name)
        compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        if conn.dialect.name == "sqlite":
            params: Any = tuple(compiled.params[k] for k in compiled.positiontup or ())
            plan = "\n".join(
                str(row[-1])
                for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled), params)
            )
            assert "SEARCH executions USING COVERING INDEX ix_executions_workflow_created" in plan
            assert "SEARCH execution_events USING INDEX ix_execution_events_execution_id" in plan
            assert "SCAN executions" not in plan
            assert "SCAN execution_events" not in plan
        else:
            conn.execute(sa.text("SET LOCAL enable_seqscan = off"))
            plan = "\n".join(
                str(row[0])
                for row in conn.exec_driver_sql("EXPLAIN " + str(compiled), compiled.params)
            )
            assert "Seq Scan on executions" not in plan
            assert "Seq Scan on execution_events" not in plan
            assert "ix_execution_events_execution_id" in plan
