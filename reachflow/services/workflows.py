"""Workflows as an application service: validate, version, store."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from reachflow.domain.compile import compile_definition
from reachflow.domain.compliance.rules import load_rules
from reachflow.domain.definition import normalize_linear
from reachflow.domain.definition_warnings import Warning, definition_warnings
from reachflow.domain.enums import Channel
from reachflow.domain.errors import NotFound, ProblemCollector, ValidationFailed
from reachflow.domain.graph_definition import (
    GraphInvalid,
    GraphProblem,
    ProblemCode,
    check_graph_definition,
    is_graph,
    raise_if_problems,
    validate_for_activation,
    with_ids,
)
from reachflow.domain.schedule import WeekSchedule, parse_timezone, parse_week_schedule
from reachflow.runtime.clock import Clock
from reachflow.services.executions import ExecutionService
from reachflow.services.idempotency import Claim
from reachflow.services.public_workflows import PUBLIC_FIELDS, parse_public_settings
from reachflow.services.validation import start_validation
from reachflow.store.executions import ExecutionFilter
from reachflow.store.records import WorkflowRecord
from reachflow.store.store import Store

WORKFLOW_FIELDS = frozenset(
    {
        "name",
        "description",
        "active",
        "timezone",
        "workflowSchedule",
        "tcpaSchedule",
        "definition",
        "startHour",
        "endHour",
        *PUBLIC_FIELDS,
    }
)
#: Fields whose change makes a new version (running executions keep theirs).
VERSIONED_FIELDS = frozenset({"timezone", "workflowSchedule", "tcpaSchedule", "definition"})


def _new_ids() -> Iterator[str]:
    while True:
        yield str(uuid.uuid4())


class WorkflowService:
    def __init__(self, store: Store, clock: Clock, executions: ExecutionService) -> None:
        self.store = store
        self.clock = clock
        self.executions = executions

    def create(
        self, organization_id: str, body: dict[str, Any], *, claim: Claim | None = None
    ) -> WorkflowRecord:
        """A new workflow; with ``claim``, its idempotency key is recorded with it."""
        with self.store.db.begin() as conn:
            channels = self.channels(conn, organization_id)
            values = validate_workflow(body, channels, partial=False)
            if values.get("active", True):
                check_runnable(values["definition"], channels)
            workflow_id = str(uuid.uuid4())
            self.store.workflows.insert_workflow(
                conn,
                workflow_id=workflow_id,
                organization_id=organization_id,
                name=values["name"],
                description=values.get("description"),
                active=values.get("active", True),
                status="active" if values.get("active", True) else "draft",
                version=_version_of(values),
                now=self.clock.now(),
            )
            if values.get("public"):
                self.store.workflows.update_workflow(
                    conn, organization_id, workflow_id, values["public"]
                )
            if claim is not None:
                claim.record(conn, {"workflowId": workflow_id}, self.clock.now())
            record = self.store.workflows.get_workflow(conn, organization_id, workflow_id)
        assert record is not None
        return record

    def validate(self, organization_id: str, body: dict[str, Any]) -> list[Warning]:
        """What ``create`` would refuse, raised the same way, without storing anything; for a
        body it would accept, the warnings (``domain.definition_warnings``)."""
        with self.store.db.read() as conn:
            channels = self.channels(conn, organization_id)
        values = validate_workflow(body, channels, partial=False)
        if values.get("active", True):
            check_runnable(values["definition"], channels)
        return warnings_of(values, body, self.clock.now())

    def get(self, organization_id: str, workflow_id: str) -> WorkflowRecord:
        with self.store.db.read() as conn:
            record = self.store.workflows.get_workflow(conn, organization_id, workflow_id)
        if record is None:
            raise NotFound(f"workflow {workflow_id} not found", field="workflowId")
        return record

    def list(
        self, organization_id: str, *, limit: int, offset: int, active: bool | None = None
    ) -> tuple[list[WorkflowRecord], int]:
        with self.store.db.begin() as conn:
            return self.store.workflows.list_workflows(
                conn, organization_id, limit=limit, offset=offset, active=active
            )

    def update(
        self, organization_id: str, workflow_id: str, body: dict[str, Any]
    ) -> WorkflowRecord:
        now = self.clock.now()
        with self.store.db.begin() as conn:
            current = self.store.workflows.get_workflow(
                conn, organization_id, workflow_id, lock=True
            )
            if current is None:
                raise NotFound(f"workflow {workflow_id} not found", field="workflowId")
            channels = self.channels(conn, organization_id)
            values = validate_workflow(body, channels, partial=True)
            changes: dict[str, Any] = {"updated_at": now}
            for key in ("name", "description", "active"):
                if key in values:
                    changes[key] = values[key]
            if "active" in values:
                changes["status"] = "active" if values["active"] else "paused"
            changes.update(values.get("public", {}))
            starting = values.get("active") is True and not current.active
            if values.get("active", current.active) and ("definition" in values or starting):
                check_runnable(values.get("definition", current.definition), channels)
            if VERSIONED_FIELDS & values.keys():
                merged = {
                    "timezone": current.timezone,
                    "workflowSchedule": current.workflow_schedule,
                    "tcpaSchedule": current.tcpa_schedule,
                    "definition": current.definition,
                    **{k: v for k, v in values.items() if k in VERSIONED_FIELDS},
                }
                number = current.version + 1
                self.store.workflows.insert_version(
                    conn, organization_id, workflow_id, number, _version_of(merged), now
                )
                changes["version"] = number
            self.store.workflows.update_workflow(conn, organization_id, workflow_id, changes)
            record = self.store.workflows.get_workflow(conn, organization_id, workflow_id)
            assert record is not None
            if starting:
                self.executions.start_pending(conn, record, now)
        return record

    def delete(self, organization_id: str, workflow_id: str) -> None:
        """Cancel the workflow's active executions and hide it, in one transaction under the
        workflow's lock (a racing create waits, then finds it gone); history is kept."""
        now = self.clock.now()
        with self.store.db.begin() as conn:
            current = self.store.workflows.get_workflow(
                conn, organization_id, workflow_id, lock=True
            )
            if current is None:
                raise NotFound(f"workflow {workflow_id} not found", field="workflowId")
            self.executions.cancel_in(
                conn,
                ExecutionFilter(organization_id=organization_id, workflow_id=workflow_id),
                "workflow deleted",
                now,
            )
            self.store.workflows.update_workflow(
                conn,
                organization_id,
                workflow_id,
                {"deleted_at": now, "updated_at": now, "active": False, "status": "cancelled"},
            )

    def channels(self, conn: Any, organization_id: str) -> dict[str, Channel]:
        """The organization's agents and their channels (what definitions are checked against)."""
        raw = self.store.accounts.agent_channels(conn, organization_id)
        return {k: Channel(v) for k, v in raw.items()}


