"""The console in a real browser: Debian's Chromium (/usr/bin/chromium) driven by Playwright,
against the API and console served over loopback by uvicorn, on SQLite. Nothing is downloaded:
Playwright is pointed at the system browser. Without that browser these tests skip (the
HTML-level tests in test_console_pages.py still cover every view); CI installs it (.ci/run).

Waiting: never a sleep. Every wait is Playwright's own (auto-waiting actions, ``expect``,
``wait_for_url``, ``wait_for_function``), each with a deadline generous enough for a loaded
machine (two cores at a load average of 5 or more): ``ACTION_MS`` for an action or an
assertion, ``NAVIGATION_MS`` for a page load, ``LIVE_MS`` for a live region to show a change.
No test edits a form inside a live region in place (the region's next poll may replace it):
a test that needs a forged form builds its own."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from reachflow.bootstrap import Services
from reachflow.runtime.clock import VirtualClock
from tests.helpers import lead, seed_002_workflow
from tests.web.harness import chromium_path, hook_receiver, serve

CHROMIUM = chromium_path()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium at /usr/bin/chromium (apt-get install -y chromium); "
    "tests/web/test_console_pages.py covers every view without a browser",
)
#: How long a live region may take to show a change: it polls every 1 s while it changes,
#: backing off to every 30 s while it does not, so a change may wait up to 30 s for its poll.
LIVE_MS = 60_000
#: An action (click, fill) or an ``expect`` assertion; Playwright's own default is 5 s.
ACTION_MS = 30_000
#: A page load (goto, a form's answer, ``wait_for_url``).
NAVIGATION_MS = 60_000
#: Requests the tests make to the API themselves.
HTTP_SECONDS = 60


@pytest.fixture
def db_url(tmp_path: Path, sqlite_template: Path) -> str:
    """SQLite only: the browser tests exercise the pages, the HTML tests both databases."""
    import shutil

    path = tmp_path / "reachflow.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def site(services: Services) -> Iterator[str]:
    with serve(services) as base:
        yield base


@pytest.fixture
def page() -> Iterator[Any]:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=ACTION_MS)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, timeout=NAVIGATION_MS)
        tab = browser.new_page(viewport={"width": 1280, "height": 900})
        tab.set_default_timeout(ACTION_MS)
        tab.set_default_navigation_timeout(NAVIGATION_MS)
        yield tab
        browser.close()


@pytest.fixture
def key(services: Services) -> str:
    return services.accounts.create_api_key("acme")[1]


@pytest.fixture
def api(site: str, key: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=site, headers={"X-API-Key": key}, timeout=HTTP_SECONDS) as client:
        yield client


#: Posts a new form (a forged CSRF token) to the path given, from the page.
FORGED_POST = """(action) => {
  const form = document.createElement("form");
  form.method = "post";
  form.action = action;
  const token = document.createElement("input");
  token.type = "hidden";
  token.name = "csrf";
  token.value = "forged";
  form.appendChild(token);
  document.body.appendChild(form);
  form.submit();
}"""


def _sign_in(page: Any, site: str, key: str) -> None:
    page.goto(site + "/")
    assert "/console/sign-in" in page.url
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/console/executions")


def _workflow(api: httpx.Client) -> str:
    def agent(channel: str, **config: Any) -> str:
        body = {"name": f"{channel} agent", "channel": channel, "config": config}
        answer = api.post("/api/v1/agents", json=body)
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    call = agent("CALL", defaultDisposition="NO_ANSWER", callDurationSecs=30)
    text = agent("TEXT", defaultDisposition="ENDED")
    created = api.post("/api/v1/workflow", json=seed_002_workflow(call, text))
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _execution(api: httpx.Client, workflow: str, phone: str, lead_id: str, **more: Any) -> str:
    answer = api.post(f"/api/v1/workflow/{workflow}/execution", json=lead(phone, lead_id, **more))
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def test_watch_an_execution_advance_live_then_pause_and_resume_it(
    services: Services, clock: VirtualClock, site: str, api: httpx.Client, key: str, page: Any
) -> None:
    from playwright.sync_api import expect

    workflow = _workflow(api)
    execution = _execution(api, workflow, "+12125550123", "lead-live", zipcode="10001")
    _sign_in(page, site, key)
    expect(page.locator("#execution-rows")).to_contain_text("lead-live")
    page.get_by_role("link", name=execution[:8]).click()
    page.wait_for_url(f"**/console/executions/{execution}")
    expect(page.locator("#timeline")).not_to_contain_text("Agent reported")
    page.evaluate("window.__sameDocument = true")

    # The simulator places the call and reports it; the open page follows without a reload.
    services.engine.run_until_idle(clock, until=clock.now() + timedelta(minutes=5))
    expect(page.locator("#timeline")).to_contain_text("Agent reported", timeout=LIVE_MS)
    expect(page.locator("#timeline")).to_contain_text("LEFT_VOICEMAIL")
    expect(page.locator("#calls-h + ul")).to_contain_text("Simulated call: LEFT_VOICEMAIL")
    assert page.evaluate("window.__sameDocument") is True

    page.get_by_role("button", name="Pause").click()
    expect(page.locator("#execution-status")).to_have_attribute("data-status", "PAUSED")
    expect(page.get_by_role("status")).to_have_text("Paused.")
    assert api.get(f"/api/v1/workflow/{workflow}/execution/{execution}").json()["status"] == (
        "PAUSED"
    )
    expect(page.get_by_role("button", name="Pause")).to_be_disabled()
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#execution-status")).to_have_attribute("data-status", "RUNNING")
    assert api.get(f"/api/v1/workflow/{workflow}/execution/{execution}").json()["status"] == (
        "RUNNING"
    )
    # Keyboard only: Tab reaches the Cancel button, Enter asks, dismissing keeps it running.
    # (A live region is never replaced while the focus is inside it.)
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Cancel").focus()
    with page.expect_event("dialog"):
        page.keyboard.press("Enter")
    expect(page.locator("#execution-status")).to_have_attribute("data-status", "RUNNING")
    assert api.get(f"/api/v1/workflow/{workflow}/execution/{execution}").json()["status"] == (
        "RUNNING"
    )


def test_a_deferral_shows_its_rule_citation_and_a_suppression_cancels_it(
    site: str, api: httpx.Client, key: str, page: Any, services: Services, clock: VirtualClock
) -> None:
    from playwright.sync_api import expect

    workflow = _workflow(api)
    # 10:00 in New York is 07:00 in Los Angeles: the call waits for the calling window.
    waiting = _execution(api, workflow, "+13105550104", "lead-la", zipcode="90001")
    services.engine.run_until_idle(clock, until=clock.now())
    _sign_in(page, site, key)
    page.goto(f"{site}/console/executions/{waiting}")
    deferral = page.locator("li.ev-deferred")
    expect(deferral).to_contain_text("Step deferred")
    expect(deferral.locator("cite").last).to_contain_text("47 CFR § 64.1200(c)(1)")
    expect(deferral).to_contain_text("America/Los_Angeles")

    page.get_by_role("link", name="Suppressions").click()
    page.get_by_label("Phone", exact=True).first.fill("+13105550104")
    page.get_by_label("Reason").fill("asked not to be called")
    page.get_by_role("button", name="Suppress").click()
    expect(page.get_by_role("status")).to_contain_text("1 waiting executions cancelled")
    expect(page.locator("#suppressions")).to_contain_text("asked not to be called")
    page.goto(f"{site}/console/executions/{waiting}")
    expect(page.locator("#execution-status")).to_have_attribute("data-status", "CANCELLED")


def test_the_explain_view(site: str, api: httpx.Client, key: str, page: Any) -> None:
    from playwright.sync_api import expect

    _sign_in(page, site, key)
    page.get_by_role("link", name="Compliance").click()
    page.get_by_label("Phone (required)").fill("+13105550104")
    page.get_by_label("ZIP").fill("90001")
    page.get_by_label("Channel").select_option("CALL")
    page.get_by_label("Instant (UTC; empty: now)").fill("2026-03-10T05:00:00Z")
    page.get_by_role("button", name="Explain").click()
    expect(page.locator("#verdict")).to_have_text("Not allowed now")
    expect(page.locator("#next-opening")).to_contain_text("2026-03-10T")
    expect(page.locator("#rules-table")).to_contain_text("47 CFR § 64.1200(c)(1)")
    expect(page.locator("figure.week svg")).to_be_visible()


def test_csrf_refusal_wrong_key_and_another_organization(
    services: Services, clock: VirtualClock, site: str, api: httpx.Client, key: str, page: Any
) -> None:
    from playwright.sync_api import expect

    workflow = _workflow(api)
    mine = _execution(api, workflow, "+12125550123", "lead-mine", zipcode="10001")
    # A wrong key is refused, and no session is made.
    page.goto(site + "/console/sign-in")
    page.get_by_label("API key").fill(key + "wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not valid")
    page.goto(site + "/console/executions")
    assert "/console/sign-in" in page.url

    _sign_in(page, site, key)
    # A form whose CSRF token is not the session's is refused and changes nothing. The page's
    # own Pause form sits in a live region whose next poll may replace it (and its token), so
    # the forged form is a new one, posted from the page with the session's cookie.
    page.goto(f"{site}/console/executions/{mine}")
    expect(page.get_by_role("button", name="Pause")).to_be_enabled()
    with page.expect_navigation():
        page.evaluate(FORGED_POST, f"/console/executions/{mine}/pause")
    expect(page.get_by_role("alert")).to_contain_text("CSRF")
    assert api.get(f"/api/v1/workflow/{workflow}/execution/{mine}").json()["status"] != "PAUSED"

    # Another organization's execution is neither listed nor shown.
    _, other_key = services.accounts.create_api_key("globex")
    with httpx.Client(
        base_url=site, headers={"X-API-Key": other_key}, timeout=HTTP_SECONDS
    ) as other_api:
        theirs = _execution(
            other_api, _workflow(other_api), "+12125550124", "lead-theirs", zipcode="10001"
        )
    response = page.goto(f"{site}/console/executions/{theirs}")
    assert response is not None
    assert response.status == 404
    page.goto(f"{site}/console/executions")
    expect(page.locator("#execution-rows")).to_contain_text("lead-mine")
    expect(page.locator("#execution-rows")).not_to_contain_text("lead-theirs")


def test_workflow_graph_and_phone_layout(site: str, api: httpx.Client, key: str, page: Any) -> None:
    from playwright.sync_api import expect

    workflow = _workflow(api)
    _execution(api, workflow, "+12125550123", "lead-graph", zipcode="10001")
    _sign_in(page, site, key)
    page.set_viewport_size({"width": 390, "height": 844})
    page.get_by_role("link", name="Workflows").click()
    page.get_by_role("link", name="Two-step follow-up").click()
    graph = page.locator("figure.graph svg")
    expect(graph).to_be_visible()
    expect(page.locator("#graph-table")).to_contain_text("1. CALL")
    expect(page.locator("#edge-table")).to_contain_text("Took it")
    # The graph is a live region (replaced by its polls): measure it in the page, retried
    # until it holds or the deadline passes, never from a handle that may be detached.
    fits = "() => { const s = document.querySelector('figure.graph svg');"
    fits += " const w = s ? s.getBoundingClientRect().width : 0; return w > 0 && w <= 390; }"
    page.wait_for_function(fits)  # drawn to fit a phone's width
    page.wait_for_function("() => document.documentElement.scrollWidth <= 400")
    wide = page.evaluate("document.documentElement.scrollWidth")
    assert wide <= 400, "the page scrolls sideways on a phone"


def test_webhook_delivery_log_and_redeliver_by_keyboard(
    services: Services, clock: VirtualClock, site: str, api: httpx.Client, key: str, page: Any
) -> None:
    from playwright.sync_api import expect

    workflow = _workflow(api)
    with hook_receiver() as url:
        created = api.post("/api/v1/webhooks", json={"url": url, "events": ["*"]})
        assert created.status_code == 201, created.text
        webhook = str(created.json()["id"])
        _execution(api, workflow, "+12125550123", "lead-hook", zipcode="10001")
        services.engine.run_until_idle(clock, until=clock.now() + timedelta(hours=1))
    log = api.get(f"/api/v1/webhooks/{webhook}/deliveries").json()["deliveries"]
    event = log[-1]["eventId"]

    _sign_in(page, site, key)
    page.get_by_role("link", name="Webhooks").click()
    expect(page.locator("#webhooks")).to_contain_text("enabled")
    page.get_by_role("link", name=url).click()
    page.wait_for_url(f"**/console/webhooks/{webhook}")
    row = page.locator(f'#deliveries tr[data-event="{event}"]')
    expect(row).to_contain_text("200")
    expect(row).to_contain_text("delivered")
    # Keyboard only: the row's Redeliver button, Enter.
    page.get_by_role("button", name=f"Redeliver event {event}").focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text("Queued 1 event for delivery again.")
    assert api.get(f"/api/v1/webhooks/{webhook}").json()["openDeliveries"] == 1
    # A time range, by its labelled fields; it asks first.
    page.get_by_label("From (UTC)").fill("2026-03-01T00:00")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Redeliver the range").click()
    expect(page.get_by_role("status")).to_contain_text(f"Queued {len(log)} events")
    # On a phone the log scrolls inside its box; the page does not scroll sideways.
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_function("() => document.documentElement.scrollWidth <= 400")
