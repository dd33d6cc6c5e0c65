"""The suppression list, consent and the compliance explain answer, as an application service."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reachflow.domain.compliance.reactions import ContactReaction, react_to_inbound_text
from reachflow.domain.decider import Lead
from reachflow.domain.enums import Channel
from reachflow.domain.errors import (
    Conflict,
    FieldError,
    NotFound,
    ProblemCollector,
    ValidationFailed,
)
from reachflow.runtime.clock import Clock
from reachflow.runtime.compliance import ContactCompliance
from reachflow.runtime.embedded.engine import Engine
from reachflow.services.executions import parse_instant, parse_location
from reachflow.services.phones import to_e164
from reachflow.store.contacts import ALL, SuppressionRecord
from reachflow.store.store import Store

SUPPRESSION_FIELDS = frozenset({"phoneNumber", "channel", "reason"})
SUPPRESSION_CHANNELS = (ALL, Channel.CALL.value, Channel.TEXT.value)


@dataclass(frozen=True, slots=True)
class SuppressionAdded:
    record: SuppressionRecord
    created: bool
    cancelled_count: int


class ContactService:
    def __init__(
        self, store: Store, engine: Engine, compliance: ContactCompliance, clock: Clock
    ) -> None:
        self.store = store
        self.engine = engine
        self.compliance = compliance
        self.clock = clock

    # -- suppression list ---------------------------------------------------------------

    def suppress(self, organization_id: str, body: dict[str, Any]) -> SuppressionAdded:
        """Add a number; on every channel, its active executions are cancelled with the reason."""
        problems = ProblemCollector()
        for key in body:
            if key not in SUPPRESSION_FIELDS:
                problems.add(key, f"unknown field; expected one of {sorted(SUPPRESSION_FIELDS)}")
        channel = body.get("channel", ALL)
        if channel not in SUPPRESSION_CHANNELS:
            problems.add("channel", f"must be one of {list(SUPPRESSION_CHANNELS)}")
        reason = body.get("reason", "added by request")
        if not isinstance(reason, str) or not reason.strip():
            problems.add("reason", "must be a non-empty string")
        problems.raise_if_any()
        phone = to_e164(body.get("phoneNumber"), "phoneNumber")
        channels = frozenset(Channel) if channel == ALL else frozenset({Channel(channel)})
        now = self.clock.now()
        with self.store.db.begin() as conn:
            before = {
                r.id
                for r in self.store.contacts.list_suppressions(conn, organization_id, phone=phone)
            }
            cancelled = self.engine.react(
                conn,
                organization_id,
                phone,
                ContactReaction(
                    suppress=channels, revoke_consent=channels, reason=reason, source="api"
                ),
                now,
            )
            records = self.store.contacts.list_suppressions(conn, organization_id, phone=phone)
        record = next(r for r in records if r.channel == channel)
        return SuppressionAdded(record, record.id not in before, cancelled)

    def get_suppression(self, organization_id: str, suppression_id: str) -> SuppressionRecord:
        with self.store.db.begin() as conn:
            record = self.store.contacts.get_suppression(conn, organization_id, suppression_id)
        if record is None:
            raise NotFound(f"suppression {suppression_id} not found", field="suppressionId")
        return record

    def unsuppress(
        self, organization_id: str, suppression_id: str, reason: str | None
    ) -> SuppressionRecord:
        """Removal is recorded (when and why), never deleted: the list is an audit trail."""
        if reason is not None and not reason.strip():
            raise ValidationFailed(FieldError("reason", "must be a non-empty string"))
        with self.store.db.begin() as conn:
            record = self.store.contacts.get_suppression(conn, organization_id, suppression_id)
            if record is None:
                raise NotFound(f"suppression {suppression_id} not found", field="suppressionId")
            if not record.active:
                raise Conflict(f"suppression {suppression_id} was already removed", field="id")
            self.store.contacts.remove_suppression(
                conn,
                organization_id,
                suppression_id,
                reason or "removed by request",
                self.clock.now(),
            )
            removed = self.store.contacts.get_suppression(conn, organization_id, suppression_id)
        assert removed is not None
        return removed

    def list_suppressions(
        self,
        organization_id: str,
        *,
        phone: str | None,
        include_removed: bool,
        limit: int,
        cursor: str | None,
    ) -> tuple[list[SuppressionRecord], str | None]:
        number = to_e164(phone, "phoneNumber") if phone else None
        with self.store.db.begin() as conn:
            after: tuple[datetime, str] | None = None
            if cursor:
                anchor = self.store.contacts.get_suppression(conn, organization_id, cursor)
                if anchor is None:
                    raise ValidationFailed(FieldError("cursor", "unknown cursor"))
                after = (anchor.created_at, anchor.id)
            rows = self.store.contacts.list_suppressions(
                conn,
                organization_id,
                phone=number,
                include_removed=include_removed,
                limit=limit + 1,
                after=after,
            )
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, (rows[-1].id if more and rows else None)

    def check(self, organization_id: str, phone: str | None) -> dict[str, Any]:
        number = to_e164(phone, "phoneNumber")
        with self.store.db.begin() as conn:
            entries = self.store.contacts.list_suppressions(conn, organization_id, phone=number)
            consent = self.store.contacts.consented_channels(conn, organization_id, number)
        channels = sorted({c.value for r in entries for c in r.channels})
        return {
            "phoneNumber": number,
            "suppressed": bool(channels),
            "channels": channels,
            "consent": sorted(c.value for c in consent),
            "entries": entries,
        }

    # -- inbound texts and consent ------------------------------------------------------

    def inbound_text(self, organization_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """A text agent forwards a contact's reply; an opt-out word suppresses texts."""
        problems = ProblemCollector()
        for key in body:
            if key not in ("phoneNumber", "body"):
                problems.add(key, "unknown field; expected phoneNumber and body")
        text = body.get("body")
        if not isinstance(text, str):
            problems.add("body", "is required: the text of the reply")
        problems.raise_if_any()
        assert isinstance(text, str)
        phone = to_e164(body.get("phoneNumber"), "phoneNumber")
        reaction = react_to_inbound_text(text, stop_revokes_all=self.compliance.stop_revokes_all)
        cancelled = 0
        now = self.clock.now()
        with self.store.db.begin() as conn:
            if reaction is not None:
                cancelled = self.engine.react(conn, organization_id, phone, reaction, now)
            # Executions of the number that wait for a reply take it (after the opt-out, so
            # an execution the opt-out cancelled takes nothing).
            waiting = self.engine.route_reply(conn, organization_id, phone, text, now)
        if waiting:
            self.engine.wakeup.set()
        return {
            "phoneNumber": phone,
            "optedOut": reaction is not None,
            "suppressedChannels": sorted(c.value for c in reaction.suppress) if reaction else [],
            "cancelledCount": cancelled,
            "waitingExecutions": waiting,
        }

    def grant_consent(self, organization_id: str, body: dict[str, Any]) -> dict[str, Any]:
        problems = ProblemCollector()
        for key in body:
            if key not in ("phoneNumber", "channel"):
                problems.add(key, "unknown field; expected phoneNumber and channel")
        channel = body.get("channel", Channel.TEXT.value)
        if channel not in (Channel.CALL.value, Channel.TEXT.value):
            problems.add("channel", "must be CALL or TEXT")
        problems.raise_if_any()
        phone = to_e164(body.get("phoneNumber"), "phoneNumber")
        now = self.clock.now()
        with self.store.db.begin() as conn:
            granted = self.store.contacts.grant_consent(
                conn,
                consent_id=str(uuid.uuid4()),
                organization_id=organization_id,
                phone=phone,
                channel=Channel(channel),
                source="api",
                now=now,
            )
            if granted:
                self.engine.events.contacts_consented(
                    conn, [(organization_id, phone, channel, "api", None)], now
                )
        return self.check(organization_id, phone)

    # -- explain ------------------------------------------------------------------------

    def explain(
        self,
        organization_id: str,
        *,
        phone: str | None,
        zipcode: str | None,
        state: str | None,
        channel: str,
        at: str | None,
        workflow_id: str | None,
        needs_tcpa: bool,
    ) -> dict[str, Any]:
        number = to_e164(phone, "phone")
        problems = ProblemCollector()
        if channel not in (Channel.CALL.value, Channel.TEXT.value):
            problems.add("channel", "must be CALL or TEXT")
        zip5, state_code = parse_location(zipcode or None, state or None, "", problems)
        instant = self.clock.now() if at is None else parse_instant(at, "at", problems)
        problems.raise_if_any()
        assert instant is not None
        with self.store.db.begin() as conn:
            version = None
            if workflow_id is not None:
                workflow = self.store.workflows.get_workflow(conn, organization_id, workflow_id)
                if workflow is None:
                    raise NotFound(f"workflow {workflow_id} not found", field="workflowId")
                version = self.store.workflows.get_version(conn, workflow.version_id)
            answer = self.compliance.explain(
                conn,
                organization_id,
                Lead(
                    phone=number,
                    zipcode=zip5,
                    state=state_code,
                ),
                Channel(channel),
                instant,
                version=version,
                needs_tcpa=needs_tcpa,
            )
        answer["phone"] = number
        return answer