def _version_of(values: dict[str, Any]) -> dict[str, Any]:
    return {
        "timezone": values.get("timezone") or "America/New_York",
        "workflow_schedule": values.get("workflowSchedule"),
        "tcpa_schedule": values.get("tcpaSchedule"),
        "definition": values["definition"],
    }


def validate_workflow(
    body: dict[str, Any], channels: dict[str, Channel], *, partial: bool
) -> dict[str, Any]:
    """Check a create or PATCH body; return the normalised values that were given."""
    problems, out = start_validation(body, WORKFLOW_FIELDS, partial=partial)
    if "description" in body:
        description = body["description"]
        if description is not None and not isinstance(description, str):
            problems.add("description", "must be a string")
        out["description"] = description
    if "active" in body:
        if not isinstance(body["active"], bool):
            problems.add("active", "must be a boolean")
        out["active"] = body["active"]
    if "timezone" in body or not partial:
        out["timezone"] = parse_timezone(
            body.get("timezone", "America/New_York"), "timezone", problems
        )
    for key in ("workflowSchedule", "tcpaSchedule"):
        if key in body and body[key] is not None:
            schedule = parse_week_schedule(body[key], key, problems)
            out[key] = schedule.to_json()
            if schedule.is_never_open:
                problems.add(key, "no enabled day: the workflow could never run")
        elif key in body:
            out[key] = None
    for key in ("startHour", "endHour"):
        if key in body:
            problems.add(key, "legacy field: use workflowSchedule with timeRanges")
    public = parse_public_settings(body, problems)
    if public:
        out["public"] = public
    graph_problems: list[GraphProblem] = []
    if "definition" in body or not partial:
        raw = body.get("definition")
        try:
            if is_graph(raw):
                raw = with_ids(raw)
                check_graph_definition(raw, root="definition")
                out["definition"] = raw
            else:
                out["definition"] = normalize_linear(raw, channels, _new_ids())
        except GraphInvalid as exc:
            graph_problems = exc.graph_problems
        except ValidationFailed as exc:
            problems.problems.extend(exc.problems)
    if graph_problems:  # keep each graph problem's code; the other problems come along
        others = [GraphProblem(ProblemCode.INVALID, p.field, p.message) for p in problems.problems]
        raise GraphInvalid(graph_problems + others)
    problems.raise_if_any()
    return out


def warnings_of(
    values: dict[str, Any], body: dict[str, Any], now: datetime, *, graph_root: str = "definition"
) -> list[Warning]:
    """The warnings of a validated body (``values``: what ``validate_workflow`` answered)."""
    definition = values["definition"]
    graph = compile_definition(definition)
    paths: dict[str, str] = {}
    if is_graph(definition):
        for node in definition.get("nodes", []):
            if isinstance(node, dict) and isinstance(node.get("id"), str):
                paths[node["id"]] = f"{graph_root}.nodes[{node['id']}]"
    else:
        raw = body.get("definition", {}).get("steps", [])
        orders = {s.get("order"): i for i, s in enumerate(raw) if isinstance(s, dict)}
        for step in definition["steps"]:
            index = orders.get(step["order"])
            if index is not None:
                paths[step["id"]] = f"definition.steps[{index}]"

    def schedule(key: str) -> WeekSchedule | None:
        raw = values.get(key)
        return parse_week_schedule(raw, key, ProblemCollector()) if raw else None

    return definition_warnings(
        graph,
        paths=paths,
        timezone=values.get("timezone") or "America/New_York",
        workflow_schedule=schedule("workflowSchedule"),
        tcpa_schedule=schedule("tcpaSchedule"),
        rules=load_rules(),
        now=now,
    )


def check_runnable(definition: dict[str, Any], channels: dict[str, Channel]) -> None:
    """A graph that is about to run must pass the activation checks (linear ones already do)."""
    if is_graph(definition):
        raise_if_problems(
            validate_for_activation(
                definition, agents=channels, variable_keys=None, root="definition"
            )
        )
