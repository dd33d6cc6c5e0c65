"""Public execution sessions (seed 004): start one on a ``public_execute`` workflow, read it with
its client token, confirm its payment by a signed webhook (``docs/public-sessions.md``).

A session of a free workflow starts its run (an execution) in the transaction that creates it.
A priced one waits for the payment webhook; an unpaid session is cancelled when
``payment_timeout`` passes (seen at its deadline by every read: ``domain.public_sessions``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection

from reachflow.agents.signing import BadSignature, new_secret, verify
from reachflow.domain import public_sessions as ps
from reachflow.domain.enums import ExecutionStatus
from reachflow.domain.errors import (
    Conflict,
    FieldError,
    Forbidden,
    NotFound,
    ProblemCollector,
    ReachflowError,
    Suppressed,
    Unauthorized,
    ValidationFailed,
)
from reachflow.domain.public_sessions import Fact, PublicEvent, PublicStatus, StatusChange
from reachflow.runtime.clock import Clock
from reachflow.services.executions import ExecutionService, validate_lead
from reachflow.services.idempotency import PUBLIC_SCOPE, Claim, IdempotencyService
from reachflow.services.validation import DEFAULT_LIMITS, FieldLimits, check_size
from reachflow.store.accounts import ApiKeyRecord
from reachflow.store.public_sessions import RunRecord, SessionRecord
from reachflow.store.store import Store

#: Payment statuses: a free session's, then a priced one's as its webhooks move it.
NOT_REQUIRED, UNPAID, FAILED, PAID = "not_required", "unpaid", "failed", "paid"
CANCELED = "canceled"
#: Shown (never stored) for an unpaid session past its deadline.
EXPIRED = "expired"
TOKEN_PREFIX = "rf_ct_"
SESSION_TEXT_MAX = 200
METADATA_MAX_BYTES = 16_384


@dataclass(frozen=True, slots=True)
class PublicSettings:
    token_ttl: timedelta
    payment_timeout: timedelta
    #: The payment webhook secret of organizations that have none of their own ("": none).
    payment_secret: str = ""
    limits: FieldLimits = DEFAULT_LIMITS


@dataclass(frozen=True, slots=True)
class SessionView:
    session: SessionRecord
    run: RunRecord | None
    changes: list[StatusChange]
    events: list[PublicEvent]
    payment_status: str

    @property
    def status(self) -> PublicStatus:
        return self.changes[-1].status

    @property
    def status_reason(self) -> str:
        return self.changes[-1].reason

    @property
    def updated_at(self) -> datetime:
        return max(self.changes[-1].at, self.session.updated_at)

    @property
    def started_at(self) -> datetime | None:
        return self.run.started_at if self.run is not None else None

    @property
    def finished_at(self) -> datetime | None:
        if not self.status.is_terminal:
            return None
        if self.run is not None and self.run.completed_at is not None:
            return self.run.completed_at
        return self.changes[-1].at

    @property
    def response_payload(self) -> dict[str, Any] | None:
        """What the run ended with (its Feather status, disposition, outcome); None before."""
        if self.run is None or not ExecutionStatus(self.run.status).is_terminal:
            return None
        return {"status": self.run.status, "disposition": self.run.disposition, **self.run.outcome}


@dataclass(frozen=True, slots=True)
class Started:
    view: SessionView
    client_token: str


@dataclass(frozen=True, slots=True)
class PaymentApplied:
    view: SessionView
    applied: bool


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


class PublicSessionService:
    def __init__(
        self,
        store: Store,
        executions: ExecutionService,
        idempotency: IdempotencyService,
        clock: Clock,
        settings: PublicSettings,
    ) -> None:
        self.store = store
        self.executions = executions
        self.idempotency = idempotency
        self.clock = clock
        self.settings = settings

    # -- start ----------------------------------------------------------------------------

    def start(
        self, key: ApiKeyRecord, workflow_id: str, body: dict[str, Any], request_fingerprint: str
    ) -> tuple[Started, bool]:
        """A new session (or, for an ``idempotencyKey`` seen before with the same body, the
        same session with a new client token); returns it and whether it was a replay."""
        session = _check_body(body, self.settings.limits)
        organization_id = key.organization_id

        def create(claim: Claim | None) -> Started:
            return self._create(key, workflow_id, session, claim)

        def replay(result: dict[str, Any]) -> Started:
            return self._reissue(organization_id, str(result["sessionId"]))

        return self.idempotency.run(
            organization_id,
            PUBLIC_SCOPE,
            body.get("idempotencyKey"),
            request_fingerprint,
            create,
            replay,
            field="idempotencyKey",
        )

    def _create(
        self, key: ApiKeyRecord, workflow_id: str, body: dict[str, Any], claim: Claim | None
    ) -> Started:
        now = self.clock.now()
        organization_id = key.organization_id
        session_id = str(uuid.uuid4())
        lead_body = _lead_body(body, session_id)
        lead = validate_lead(lead_body, "requestPayload.", self.settings.limits)
        with self.store.db.begin() as conn:
            workflow = self.store.workflows.get_workflow(
                conn, organization_id, workflow_id, lock="share"
            )
            if workflow is None or not workflow.public_execute:
                raise NotFound(
                    f"workflow {workflow_id} not found, or not open to public execution",
                    field="id",
                )
            if not workflow.active:
                raise Conflict(f"workflow {workflow_id} is not active", field="id")
            reason = self.store.contacts.suppressed_everywhere(
                conn, organization_id, lead["primaryPhone"]
            )
            if reason is not None:
                raise Suppressed(
                    "the contact's number is on the suppression list",
                    field="requestPayload.primaryPhone",
                )
            priced = workflow.price_amount is not None
            record = SessionRecord(
                id=session_id,
                organization_id=organization_id,
                workflow_id=workflow.id,
                run_id=None,
                source_system=body["sourceSystem"],
                source_entity_type=body["sourceEntityType"],
                source_entity_id=body.get("sourceEntityId"),
                external_ref=body.get("externalRef"),
                idempotency_key=body.get("idempotencyKey"),
                client_safe_metadata=dict(body.get("clientSafeMetadata") or {}),
                request_payload=dict(body.get("requestPayload") or {}),
                initiated_by_type="publishable_key" if key.scope == "publishable" else "api_key",
                initiated_by_id=key.id,
                price_amount=workflow.price_amount,
                price_currency=workflow.price_currency,
                payment_status=UNPAID if priced else NOT_REQUIRED,
                checkout_session_id=f"cs_{secrets.token_urlsafe(24)}" if priced else None,
                order_id=None,
                payment_due_at=now + self.settings.payment_timeout if priced else None,
                created_at=now,
                updated_at=now,
            )
            self.store.public_sessions.insert_session(conn, record)
            status = PublicStatus.AWAITING_PAYMENT if priced else PublicStatus.WORKFLOW_QUEUED
            created: dict[str, Any] = {"status": status.value}
            if priced:
                created |= {"amount": workflow.price_amount, "currency": workflow.price_currency}
            self.store.public_sessions.log_session_event(
                conn, record, ps.SESSION_CREATED, now, created
            )
            if not priced:
                self._start_run(conn, record, now)
            token = self._issue_token(conn, record, now)
            if claim is not None:
                claim.record(conn, {"sessionId": session_id}, now)
        self.executions.engine.wakeup.set()
        return Started(self.view_of(organization_id, session_id), token)

    def _start_run(self, conn: Connection, record: SessionRecord, now: datetime) -> str:
        """The session's execution, in ``conn``'s transaction."""
        row = self.executions.start_in(
            conn, record.organization_id, record.workflow_id, _lead_body_of(record), now
        )
        self.store.public_sessions.update_session(
            conn, record.id, {"run_id": row.id, "updated_at": now}
        )
        self.store.public_sessions.log_session_event(
            conn, record, ps.RUN_STARTED, now, {"runId": row.id}
        )
        return row.id

    def _issue_token(self, conn: Connection, record: SessionRecord, now: datetime) -> str:
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        self.store.public_sessions.insert_token(
            conn,
            token_hash=hash_token(token),
            record=record,
            now=now,
            expires_at=now + self.settings.token_ttl,
        )
        return token

    def _reissue(self, organization_id: str, session_id: str) -> Started:
        """An idempotent replay: the same session, and a new client token for it (the first
        one is stored hashed and cannot be shown again)."""
        now = self.clock.now()
        with self.store.db.begin() as conn:
            record = self.store.public_sessions.get_session(conn, session_id)
            if record is None or record.organization_id != organization_id:
                raise NotFound(f"execution {session_id} not found", field="id")
            token = self._issue_token(conn, record, now)
        return Started(self.view_of(organization_id, session_id), token)

    # -- read -----------------------------------------------------------------------------

    def authorize(self, session_id: str, token: str | None) -> SessionRecord:
        """The session ``token`` may read: 404 for an unknown session, 401 without a token,
        403 for a token that is unknown, altered, expired or another session's."""
        now = self.clock.now()
        with self.store.db.read() as conn:
            record = self.store.public_sessions.get_session(conn, session_id)
            if record is None:
                raise NotFound(f"execution {session_id} not found", field="id")
            if not token:
                raise Unauthorized(
                    "a client token is required: ?token=<clientToken> or "
                    "Authorization: Bearer <clientToken>",
                    field="token",
                )
            given = hash_token(token)
            found = self.store.public_sessions.find_token(conn, given)
        if found is None or not hmac.compare_digest(found[1].encode(), given.encode()):
            raise Forbidden("this client token is not valid", field="token")
        token_record, _ = found
        if token_record.session_id != session_id:
            raise Forbidden("this client token is for another execution", field="token")
        if token_record.expires_at <= now:
            raise Forbidden("this client token has expired", field="token")
        return record

    def view_of(self, organization_id: str, session_id: str) -> SessionView:
        with self.store.db.read() as conn:
            record = self.store.public_sessions.get_session(conn, session_id)
            if record is None or record.organization_id != organization_id:
                raise NotFound(f"execution {session_id} not found", field="id")
            return self._view(conn, record, self.clock.now())

    def _view(self, conn: Connection, record: SessionRecord, now: datetime) -> SessionView:
        sessions = self.store.public_sessions
        facts = [
            Fact(f"se_{e.id}", e.kind, e.at, e.data)
            for e in sessions.session_events(conn, record.id)
        ]
        run = sessions.run_of(conn, record.run_id) if record.run_id else None
        if record.run_id and run is not None:
            facts += [
                Fact(f"ev_{e.id}", e.kind, e.at, e.data)
                for e in sessions.run_events(conn, record.run_id)
            ]
        unpaid = record.payment_status in (UNPAID, FAILED)
        minutes = int(self.settings.payment_timeout.total_seconds() // 60)
        facts = ps.expired(
            facts, unpaid=unpaid, due_at=record.payment_due_at, now=now, minutes=minutes
        )
        if record.run_id:
            ended = (run.completed_at or run.updated_at) if run is not None else facts[-1].at
            facts = ps.reconciled(
                facts,
                ExecutionStatus(run.status) if run is not None else None,
                run_gone=run is None,
                at=ended,
            )
        payment = record.payment_status
        if unpaid and record.payment_due_at is not None and now >= record.payment_due_at:
            payment = EXPIRED
        events = [e for e in (ps.present(f) for f in facts) if e is not None]
        return SessionView(record, run, ps.status_changes(facts), events, payment)

    # -- payment webhook ------------------------------------------------------------------

    def apply_payment(
        self, headers: Mapping[str, str], raw_body: bytes, body: dict[str, Any]
    ) -> PaymentApplied:
        """A signed payment webhook: ``paymentStatus`` paid (the run starts), failed (the
        session keeps waiting) or canceled (it ends). A message id seen before, or a status
        already applied, changes nothing."""
        session_id = _text(body.get("executionId"))
        checkout = _text(body.get("checkoutSessionId"))
        with self.store.db.read() as conn:
            if session_id is not None:
                record = self.store.public_sessions.get_session(conn, session_id)
            elif checkout is not None:
                record = self.store.public_sessions.find_by_checkout(conn, checkout)
            else:
                raise ValidationFailed(
                    FieldError("checkoutSessionId", "give checkoutSessionId or executionId")
                )
            if record is None or (checkout is not None and record.checkout_session_id != checkout):
                raise NotFound("no public execution has this checkout session", field="id")
            secret = (
                self.store.public_sessions.payment_secret(conn, record.organization_id)
                or self.settings.payment_secret
            )
        if not secret:
            raise Unauthorized(
                "no payment webhook secret is set for this organization "
                "(reachflow payment-secret create, or REACHFLOW_PAYMENT_WEBHOOK_SECRET)",
                field="webhook-signature",
            )
        try:
            message_id = verify(secret, headers, raw_body)
        except BadSignature as exc:
            raise Unauthorized(
                f"payment webhook signature refused: {exc}", field="webhook-signature"
            ) from exc
        status = body.get("paymentStatus")
        now = self.clock.now()
        with self.store.db.begin() as conn:
            if not self.store.agent_calls.remember_message(
                conn, message_id, record.organization_id, now
            ):
                applied = False  # the sender's retry of a message already taken
            else:
                locked = self.store.public_sessions.get_session(conn, record.id, lock=True)
                assert locked is not None
                applied = self._apply(conn, locked, str(status), body, now)
        self.executions.engine.wakeup.set()
        return PaymentApplied(self.view_of(record.organization_id, record.id), applied)

    def _apply(
        self,
        conn: Connection,
        record: SessionRecord,
        status: str,
        body: dict[str, Any],
        now: datetime,
    ) -> bool:
        order = _text(body.get("orderId"))
        sessions = self.store.public_sessions
        if record.payment_status == NOT_REQUIRED:
            raise Conflict("this execution needs no payment", field="paymentStatus")
        if record.payment_status == PAID:
            if status == PAID and order == record.order_id:
                return False  # the same payment again
            raise Conflict(
                "this execution is already paid; a refund is the payment system's business",
                field="paymentStatus",
            )
        if record.payment_status == CANCELED:
            if status == CANCELED:
                return False
            raise Conflict("this execution's payment was canceled", field="paymentStatus")
        due = record.payment_due_at
        if due is not None and now >= due:
            raise Conflict(
                "this execution expired before its payment; no run starts "
                "(refund it in the payment system)",
                field="paymentStatus",
            )
        if status == FAILED:
            sessions.update_session(conn, record.id, {"payment_status": FAILED, "updated_at": now})
            sessions.log_session_event(conn, record, ps.PAYMENT_FAILED, now, _order(order))
            return True
        if status == CANCELED:
            sessions.update_session(
                conn, record.id, {"payment_status": CANCELED, "updated_at": now}
            )
            sessions.log_session_event(conn, record, ps.PAYMENT_CANCELED, now, _order(order))
            return True
        _check_amount(record, body)
        sessions.update_session(
            conn, record.id, {"payment_status": PAID, "order_id": order, "updated_at": now}
        )
        sessions.log_session_event(conn, record, ps.PAYMENT_CONFIRMED, now, _order(order))
        try:
            with conn.begin_nested():
                self._start_run(conn, record, now)
        except ReachflowError as exc:
            # Paid, but the run cannot start (the workflow was deactivated or deleted, the
            # number suppressed since): the session fails with the reason, for a refund.
            sessions.log_session_event(conn, record, ps.RUN_REFUSED, now, {"reason": exc.message})
        return True

    def set_payment_secret(self, organization: str) -> tuple[str, str]:
        """A new payment webhook secret for ``organization`` (created if needed), replacing
        any before; returns (organization id, secret)."""
        secret = new_secret()
        now = self.clock.now()
        with self.store.db.begin() as conn:
            org_id = self.store.accounts.ensure_organization(conn, organization, now)
            self.store.public_sessions.set_payment_secret(conn, org_id, secret, now)
        return org_id, secret


# -- bodies ---------------------------------------------------------------------------------

SESSION_FIELDS = (
    "sourceSystem",
    "sourceEntityType",
    "sourceEntityId",
    "externalRef",
    "idempotencyKey",
    "requestPayload",
    "clientSafeMetadata",
)


def _check_body(body: dict[str, Any], limits: FieldLimits) -> dict[str, Any]:
    """The session fields (the API's model checked types first); the contact in
    ``requestPayload`` is checked like any execution's (``validate_lead``)."""
    problems = ProblemCollector()
    for key in body:
        if key not in SESSION_FIELDS:
            problems.add(key, "unknown field")
    for key in ("sourceSystem", "sourceEntityType"):
        value = body.get(key)
        if not isinstance(value, str) or not value.strip():
            problems.add(key, "is required: a non-empty string")
    for key in ("sourceSystem", "sourceEntityType", "sourceEntityId", "externalRef"):
        value = body.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > SESSION_TEXT_MAX):
            problems.add(key, f"must be a string of at most {SESSION_TEXT_MAX} characters")
    for key in ("requestPayload", "clientSafeMetadata"):
        value = body.get(key)
        if value is not None and not isinstance(value, dict):
            problems.add(key, "must be an object")
    metadata = body.get("clientSafeMetadata")
    if isinstance(metadata, dict):
        check_size(metadata, "clientSafeMetadata", METADATA_MAX_BYTES, problems)
    if not isinstance(body.get("requestPayload"), dict):
        problems.add("requestPayload", "is required: the contact (primaryPhone, ...)")
    problems.raise_if_any()
    return body


