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
