"""Event webhook subscription bodies (``/api/v1/webhooks``, ``docs/webhooks.md``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from reachflow.api.schemas.common import Body, Instant
from reachflow.domain.events import ALL_TYPES, EVENT_TYPES

EventType = Literal[  # the wire names of domain.events.EVENT_TYPES, and "*"
    "*",
    "execution.created",
    "execution.started",
    "execution.step.scheduled",
    "execution.step.deferred",
    "execution.step.dispatched",
    "execution.step.completed",
    "execution.paused",
    "execution.resumed",
    "execution.completed",
    "execution.failed",
    "execution.cancelled",
    "contact.suppressed",
    "contact.consented",
]
assert set(EventType.__args__) == {ALL_TYPES, *EVENT_TYPES}

Url = Annotated[
    str,
    Field(min_length=1, max_length=2000, description="Where events are POSTed: http(s)://..."),
]
Secret = Annotated[
    str,
    Field(
        max_length=120,
        pattern=r"^whsec_",
        description="whsec_ and the base64 of 24 to 64 random bytes; generated when left out",
    ),
]


class WebhookCreate(Body):
    url: Url
    events: list[EventType] = Field(min_length=1, description='Event types, or ["*"]')
    description: str | None = Field(default=None, max_length=500)
    secret: Secret | None = None
    enabled: bool = True


class WebhookUpdate(Body):
    """Only the fields given change; ``enabled: true`` re-enables a disabled subscription."""

    url: Url = None
    events: list[EventType] = Field(default=None, min_length=1)
    description: str | None = Field(default=None, max_length=500)
    enabled: bool = None


class WebhookSecretRotate(Body):
    secret: Secret | None = None


class WebhookRedeliver(Body):
    """One event (``eventId``), or the events of ``[since, until)`` (``until``: now)."""

    eventId: str | None = Field(default=None, min_length=1, max_length=40)
    since: Instant | None = None
    until: Instant | None = None