def _lead_body(body: dict[str, Any], session_id: str) -> dict[str, Any]:
    """The execution's lead: ``requestPayload``, its ``customerLeadId`` defaulting to
    ``sourceEntityId`` (else the session id), its metadata naming the session."""
    payload = dict(body.get("requestPayload") or {})
    payload.setdefault("customerLeadId", body.get("sourceEntityId") or session_id)
    metadata = payload.get("metadata")
    link = {
        "id": session_id,
        "sourceSystem": body.get("sourceSystem"),
        "sourceEntityType": body.get("sourceEntityType"),
        "sourceEntityId": body.get("sourceEntityId"),
        "externalRef": body.get("externalRef"),
    }
    payload["metadata"] = {
        **(metadata if isinstance(metadata, dict) else {}),
        "publicSession": link,
    }
    if metadata is not None and not isinstance(metadata, dict):
        payload["metadata"] = metadata  # refused by validate_lead, under its own name
    return payload


def _lead_body_of(record: SessionRecord) -> dict[str, Any]:
    return _lead_body(
        {
            "requestPayload": record.request_payload,
            "sourceSystem": record.source_system,
            "sourceEntityType": record.source_entity_type,
            "sourceEntityId": record.source_entity_id,
            "externalRef": record.external_ref,
        },
        record.id,
    )


def _check_amount(record: SessionRecord, body: dict[str, Any]) -> None:
    """A webhook that states the amount or currency must state the session's price."""
    amount, currency = body.get("amount"), body.get("currency")
    if amount is not None and amount != record.price_amount:
        raise Conflict(
            f"the amount paid ({amount}) is not the price ({record.price_amount})", field="amount"
        )
    if currency is not None and str(currency).lower() != record.price_currency:
        raise Conflict(
            f"the currency paid ({currency}) is not the price's ({record.price_currency})",
            field="currency",
        )


def _order(order: str | None) -> dict[str, Any]:
    return {"orderId": order} if order else {}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
