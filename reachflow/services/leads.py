"""Leads of a graph workflow: enrolment (CSV or JSON), listing, removal, history, variable keys.

A lead is an execution: the Feather endpoints see it too. Leads enrolled while the workflow is
a draft (or paused) wait without a timer and start when it is activated (or resumed).
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, Literal

from reachflow.domain.compile import compile_definition
from reachflow.domain.decider import Cancelled, new_execution
from reachflow.domain.enums import Channel, ExecutionStatus
from reachflow.domain.errors import (
    Conflict,
    FieldError,
    NotFound,
    ProblemCollector,
    ValidationFailed,
)
from reachflow.domain.graph import NodeKind
from reachflow.runtime.clock import Clock
from reachflow.runtime.embedded.engine import Engine
from reachflow.services.executions import parse_location
from reachflow.services.idempotency import Claim
from reachflow.services.phones import to_e164
from reachflow.services.validation import DEFAULT_LIMITS, FieldLimits, check_size
from reachflow.store.executions import ExecutionFilter, NewExecution
from reachflow.store.records import EventRecord, ExecutionRecord, StepRecord, WorkflowRecord
from reachflow.store.store import Store

#: Lead status (DialNexa's list vocabulary) <- execution status.
LEAD_STATUS = {
    ExecutionStatus.CREATED.value: "pending",
    ExecutionStatus.RUNNING.value: "in_progress",
    ExecutionStatus.PAUSED.value: "in_progress",
    ExecutionStatus.COMPLETED.value: "completed",
    ExecutionStatus.CANCELLED.value: "removed",
    ExecutionStatus.FAILED.value: "failed",
}
#: Columns that describe the contact rather than becoming variables only.
LOCATION_COLUMNS = ("zipcode", "state")
RESERVED_COLUMNS = frozenset({"phone_number", "customer_lead_id", "metadata"})
MAX_LEADS = 10_000


@dataclass(frozen=True, slots=True)
class Enrolled:
    workflow_id: str
    count: int


def parse_lead_csv(raw: bytes) -> list[dict[str, Any]]:
    """Rows of a CSV upload as dicts; a ``phone_number`` column is required."""
    return read_lead_csv(raw)[0]


def read_lead_csv(raw: bytes) -> tuple[list[dict[str, Any]], list[int]]:
    """Rows of a CSV upload as dicts, and the file line each row starts on (the header is
    line 1; blank rows are skipped, a quoted cell may span lines)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationFailed(FieldError("file", "must be UTF-8 CSV text")) from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None) or []
        if "phone_number" not in [c.strip() for c in header]:
            raise ValidationFailed(FieldError("file", "a phone_number column is required"))
        rows: list[dict[str, Any]] = []
        lines: list[int] = []
        ended = reader.line_num  # the line the header ended on
        for values in reader:  # a blank line is an empty row here: it is counted, not kept
            starts, ended = ended + 1, reader.line_num
            # Cells beyond the header are dropped; a short row misses its last columns.
            cleaned = {k.strip(): v.strip() for k, v in zip(header, values, strict=False) if k}
            if any(cleaned.values()):
                rows.append({k: v for k, v in cleaned.items() if v != "" or k == "phone_number"})
                lines.append(starts)
    except csv.Error as exc:  # a stray quote or newline, an oversized field
        raise ValidationFailed(FieldError("file", f"not CSV: {exc}")) from exc
    return rows, lines


def batch_id(batch: str, index: int) -> str:
    """The id of a batch's ``index``-th row: a UUID (v4 form) whose last group counts up, so
    rows created together (same ``created_at``) list in upload order."""
    return str(uuid.UUID(batch + f"{index:012x}"))


@dataclass(frozen=True, slots=True)
class RowProblem:
    """Rows of an upload with the same problem: ``field`` is the column (CSV) or the first
    row's path (JSON); ``rows`` the CSV lines or the indexes into ``leads``."""

    field: str
    message: str
    rows: tuple[int, ...]


_ROW_PATH = re.compile(r"^leads\[(\d+)\](?:\.(.+))?$")


