"""Event webhook subscriptions as an application service: create, read, change, delete,
rotate the secret, read the delivery log, redeliver (``docs/webhooks.md``)."""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from reachflow.agents.signing import new_secret
from reachflow.domain.errors import (
    Conflict,
    FieldError,
    NotFound,
    ProblemCollector,
    ValidationFailed,
)
from reachflow.domain.events import ALL_TYPES, EVENT_TYPES, matches
from reachflow.domain.instants import BadInstant, parse_iso_instant
from reachflow.runtime.clock import Clock
from reachflow.runtime.embedded.engine import Engine
from reachflow.store.store import Store
from reachflow.store.webhooks import DISABLED, ENABLED, AttemptRecord, SubscriptionRecord

CREATE_FIELDS = frozenset({"url", "events", "description", "secret", "enabled"})
UPDATE_FIELDS = frozenset({"url", "events", "description", "enabled"})
MAX_URL = 2000
MAX_DESCRIPTION = 500
#: Subscriptions per organization.
MAX_SUBSCRIPTIONS = 100
#: After a rotation the previous secret still signs (beside the new one) this long.
ROTATION_OVERLAP = timedelta(hours=24)
#: Events one redelivery request may queue.
MAX_REDELIVER = 10_000
SECRET_BYTES = (24, 64)


@dataclass(frozen=True, slots=True)
class Redelivered:
    queued: int
    event_ids: list[str]


