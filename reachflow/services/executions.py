"""Executions as an application service: create (one or bulk), read, control, cancel."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from reachflow.domain.decider import (
    Cancelled,
    Event,
    ExecutionState,
    MetadataMerged,
    Paused,
    Resumed,
    new_execution,
)
from reachflow.domain.enums import ExecutionStatus
from reachflow.domain.errors import (
    FieldError,
    IllegalTransition,
    NotFound,
    ProblemCollector,
    ReachflowError,
    Refused,
    Suppressed,
    ValidationFailed,
)
from reachflow.domain.instants import read_instant as parse_instant
from reachflow.runtime.clock import Clock
from reachflow.runtime.embedded.engine import Engine
from reachflow.services.idempotency import Claim
from reachflow.services.phones import to_e164
from reachflow.services.validation import DEFAULT_LIMITS, FieldLimits, check_size
from reachflow.store.executions import ExecutionFilter, NewExecution
from reachflow.store.records import EventRecord, ExecutionRecord, StepRecord, WorkflowRecord
from reachflow.store.store import Store

LEAD_FIELDS = frozenset(
    {
        "customerLeadId",
        "primaryPhone",
        "zipcode",
        "state",
        "forwardingPhoneNumber",
        "variables",
        "metadata",
        "priorityDate",
        "startAt",
        "attempt",
    }
)


@dataclass(frozen=True, slots=True)
class ExecutionView:
    record: ExecutionRecord
    steps: list[StepRecord]
    definition: dict[str, Any]


@dataclass(frozen=True, slots=True)
class BulkRow:
    success: bool
    execution_id: str | None
    customer_lead_id: str | None
    error: str | None


class ExecutionService:
    def __init__(
        self,
        store: Store,
        engine: Engine,
        clock: Clock,
        *,
        bulk_limit: int,
        insert_batch: int,
        limits: FieldLimits = DEFAULT_LIMITS,
    ) -> None:
        self.limits = limits
        self.store = store
        self.engine = engine
        self.clock = clock
        self.bulk_limit = bulk_limit
        self.insert_batch = insert_batch

    # -- create -----------------------------------------------------------------------------

    def create(
        self,
        organization_id: str,
        workflow_id: str,
        body: dict[str, Any],
        *,
        claim: Claim | None = None,
    ) -> ExecutionView:
        """One execution; with ``claim``, its idempotency key is recorded with it."""
        now = self.clock.now()
        with self.store.db.begin() as conn:
            row = self.start_in(conn, organization_id, workflow_id, body, now)
            if claim is not None:
                claim.record(conn, {"executionId": row.id}, now)
        self.engine.wakeup.set()
        return self.get(organization_id, workflow_id, row.id)

    def start_in(
        self, conn: Any, organization_id: str, workflow_id: str, body: object, now: datetime
    ) -> NewExecution:
        """One execution of the workflow for the lead ``body``, in the caller's transaction
        (the public sessions start their runs so); the caller sets ``engine.wakeup`` after
        its commit."""
        workflow = self._runnable_workflow(conn, organization_id, workflow_id)
        row = self._new_row(organization_id, workflow, body, now, "")
        self.store.contacts.lock_contacts(conn, [(organization_id, row.primary_phone)])
        self._refuse_suppressed(conn, row, "")
        self.store.executions.insert_executions(conn, [row], now)
        return row

    def create_bulk(
        self,
        organization_id: str,
        workflow_id: str,
        leads: object,
        *,
        claim: Claim | None = None,
    ) -> list[BulkRow]:
        if not isinstance(leads, list) or not leads:
            raise ValidationFailed(FieldError("leads", "must be a non-empty list of leads"))
        if len(leads) > self.bulk_limit:
            raise ValidationFailed(
                FieldError(
                    "leads", f"at most {self.bulk_limit} leads per request, got {len(leads)}"
                )
            )
        now = self.clock.now()
        with self.store.db.begin() as conn:
            workflow = self._runnable_workflow(conn, organization_id, workflow_id)
            results: list[BulkRow | NewExecution] = []
            for i, lead in enumerate(leads):
                try:
                    results.append(
                        self._new_row(organization_id, workflow, lead, now, f"leads[{i}].")
                    )
                except ReachflowError as exc:
                    results.append(BulkRow(False, None, _lead_id(lead), exc.message))
            rows = [r for r in results if isinstance(r, NewExecution)]
            self.store.contacts.lock_contacts(
                conn, {(organization_id, r.primary_phone) for r in rows}
            )
            # One read of the suppression list for every number in the request.
            suppressed = self.store.contacts.suppressed_everywhere_of(
                conn, organization_id, [r.primary_phone for r in rows]
            )
            accepted = [r for r in rows if r.primary_phone not in suppressed]
            for start in range(0, len(accepted), self.insert_batch):
                self.store.executions.insert_executions(
                    conn, accepted[start : start + self.insert_batch], now
                )
            answer = [_bulk_row(r, suppressed) for r in results]
            if claim is not None:
                claim.record(conn, {"rows": [bulk_row_json(r) for r in answer]}, now)
        self.engine.wakeup.set()
        return answer

    def _runnable_workflow(
        self, conn: Any, organization_id: str, workflow_id: str
    ) -> WorkflowRecord:
        """The workflow, read under a shared lock: a create and a state change of the
        workflow (deactivate, pause, cancel, delete) serialize, so after the change returns no
        execution of it starts. Then the contacts' locks serialize the create with a
        suppression of the number (lock order everywhere: workflow, executions, contacts,
        outbox)."""
        workflow = self.store.workflows.get_workflow(
            conn, organization_id, workflow_id, lock="share"
        )
        if workflow is None:
            raise NotFound(f"workflow {workflow_id} not found", field="workflowId")
        if not workflow.active:
            raise Refused(
                f"workflow {workflow_id} is not active; set active=true to start executions",
                field="workflowId",
            )
        return workflow

    def _refuse_suppressed(self, conn: Any, row: NewExecution, prefix: str) -> None:
        """A number suppressed on every channel gets no execution: refused, nothing stored."""
        reason = self.store.contacts.suppressed_everywhere(
            conn, row.organization_id, row.primary_phone
        )
        if reason is not None:
            raise Suppressed(
                f"{row.primary_phone} is on the suppression list ({reason})",
                field=f"{prefix}primaryPhone",
            )

    def _new_row(
        self,
        organization_id: str,
        workflow: WorkflowRecord,
        body: object,
        now: datetime,
        prefix: str,
    ) -> NewExecution:
        lead = validate_lead(body, prefix, self.limits)
        execution_id = str(uuid.uuid4())
        state = new_execution(
            execution_id,
            now=now,
            start_at=lead["startAt"],
            variables=lead["variables"],
            metadata=lead["metadata"],
        )
        return NewExecution(
            id=execution_id,
            organization_id=organization_id,
            workflow_id=workflow.id,
            version_id=workflow.version_id,
            customer_lead_id=lead["customerLeadId"],
            primary_phone=lead["primaryPhone"],
            zipcode=lead["zipcode"],
            state=lead["state"],
            forwarding_phone_number=lead["forwardingPhoneNumber"],
            variables=lead["variables"],
            metadata=lead["metadata"],
            priority_date=lead["priorityDate"],
            start_at=lead["startAt"],
            engine=state,
        )

    def start_pending(self, conn: Any, workflow: WorkflowRecord, now: datetime) -> None:
        """Leads enrolled while the workflow was draft or paused start now, on ``workflow``'s
        version (read in this transaction: the current one)."""
        flt = ExecutionFilter(
            organization_id=workflow.organization_id,
            workflow_id=workflow.id,
            statuses=(ExecutionStatus.CREATED.value,),
        )
        for record in self.store.executions.lock_active(conn, flt):
            if not record.engine.awaits_start:
                continue
            start = max(now, record.start_at) if record.start_at else now
            self.store.executions.repin(
                conn, record, workflow.version_id, replace(record.engine, wake_at=start)
            )
        self.engine.wakeup.set()

    # -- read -------------------------------------------------------------------------------

    def get(self, organization_id: str, workflow_id: str, execution_id: str) -> ExecutionView:
        with self.store.db.read() as conn:
            record = self._find(conn, organization_id, workflow_id, execution_id)
            steps = self.store.executions.steps_of(conn, [record.id])[record.id]
            version, _ = self.engine.version(conn, record.version_id)
        return ExecutionView(record, steps, version.definition)

    def list(
        self,
        flt: ExecutionFilter,
        *,
        limit: int,
        cursor: str | None,
        enriched: bool,
        newest_first: bool = False,
    ) -> tuple[list[ExecutionView], str | None]:
        with self.store.db.read() as conn:
            after = None
            if cursor:
                anchor = self.store.executions.get_execution(conn, flt.organization_id, cursor)
                if anchor is None:
                    raise ValidationFailed(FieldError("cursor", "unknown cursor"))
                after = (anchor.created_at, anchor.id)
            records = self.store.executions.list_executions(
                conn, flt, limit=limit + 1, after=after, newest_first=newest_first
            )
            more = len(records) > limit
            records = records[:limit]
            steps = (
                self.store.executions.steps_of(conn, [r.id for r in records])
                if enriched
                else {r.id: [] for r in records}
            )
            views = [
                # The definition also when not enriched: ``stepIndex`` is read from it.
                ExecutionView(r, steps[r.id], self.engine.version(conn, r.version_id)[0].definition)
                for r in records
            ]
        return views, (records[-1].id if more and records else None)

    def count_by_node(self, organization_id: str, workflow_id: str) -> dict[str, int]:
        """How many active executions of the workflow stand at each node now."""
        with self.store.db.read() as conn:
            return self.store.executions.count_by_node(conn, organization_id, workflow_id)

    def count_by_workflow(
        self, organization_id: str, since: datetime | None = None
    ) -> dict[str, dict[str, int]]:
        """Executions per workflow and status, created since ``since`` (all if None)."""
        with self.store.db.read() as conn:
            return self.store.executions.count_by_workflow(conn, organization_id, since)

    def events(
        self, organization_id: str, workflow_id: str, execution_id: str
    ) -> list[EventRecord]:
        with self.store.db.read() as conn:
            record = self._find(conn, organization_id, workflow_id, execution_id)
            return self.store.executions.events_of(conn, record.id)

    # -- control ----------------------------------------------------------------------------

    def update(
        self, organization_id: str, workflow_id: str, execution_id: str, body: object
    ) -> ExecutionView:
        """Feather's PUT: ``status`` PAUSED / RUNNING / CANCELLED, ``metadata`` merges.

        The status the execution already has is a no-op (seed 001's example sends
        ``{"status": "CREATED", "metadata": {}}`` to a new execution); any other status the
        engine alone sets (CREATED, COMPLETED, FAILED) is a 409 ``ILLEGAL_TRANSITION``.
        """
        if not isinstance(body, dict):
            raise ValidationFailed(FieldError("body", "must be an object"))
        problems = ProblemCollector()
        for key in body:
            if key not in ("status", "metadata"):
                problems.add(key, "unknown field; PUT takes status and metadata")
        current = self._current(organization_id, workflow_id, execution_id)
        events: list[Event] = []
        if "metadata" in body:
            if not isinstance(body["metadata"], dict):
                problems.add("metadata", "must be an object")
            elif body["metadata"]:
                merged = {**current.engine.metadata, **body["metadata"]}
                check_size(merged, "metadata", self.limits.metadata_bytes, problems)
                events.append(MetadataMerged(body["metadata"]))
        status = body.get("status")
        transitions: dict[str, Event] = {
            "PAUSED": Paused(),
            "RUNNING": Resumed(),
            "CANCELLED": Cancelled("cancelled by request"),
        }
        if status is not None and status not in {s.value for s in ExecutionStatus}:
            problems.add("status", f"unknown status {status!r}")
        problems.raise_if_any()
        if status is not None and status != current.status:
            if status not in transitions:
                raise IllegalTransition(
                    f"cannot set status {status} on a {current.status} execution; "
                    "use PAUSED, RUNNING or CANCELLED",
                    field="status",
                )
            events.append(transitions[status])
        self.apply(organization_id, workflow_id, execution_id, events)
        return self.get(organization_id, workflow_id, execution_id)

    def _current(
        self, organization_id: str, workflow_id: str, execution_id: str
    ) -> ExecutionRecord:
        with self.store.db.read() as conn:
            return self._find(conn, organization_id, workflow_id, execution_id)

    def apply(
        self,
        organization_id: str,
        workflow_id: str | None,
        execution_id: str,
        events: Sequence[Event],
    ) -> None:
        """Apply events atomically: all of them or, on an illegal one, none."""
        now = self.clock.now()
        with self.store.db.begin() as conn:
            record = self._find(conn, organization_id, workflow_id, execution_id, lock=True)
            for event in events:
                decision = self.engine.apply(conn, record, event, now)
                record = _with_state(record, decision.state)
        self.engine.wakeup.set()

    def cancel(self, organization_id: str, workflow_id: str, execution_id: str) -> ExecutionView:
        self.apply(organization_id, workflow_id, execution_id, [Cancelled("cancelled by request")])
        return self.get(organization_id, workflow_id, execution_id)

    def cancel_matching(
        self,
        organization_id: str,
        *,
        workflow_id: str | None = None,
        phone: str | None = None,
        customer_lead_id: str | None = None,
        reason: str = "cancelled by request",
    ) -> int:
        flt = ExecutionFilter(
            organization_id=organization_id,
            workflow_id=workflow_id,
            phone=phone,
            customer_lead_id=customer_lead_id,
        )
        with self.store.db.begin() as conn:
            return self.engine.cancel_where(conn, flt, reason, self.clock.now())

    def cancel_in(self, conn: Any, flt: ExecutionFilter, reason: str, now: datetime) -> int:
        """Cancel the matching active executions in the caller's transaction."""
        return self.engine.cancel_where(conn, flt, reason, now)

    def delete(self, organization_id: str, workflow_id: str, execution_id: str) -> None:
        with self.store.db.begin() as conn:
            record = self._find(conn, organization_id, workflow_id, execution_id, lock=True)
            self.store.executions.delete_execution(conn, record.id)

    def _find(
        self,
        conn: Any,
        organization_id: str,
        workflow_id: str | None,
        execution_id: str,
        *,
        lock: bool = False,
    ) -> ExecutionRecord:
        record = self.store.executions.get_execution(
            conn, organization_id, execution_id, workflow_id=workflow_id, lock=lock
        )
        if record is None:
            raise NotFound(f"execution {execution_id} not found", field="executionId")
        return record


