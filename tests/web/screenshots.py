"""Write a screenshot of each console page under docs/screenshots/ (laptop and phone widths).

    python -m tests.web.screenshots

Runs the console over a fresh SQLite database with demo data (tests/web/harness.py), in
Debian's Chromium (/usr/bin/chromium) driven by Playwright; downloads nothing.
"""

from __future__ import annotations

import sys
import tempfile
from datetime import timedelta
from pathlib import Path

from playwright.sync_api import sync_playwright

from reachflow.bootstrap import Services, bootstrap
from reachflow.runtime.clock import VirtualClock
from reachflow.settings import Settings
from tests.conftest import MONDAY_10_NY
from tests.helpers import lead
from tests.web.harness import Demo, chromium_path, demo, hook_receiver, serve

OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def _webhooks(services: Services, clock: VirtualClock, data: Demo) -> str:
    """A subscription with a delivery log (one execution's events, sent to a loopback
    endpoint), and a disabled one; the first's id."""
    with hook_receiver() as url:
        webhook = services.webhooks.create(
            data.org, {"url": url, "events": ["*"], "description": "CRM sync"}
        ).id
        services.executions.create(
            data.org, data.workflow, lead("+12125550160", "lead-webhook", zipcode="10001")
        )
        services.engine.run_until_idle(clock, until=clock.now() + timedelta(hours=1))
    services.webhooks.create(
        data.org,
        {
            "url": "https://crm.example.com/old-hook",
            "events": ["execution.completed"],
            "enabled": False,
        },
    )
    return webhook


def main() -> int:
    browser_path = chromium_path()
    if browser_path is None:
        print("no Chromium at /usr/bin/chromium: apt-get install -y chromium", file=sys.stderr)  # noqa: T201
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        clock = VirtualClock(MONDAY_10_NY)
        services = bootstrap(Settings(database_url=f"sqlite:///{tmp}/demo.db"), clock=clock)
        try:
            data = demo(services, clock)
            webhook = _webhooks(services, clock, data)
            pages = {
                "sign-in": "/console/sign-in",
                "executions": "/console/executions",
                "execution": f"/console/executions/{data.deferred}",
                "workflows": "/console/workflows",
                "workflow": f"/console/workflows/{data.workflow}",
                "workflow-graph": f"/console/workflows/{data.graph_workflow}",
                "compliance": "/console/compliance?phone=%2B13105550104&zipcode=90001"
                f"&workflow={data.workflow}",
                "suppressions": "/console/suppressions",
                "agents": "/console/agents",
                "webhooks": "/console/webhooks",
                "webhook": f"/console/webhooks/{webhook}",
            }
            with serve(services) as base, sync_playwright() as p:
                browser = p.chromium.launch(executable_path=browser_path)
                for label, size in (("", (1280, 800)), ("-phone", (390, 844))):
                    page = browser.new_page(viewport={"width": size[0], "height": size[1]})
                    page.goto(base + pages["sign-in"])
                    page.screenshot(path=str(OUT / f"sign-in{label}.png"), full_page=True)
                    page.fill("#api_key", data.key)
                    page.click("button[type=submit]")
                    page.wait_for_url("**/console/executions")
                    for name, path in pages.items():
                        if name == "sign-in":
                            continue
                        page.goto(base + path)
                        page.screenshot(path=str(OUT / f"{name}{label}.png"), full_page=True)
                    page.close()
                browser.close()
        finally:
            services.close()
    print(f"screenshots written to {OUT}")  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