class WebhookService:
    def __init__(self, store: Store, engine: Engine, clock: Clock) -> None:
        self.store = store
        self.engine = engine
        self.clock = clock

    # -- subscriptions ------------------------------------------------------------------------

    def create(self, organization_id: str, body: dict[str, Any]) -> SubscriptionRecord:
        values = _validate(body, CREATE_FIELDS, partial=False)
        now = self.clock.now()
        subscription_id = str(uuid.uuid4())
        with self.store.db.begin() as conn:
            _, count = self.store.webhooks.list_subscriptions(
                conn, organization_id, limit=1, offset=0
            )
            if count >= MAX_SUBSCRIPTIONS:
                raise Conflict(
                    f"an organization has at most {MAX_SUBSCRIPTIONS} webhook subscriptions",
                    field="url",
                )
            enabled = values.get("enabled", True)
            self.store.webhooks.insert_subscription(
                conn,
                {
                    "id": subscription_id,
                    "organization_id": organization_id,
                    "url": values["url"],
                    "description": values.get("description"),
                    "event_types": values["events"],
                    "secret": values.get("secret") or new_secret(),
                    "status": ENABLED if enabled else DISABLED,
                    "disabled_reason": None if enabled else "disabled by request",
                    "disabled_at": None if enabled else now,
                    "consecutive_failures": 0,
                    "created_at": now,
                    "updated_at": now,
                },
            )
            record = self.store.webhooks.get_subscription(conn, organization_id, subscription_id)
        assert record is not None
        return record

    def get(self, organization_id: str, subscription_id: str) -> SubscriptionRecord:
        with self.store.db.read() as conn:
            record = self.store.webhooks.get_subscription(conn, organization_id, subscription_id)
        if record is None:
            raise NotFound(f"webhook {subscription_id} not found", field="webhookId")
        return record

    def open_deliveries(self, subscription_id: str) -> int:
        with self.store.db.read() as conn:
            return self.store.webhooks.open_count(conn, subscription_id)

    def list(
        self, organization_id: str, *, limit: int, offset: int
    ) -> tuple[list[SubscriptionRecord], int]:
        with self.store.db.read() as conn:
            return self.store.webhooks.list_subscriptions(
                conn, organization_id, limit=limit, offset=offset
            )

    def update(
        self, organization_id: str, subscription_id: str, body: dict[str, Any]
    ) -> SubscriptionRecord:
        """Only the fields given change. ``enabled: true`` clears a disabled subscription's
        failure streak and reason; ``enabled: false`` gives up its open deliveries."""
        values = _validate(body, UPDATE_FIELDS, partial=True)
        now = self.clock.now()
        with self.store.db.begin() as conn:
            current = self._locked(conn, organization_id, subscription_id)
            changes: dict[str, Any] = {"updated_at": now}
            for key, column in (("url", "url"), ("description", "description")):
                if key in values:
                    changes[column] = values[key]
            if "events" in values:
                changes["event_types"] = values["events"]
            if values.get("enabled") is True and not current.enabled:
                changes.update(
                    status=ENABLED,
                    disabled_reason=None,
                    disabled_at=None,
                    consecutive_failures=0,
                    failing_since=None,
                )
            elif values.get("enabled") is False and current.enabled:
                changes.update(
                    status=DISABLED, disabled_reason="disabled by request", disabled_at=now
                )
                self.store.webhooks.fail_open(conn, subscription_id, "subscription disabled", now)
            self.store.webhooks.update_subscription(conn, subscription_id, changes)
            record = self.store.webhooks.get_subscription(conn, organization_id, subscription_id)
        assert record is not None
        self.engine.wakeup.set()
        return record

    def delete(self, organization_id: str, subscription_id: str) -> None:
        """Hidden at once; its open deliveries are given up; its log is kept."""
        now = self.clock.now()
        with self.store.db.begin() as conn:
            self._locked(conn, organization_id, subscription_id)
            self.store.webhooks.fail_open(conn, subscription_id, "subscription deleted", now)
            self.store.webhooks.update_subscription(
                conn,
                subscription_id,
                {"deleted_at": now, "updated_at": now, "status": DISABLED},
            )

    def rotate_secret(
        self, organization_id: str, subscription_id: str, body: dict[str, Any]
    ) -> SubscriptionRecord:
        """A new secret (given, or generated); the previous one also signs for 24 hours, so a
        subscriber can switch without losing a delivery."""
        problems = ProblemCollector()
        for key in body:
            if key != "secret":
                problems.add(key, "unknown field; expected secret (or nothing)")
        secret = body.get("secret")
        if secret is not None:
            _check_secret(secret, "secret", problems)
        problems.raise_if_any()
        now = self.clock.now()
        with self.store.db.begin() as conn:
            current = self._locked(conn, organization_id, subscription_id)
            self.store.webhooks.update_subscription(
                conn,
                subscription_id,
                {
                    "secret": secret or new_secret(),
                    "previous_secret": current.secret,
                    "previous_secret_until": now + ROTATION_OVERLAP,
                    "updated_at": now,
                },
            )
            record = self.store.webhooks.get_subscription(conn, organization_id, subscription_id)
        assert record is not None
        return record

    # -- deliveries ---------------------------------------------------------------------------

    def deliveries(
        self,
        organization_id: str,
        subscription_id: str,
        *,
        limit: int,
        cursor: str | None,
        event_id: str | None,
    ) -> tuple[list[AttemptRecord], str | None]:
        """The delivery log, newest attempt first; ``cursor`` is the last id of a page."""
        before: int | None = None
        if cursor is not None:
            if not cursor.isdigit():
                raise ValidationFailed(FieldError("cursor", "unknown cursor"))
            before = int(cursor)
        with self.store.db.read() as conn:
            if self.store.webhooks.get_subscription(conn, organization_id, subscription_id) is None:
                raise NotFound(f"webhook {subscription_id} not found", field="webhookId")
            rows = self.store.webhooks.attempts_of(
                conn, subscription_id, limit=limit + 1, before=before, event_id=event_id
            )
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, (str(rows[-1].id) if more and rows else None)

    def redeliver(
        self, organization_id: str, subscription_id: str, body: dict[str, Any]
    ) -> Redelivered:
        """Queue one event again (``eventId``), or every event of a time range the
        subscription takes (``since``, ``until``: default now), as new deliveries after those
        already waiting. A disabled subscription must be enabled first."""
        problems = ProblemCollector()
        for key in body:
            if key not in ("eventId", "since", "until"):
                problems.add(key, "unknown field; expected eventId, or since and until")
        event_id = body.get("eventId")
        since = _instant(body.get("since"), "since", problems)
        until = _instant(body.get("until"), "until", problems)
        if event_id is not None and not (isinstance(event_id, str) and event_id):
            problems.add("eventId", "must be an event id")
        if event_id is None and since is None:
            problems.add("eventId", "give eventId, or since (and until) for a time range")
        if event_id is not None and (since is not None or until is not None):
            problems.add("since", "give eventId or a time range, not both")
        problems.raise_if_any()
        now = self.clock.now()
        with self.store.db.begin() as conn:
            current = self._locked(conn, organization_id, subscription_id)
            if not current.enabled:
                raise Conflict(
                    f"webhook {subscription_id} is disabled; enable it first", field="enabled"
                )
            if isinstance(event_id, str):
                found = self.store.webhooks.event(conn, organization_id, event_id)
                if found is None:
                    raise NotFound(f"event {event_id} not found", field="eventId")
                events = [found]
            else:
                assert since is not None
                end = until or now + timedelta(microseconds=1)
                if end <= since:
                    raise ValidationFailed(FieldError("until", "must be after since"))
                events = self.store.webhooks.events_between(
                    conn, organization_id, since, end, MAX_REDELIVER + 1
                )
                if len(events) > MAX_REDELIVER:
                    raise ValidationFailed(
                        FieldError(
                            "until", f"the range holds more than {MAX_REDELIVER} events; narrow it"
                        )
                    )
            taken = [e for e in events if matches(current.event_types, e[1])]
            self.store.webhooks.queue(
                conn,
                [(subscription_id, e[0], organization_id, e[2]) for e in taken],
                now,
            )
        self.engine.wakeup.set()
        return Redelivered(len(taken), [e[0] for e in taken])

    def _locked(self, conn: Any, organization_id: str, subscription_id: str) -> SubscriptionRecord:
        record = self.store.webhooks.get_subscription(
            conn, organization_id, subscription_id, lock=True
        )
        if record is None:
            raise NotFound(f"webhook {subscription_id} not found", field="webhookId")
        return record