def grouped_row_problems(
    problems: list[FieldError], lines: list[int] | None
) -> list[RowProblem] | None:
    """Problems of lead rows grouped by reason (column and message), rows in order within a
    group, groups in the order first met; ``None`` if a problem is not about a row.

    ``lines`` maps row indexes to CSV lines; ``None`` for a JSON upload."""
    located: list[tuple[int, str, FieldError]] = []
    for problem in problems:
        match = _ROW_PATH.match(problem.field)
        if match is None:
            return None
        located.append((int(match.group(1)), match.group(2) or "", problem))
    groups: dict[tuple[str, str], list[int]] = {}
    firsts: dict[tuple[str, str], str] = {}
    for index, column, problem in sorted(located, key=lambda found: found[0]):
        key = (column, problem.message)
        row = lines[index] if lines is not None and index < len(lines) else index
        groups.setdefault(key, [])
        if row not in groups[key]:
            groups[key].append(row)
        firsts.setdefault(key, problem.field)
    out = []
    for (column, message), rows in groups.items():
        field = (column or "row") if lines is not None else firsts[(column, message)]
        out.append(RowProblem(field, message, tuple(rows)))
    return out


class RowsInvalid(ValidationFailed):
    """A lead upload refused: its row problems grouped by reason (``grouped_row_problems``).

    Each error item is ``{field, message, lines}`` for a CSV (file lines, the header is line
    1) or ``{field, message, leads}`` for JSON (indexes into ``leads``)."""

    def __init__(self, groups: list[RowProblem], *, csv_lines: bool) -> None:
        key = "lines" if csv_lines else "leads"
        super().__init__(
            [FieldError(g.field, f"{g.message} {_where(g.rows, csv_lines)}") for g in groups]
        )
        self.items = [{"field": g.field, "message": g.message, key: list(g.rows)} for g in groups]


def _where(rows: tuple[int, ...], csv_lines: bool) -> str:
    if csv_lines:
        return ("on line " if len(rows) == 1 else "on lines ") + ", ".join(map(str, rows))
    return "in " + ", ".join(f"leads[{i}]" for i in rows)


def regrouped(exc: ValidationFailed, lines: list[int] | None) -> ValidationFailed:
    """``exc`` as ``RowsInvalid`` when every problem is about a row, else ``exc``."""
    groups = grouped_row_problems(exc.problems, lines)
    if groups is None:
        return exc
    return RowsInvalid(groups, csv_lines=lines is not None)


def row_values(
    row: object, index: int, limits: FieldLimits = DEFAULT_LIMITS
) -> tuple[dict[str, Any], ProblemCollector]:
    """One lead row read without the database: its phone (E.164), location, variables and
    metadata, and every problem with it (named ``leads[<index>].<column>``)."""
    where = f"leads[{index}]"
    problems = ProblemCollector()
    if not isinstance(row, dict):
        problems.add(where, "must be an object")
        return {}, problems
    phone = None
    try:
        phone = to_e164(row.get("phone_number"), f"{where}.phone_number")
    except ValidationFailed as exc:
        problems.problems.extend(exc.problems)
    zipcode, state = parse_location(row.get("zipcode"), row.get("state"), f"{where}.", problems)
    metadata = row.get("metadata", {})
    if not isinstance(metadata, dict):
        problems.add(f"{where}.metadata", "must be an object")
        metadata = {}
    check_size(metadata, f"{where}.metadata", limits.metadata_bytes, problems)
    variables = {k: v for k, v in row.items() if k not in RESERVED_COLUMNS}
    check_size(variables, where, limits.variables_bytes, problems)
    values = {
        "phone": phone,
        "zipcode": zipcode,
        "state": state,
        "variables": variables,
        "metadata": metadata,
    }
    return values, problems


def rows_problems(rows: list[Any], limits: FieldLimits = DEFAULT_LIMITS) -> list[FieldError]:
    """Every problem ``row_values`` finds in ``rows`` (a refused upload reports them all)."""
    return [p for i, row in enumerate(rows) for p in row_values(row, i, limits)[1].problems]