def _with_state(record: ExecutionRecord, state: ExecutionState) -> ExecutionRecord:
    return replace(record, engine=state, status=state.status.value)


def bulk_row_json(row: BulkRow) -> dict[str, Any]:
    """A bulk row as an idempotency key keeps it (``bulk_row_of`` reads it back)."""
    return {
        "success": row.success,
        "executionId": row.execution_id,
        "customerLeadId": row.customer_lead_id,
        "error": row.error,
    }


def bulk_row_of(raw: dict[str, Any]) -> BulkRow:
    return BulkRow(raw["success"], raw["executionId"], raw["customerLeadId"], raw["error"])


def _lead_id(lead: object) -> str | None:
    return _str_or_none(lead.get("customerLeadId")) if isinstance(lead, dict) else None


def _bulk_row(row: BulkRow | NewExecution, suppressed: dict[str, str]) -> BulkRow:
    if isinstance(row, BulkRow):
        return row
    reason = suppressed.get(row.primary_phone)
    if reason is not None:
        message = f"{row.primary_phone} is on the suppression list ({reason})"
        return BulkRow(False, None, row.customer_lead_id, message)
    return BulkRow(True, row.id, row.customer_lead_id, None)


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def parse_location(
    zipcode: object, state: object, prefix: str, problems: ProblemCollector
) -> tuple[str | None, str | None]:
    """A contact's ZIP (as its 5 digits) and state (as its upper-case code); None when absent."""
    if zipcode is not None and (not isinstance(zipcode, str) or not is_zip(zipcode)):
        kind = "" if isinstance(zipcode, str) else "a string: "
        problems.add(f"{prefix}zipcode", f"must be {kind}a 5-digit US ZIP code (or ZIP+4)")
    if state is not None and (not isinstance(state, str) or not is_state(state)):
        kind = "" if isinstance(state, str) else "a string: "
        problems.add(f"{prefix}state", f"must be {kind}a two-letter US state code")
    return (
        zipcode[:5] if isinstance(zipcode, str) and is_zip(zipcode) else None,
        state.upper() if isinstance(state, str) and is_state(state) else None,
    )


