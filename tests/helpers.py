"""Small builders shared by tests."""

from __future__ import annotations

from typing import Any

from reachflow.bootstrap import Services

WEEKDAYS_9_TO_17 = {
    day: {
        "enabled": True,
        "timeRanges": [{"startHour": 9, "startMinute": 0, "endHour": 17, "endMinute": 0}],
    }
    for day in ("monday", "tuesday", "wednesday", "thursday", "friday")
}


def make_agent(services: Services, org: str, channel: str = "CALL", **config: Any) -> str:
    return services.agents.create(
        org, {"name": f"{channel} agent", "channel": channel, "config": config}
    ).id


def seed_002_workflow(call_agent: str, text_agent: str) -> dict[str, Any]:
    """Seed 002's two-step example, verbatim but for the agent ids."""
    return {
        "name": "Two-step follow-up",
        "description": "One call and one text reminder",
        "active": True,
        "timezone": "America/New_York",
        "workflowSchedule": {
            "monday": {
                "enabled": True,
                "timeRanges": [{"startHour": 9, "startMinute": 0, "endHour": 17, "endMinute": 0}],
            },
            "tuesday": {
                "enabled": True,
                "timeRanges": [{"startHour": 9, "startMinute": 0, "endHour": 17, "endMinute": 0}],
            },
        },
        "definition": {
            "steps": [
                {
                    "type": "CALL",
                    "order": 1,
                    "delayInSecs": 0,
                    "agentId": call_agent,
                    "leaveVoicemail": True,
                    "finishOn": ["CALENDLY", "NOT_INTERESTED", "DNC"],
                },
                {
                    "type": "TEXT",
                    "order": 2,
                    "delayInSecs": 86400,
                    "agentId": text_agent,
                    "initialMessage": (
                        "Hi {{firstName}}, following up on our earlier outreach. "
                        "Let me know if you want to reconnect."
                    ),
                    "finishOn": ["DNC"],
                },
            ]
        },
    }


def lead(phone: str = "+12125550123", lead_id: str = "contact-123", **extra: Any) -> dict[str, Any]:
    return {"customerLeadId": lead_id, "primaryPhone": phone, **extra}


def short_cap(services: Services, seconds: float) -> None:
    """Replace the rules with one NY cap of one attempt per ``seconds`` (the shipped caps are
    hours long), for tests on the real clock: a step it holds is deferred by the gate, never
    skipped."""
    from datetime import timedelta

    from reachflow.domain.compliance import parse_rules

    compliance = services.compliance
    compliance.rules = parse_rules(
        {
            "version": "test",
            "rules": [
                {
                    "id": "US-NY-test-cap",
                    "version": "1",
                    "jurisdiction": "NY",
                    "channels": ["CALL", "TEXT"],
                    "cap": {"max": 1, "hours": seconds / 3600},
                    "consent_waives": False,
                    "citation": "test",
                    "source": "test",
                    "confidence": "high",
                }
            ],
        }
    )
    compliance.lookback = timedelta(seconds=seconds)
    compliance._windows.clear()
    compliance._cap_memo.clear()


def serve(app: Any, sock: Any, wait: float = 30.0) -> tuple[Any, Any]:
    """Serve ``app`` with uvicorn on a bound socket in a thread; return (server, thread) once
    it listens. Stop it with ``server.should_exit = True`` and ``thread.join()``."""
    import threading
    import time

    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + wait
    while not server.started:
        assert time.monotonic() < deadline, "the API did not start"
        time.sleep(0.01)
    return server, thread