class LeadService:
    def __init__(
        self, store: Store, engine: Engine, clock: Clock, limits: FieldLimits = DEFAULT_LIMITS
    ) -> None:
        self.limits = limits
        self.store = store
        self.engine = engine
        self.clock = clock

    def enroll(
        self,
        organization_id: str,
        workflow_id: str,
        rows: object,
        *,
        claim: Claim | None = None,
    ) -> Enrolled:
        """All or nothing: any bad row is a 400 listing every bad row, grouped by reason.
        With ``claim``, its idempotency key is recorded with the leads."""
        if not isinstance(rows, list) or not rows:
            raise ValidationFailed(FieldError("leads", "must be a non-empty list of leads"))
        if len(rows) > MAX_LEADS:
            raise ValidationFailed(FieldError("leads", f"at most {MAX_LEADS} leads per upload"))
        now = self.clock.now()
        with self.store.db.begin() as conn:
            # Under a shared lock: enrolment and the workflow's cancel or pause serialize.
            workflow = self._workflow(conn, organization_id, workflow_id, lock="share")
            if workflow.status in ("completed", "cancelled"):
                raise Conflict(f"workflow is {workflow.status}; it takes no new leads")
            starts = workflow.status == "active"
            problems: list[FieldError] = []
            new_rows: list[NewExecution] = []
            batch = uuid.uuid4().hex[:20]
            for i, row in enumerate(rows):
                try:
                    new_rows.append(
                        self._row(
                            conn, organization_id, workflow, row, i, now, starts, batch_id(batch, i)
                        )
                    )
                except ValidationFailed as exc:
                    problems.extend(exc.problems)
            if problems:
                raise ValidationFailed(problems)
            self.store.contacts.lock_contacts(
                conn, {(organization_id, r.primary_phone) for r in new_rows}
            )
            for start in range(0, len(new_rows), 500):
                self.store.executions.insert_executions(conn, new_rows[start : start + 500], now)
            if claim is not None:
                claim.record(conn, {"enrolled": len(new_rows)}, now)
        self.engine.wakeup.set()
        return Enrolled(workflow_id, len(new_rows))

    def _row(
        self,
        conn: Any,
        organization_id: str,
        workflow: WorkflowRecord,
        row: object,
        index: int,
        now: Any,
        starts: bool,
        execution_id: str,
    ) -> NewExecution:
        where = f"leads[{index}]"
        values, problems = row_values(row, index, self.limits)
        phone = values.get("phone")
        contacts = self.store.contacts
        if phone and contacts.suppressed_everywhere(conn, organization_id, phone) is not None:
            problems.add(f"{where}.phone_number", "is on the suppression list")
        problems.raise_if_any()
        assert isinstance(row, dict)
        phone, zipcode, state = values["phone"], values["zipcode"], values["state"]
        variables, metadata = values["variables"], values["metadata"]
        state_ = new_execution(execution_id, now=now, variables=variables, metadata=metadata)
        if not starts:
            state_ = replace(state_, wake_at=None)
        lead_id = row.get("customer_lead_id")
        return NewExecution(
            id=execution_id,
            organization_id=organization_id,
            workflow_id=workflow.id,
            version_id=workflow.version_id,
            customer_lead_id=str(lead_id) if lead_id is not None else None,
            primary_phone=phone,
            zipcode=zipcode,
            state=state,
            forwarding_phone_number=None,
            variables=variables,
            metadata=dict(metadata),
            priority_date=None,
            start_at=None,
            engine=state_,
        )

    def list(
        self,
        organization_id: str,
        workflow_id: str,
        *,
        page: int,
        limit: int,
        status: str | None,
        current_node_id: str | None,
    ) -> tuple[list[ExecutionRecord], int]:
        statuses: tuple[str, ...] | None = None
        if status is not None:
            wanted = "in_progress" if status in ("active", "running") else status
            statuses = tuple(k for k, v in LEAD_STATUS.items() if v == wanted)
            if not statuses:
                raise ValidationFailed(
                    FieldError(
                        "status", f"must be one of {', '.join(sorted(set(LEAD_STATUS.values())))}"
                    )
                )
        with self.store.db.begin() as conn:
            self._workflow(conn, organization_id, workflow_id)
            flt = ExecutionFilter(
                organization_id=organization_id,
                workflow_id=workflow_id,
                statuses=statuses,
                node_id=current_node_id,
            )
            return self.store.executions.page(conn, flt, limit=limit, offset=(page - 1) * limit)

    def remove(self, organization_id: str, workflow_id: str, lead_id: str) -> ExecutionRecord:
        """Later steps are cancelled; history is kept. 409 when the lead already finished."""
        now = self.clock.now()
        with self.store.db.begin() as conn:
            record = self._lead(conn, organization_id, workflow_id, lead_id, lock=True)
            if record.engine.is_finished:
                raise Conflict(f"lead {lead_id} is already {LEAD_STATUS[record.status]}")
            self.engine.apply(conn, record, Cancelled("lead removed"), now)
            removed = self._lead(conn, organization_id, workflow_id, lead_id)
        return removed

    def get(self, organization_id: str, workflow_id: str, lead_id: str) -> ExecutionRecord:
        with self.store.db.begin() as conn:
            return self._lead(conn, organization_id, workflow_id, lead_id)

    def history(self, organization_id: str, workflow_id: str, lead_id: str) -> dict[str, Any]:
        with self.store.db.begin() as conn:
            record = self._lead(conn, organization_id, workflow_id, lead_id)
            version = self.store.workflows.get_version(conn, record.version_id)
            steps = self.store.executions.steps_of(conn, [record.id])[record.id]
            events = self.store.executions.events_of(conn, record.id)
        assert version is not None
        return {
            "record": record,
            "definition": version.definition,
            "history": node_visits(version.definition, events, steps),
            "transitions": [
                {
                    "from": e.data.get("source"),
                    "to": e.data.get("target"),
                    "reason": e.data.get("outcome"),
                    "timestamp": e.at,
                }
                for e in events
                if e.kind == "transition"
            ],
        }

    def variable_keys(self, organization_id: str, workflow_id: str) -> list[str]:
        with self.store.db.begin() as conn:
            self._workflow(conn, organization_id, workflow_id)
            return self.store.executions.variable_keys(conn, organization_id, workflow_id)

    def _workflow(
        self,
        conn: Any,
        organization_id: str,
        workflow_id: str,
        lock: bool | Literal["share"] = False,
    ) -> WorkflowRecord:
        workflow = self.store.workflows.get_workflow(
            conn, organization_id, workflow_id, lock=lock
        )
        if workflow is None:
            raise NotFound(f"workflow {workflow_id} not found", field="workflowId")
        return workflow

    def _lead(
        self, conn: Any, organization_id: str, workflow_id: str, lead_id: str, *, lock: bool = False
    ) -> ExecutionRecord:
        self._workflow(conn, organization_id, workflow_id)
        record = self.store.executions.get_execution(
            conn, organization_id, lead_id, workflow_id=workflow_id, lock=lock
        )
        if record is None:
            raise NotFound(f"lead {lead_id} not found in this workflow", field="leadId")
        return record