def validate_lead(
    body: object, prefix: str = "", limits: FieldLimits = DEFAULT_LIMITS
) -> dict[str, Any]:
    problems = ProblemCollector()
    if not isinstance(body, dict):
        raise ValidationFailed(FieldError(prefix.rstrip(".") or "body", "must be an object"))
    for key in body:
        if key not in LEAD_FIELDS:
            problems.add(f"{prefix}{key}", "unknown field")
    out: dict[str, Any] = {}
    lead_id = body.get("customerLeadId")
    if lead_id is not None and not isinstance(lead_id, str):
        problems.add(f"{prefix}customerLeadId", "must be a string")
    elif lead_id is None or not lead_id.strip():
        problems.add(f"{prefix}customerLeadId", "is required: a non-empty string")
    out["customerLeadId"] = lead_id if isinstance(lead_id, str) else None
    for key in ("primaryPhone", "forwardingPhoneNumber"):
        raw = body.get(key)
        if raw is None and key == "forwardingPhoneNumber":
            out[key] = None
            continue
        try:
            out[key] = to_e164(raw, f"{prefix}{key}")
        except ValidationFailed as exc:
            problems.problems.extend(exc.problems)
            out[key] = None
    out["zipcode"], out["state"] = parse_location(
        body.get("zipcode"), body.get("state"), prefix, problems
    )
    for key in ("variables", "metadata"):
        value = body.get(key, {})
        if value is None:
            value = {}
        if not isinstance(value, dict):
            problems.add(f"{prefix}{key}", "must be an object")
            value = {}
        limit = limits.metadata_bytes if key == "metadata" else limits.variables_bytes
        check_size(value, f"{prefix}{key}", limit, problems)
        out[key] = value
    out["priorityDate"] = parse_instant(body.get("priorityDate"), f"{prefix}priorityDate", problems)
    out["startAt"] = parse_instant(body.get("startAt"), f"{prefix}startAt", problems)
    attempt = body.get("attempt")
    if attempt is not None and (isinstance(attempt, bool) or not isinstance(attempt, int)):
        problems.add(f"{prefix}attempt", "must be an integer")
    problems.raise_if_any()
    return out


def is_zip(value: str) -> bool:
    digits = value.replace("-", "")
    return value[:5].isdigit() and len(value) in (5, 10) and digits.isdigit()


US_STATES = frozenset(
    [
        "AL",
        "AK",
        "AZ",
        "AR",
        "CA",
        "CO",
        "CT",
        "DE",
        "DC",
        "FL",
        "GA",
        "HI",
        "ID",
        "IL",
        "IN",
        "IA",
        "KS",
        "KY",
        "LA",
        "ME",
        "MD",
        "MA",
        "MI",
        "MN",
        "MS",
        "MO",
        "MT",
        "NE",
        "NV",
        "NH",
        "NJ",
        "NM",
        "NY",
        "NC",
        "ND",
        "OH",
        "OK",
        "OR",
        "PA",
        "RI",
        "SC",
        "SD",
        "TN",
        "TX",
        "UT",
        "VT",
        "VA",
        "WA",
        "WV",
        "WI",
        "WY",
        "PR",
        "VI",
        "GU",
        "AS",
        "MP",
    ]
)


def is_state(value: str) -> bool:
    return value.upper() in US_STATES