def _validate(body: dict[str, Any], allowed: frozenset[str], *, partial: bool) -> dict[str, Any]:
    problems = ProblemCollector()
    out: dict[str, Any] = {}
    for key in body:
        if key not in allowed:
            problems.add(key, f"unknown field; expected one of {sorted(allowed)}")
    if "url" in body or not partial:
        url = body.get("url")
        if not isinstance(url, str) or not _is_http_url(url):
            problems.add("url", "is required: an http:// or https:// URL")
        elif len(url) > MAX_URL:
            problems.add("url", f"must be at most {MAX_URL} characters")
        else:
            out["url"] = url
    if "events" in body or not partial:
        events = body.get("events")
        if not isinstance(events, list) or not events:
            problems.add(
                "events", f"is required: a non-empty list of event types, or [{ALL_TYPES!r}]"
            )
        else:
            for i, name in enumerate(events):
                if name != ALL_TYPES and name not in EVENT_TYPES:
                    problems.add(
                        f"events[{i}]",
                        f"unknown event type {name!r}; expected {ALL_TYPES!r} or one of "
                        + ", ".join(EVENT_TYPES),
                    )
            out["events"] = list(dict.fromkeys(e for e in events if isinstance(e, str)))
    if "description" in body:
        description = body["description"]
        if description is not None and (
            not isinstance(description, str) or len(description) > MAX_DESCRIPTION
        ):
            problems.add("description", f"must be a string of at most {MAX_DESCRIPTION}")
        out["description"] = description
    if "enabled" in body:
        if not isinstance(body["enabled"], bool):
            problems.add("enabled", "must be a boolean")
        out["enabled"] = body["enabled"]
    if "secret" in body:
        _check_secret(body["secret"], "secret", problems)
        out["secret"] = body["secret"]
    problems.raise_if_any()
    return out


def _check_secret(secret: object, field: str, problems: ProblemCollector) -> None:
    """``whsec_`` and the base64 of 24 to 64 random bytes (Standard Webhooks)."""
    low, high = SECRET_BYTES
    message = f"must be whsec_ and the base64 of {low} to {high} bytes (or left out)"
    if not isinstance(secret, str) or not secret.startswith("whsec_"):
        problems.add(field, message)
        return
    try:
        raw = base64.b64decode(secret[len("whsec_") :], validate=True)
    except (binascii.Error, ValueError):
        problems.add(field, message)
        return
    if not low <= len(raw) <= high:
        problems.add(field, message)


def _instant(raw: object, field: str, problems: ProblemCollector) -> datetime | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        problems.add(field, "must be an ISO 8601 date-time string")
        return None
    try:
        return parse_iso_instant(raw)
    except BadInstant as exc:
        problems.add(field, str(exc))
        return None


def _is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)