def node_visits(
    definition: dict[str, Any], events: list[EventRecord], steps: list[StepRecord]
) -> list[dict[str, Any]]:
    """One row per node a lead entered: when it entered and left, and how it left."""
    names = _node_names(definition)
    calls = {(s.node_id, s.visit): (s.agent_call or {}).get("id") for s in steps if s.agent_call}
    visits: list[dict[str, Any]] = []
    counts: Counter[str] = Counter()

    def enter(node_id: str, at: Any) -> None:
        counts[node_id] += 1
        label, node_type = names.get(node_id, (node_id, "UNKNOWN"))
        visits.append(
            {
                "node_id": node_id,
                "node_label": label,
                "node_type": node_type,
                "status": "waiting",
                "call_id": calls.get((node_id, counts[node_id])),
                "entered_at": at,
                "exited_at": None,
            }
        )

    def leave(status: str, at: Any) -> None:
        if visits and visits[-1]["exited_at"] is None:
            visits[-1]["status"] = status
            visits[-1]["exited_at"] = at

    entry = compile_definition(definition).entry if definition else None
    for event in events:
        if event.kind == "started" and entry is not None:
            enter(entry, event.at)
        elif event.kind == "transition":
            leave(str(event.data.get("outcome", "")).lower(), event.at)
            enter(str(event.data["target"]), event.at)
        elif event.kind == "finished":
            leave("completed", event.at)
        elif event.kind in ("cancelled", "failed"):
            leave(event.kind, event.at)
    return visits


def _node_names(definition: dict[str, Any]) -> dict[str, tuple[str, str]]:
    if isinstance(definition.get("nodes"), list):
        return {
            str(n.get("id")): (str(n.get("label") or n.get("id")), str(n.get("node_type")))
            for n in definition["nodes"]
            if isinstance(n, dict)
        }
    graph = compile_definition(definition)
    out: dict[str, tuple[str, str]] = {}
    for node in graph.nodes.values():
        channel = getattr(node.config, "channel", None)
        kind = {Channel.CALL: "VOICE_CALL", Channel.TEXT: "SMS"}.get(channel, node.kind.value)
        out[node.id] = (
            node.label or node.id,
            kind if node.kind is NodeKind.ACTION else node.kind.value,
        )
    return out
