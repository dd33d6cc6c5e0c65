"""Graph workflows as an application service: build, validate, version and run through a lifecycle.

Statuses: ``draft -> active <-> paused``, and ``cancelled`` (final) from any of them. ``running``
is read as ``active``. ``completed`` is final and accepted on reading; no verb sets it.

Versions. A draft's graph is edited in place (no execution has run on it). Editing an active or
paused workflow writes a new version; executions stay on the version they started on (waiting
executions are not migrated: they finish the graph they began). Edits to a running workflow
may leave a new node unreachable or without a way out for a moment (it is being wired), but
never introduce any other activation problem.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from reachflow.domain.decider import Paused, Resumed
from reachflow.domain.definition_warnings import Warning
from reachflow.domain.enums import ExecutionStatus
from reachflow.domain.errors import Conflict, FieldError, NotFound, ValidationFailed
from reachflow.domain.graph_definition import (
    GraphInvalid,
    ProblemCode,
    add_edge,
    add_node,
    check_graph_definition,
    is_graph,
    keyed_node,
    new_graph_definition,
    raise_if_problems,
    remove_edge,
    remove_node,
    update_node,
    validate_for_activation,
    with_ids,
)
from reachflow.runtime.clock import Clock
from reachflow.runtime.embedded.engine import Engine
from reachflow.services.idempotency import Claim
from reachflow.services.workflows import WorkflowService, validate_workflow, warnings_of
from reachflow.store.executions import ExecutionFilter
from reachflow.store.records import VersionRecord, WorkflowRecord
from reachflow.store.store import Store

STATUSES = ("draft", "active", "paused", "completed", "cancelled")
FINAL = frozenset({"completed", "cancelled"})
#: Problems an edit of a running graph may leave for a moment while a node is being wired in.
WIRING = frozenset({ProblemCode.UNREACHABLE, ProblemCode.NO_WAY_OUT})
#: DialNexa body fields and the Feather fields they are validated as.
WORKFLOW_FIELDS = {
    "title": "name",
    "name": "name",
    "description": "description",
    "timezone": "timezone",
    "workflow_schedule": "workflowSchedule",
    "tcpa_schedule": "tcpaSchedule",
    "definition": "definition",
}
SNAKE_CASE = {v: k for k, v in WORKFLOW_FIELDS.items() if k != "name"}
NODE_FIELDS = frozenset({"node_type", "label", "position_x", "position_y", "config", "id", "key"})
EDGE_FIELDS = frozenset({"from_node_id", "to_node_id", "label", "id"})


def new_edge_id() -> str:
    return f"edge_{uuid.uuid4().hex[:12]}"


def read_status(raw: object, field: str = "status") -> str:
    """A lifecycle status as written by a client: ``running`` is read as ``active``."""
    value = "active" if raw == "running" else raw
    if value not in STATUSES:
        raise ValidationFailed(FieldError(field, f"must be one of {', '.join(STATUSES)}"))
    return str(value)


class GraphWorkflowService:
    def __init__(
        self, store: Store, engine: Engine, clock: Clock, workflows: WorkflowService
    ) -> None:
        self.store = store
        self.engine = engine
        self.clock = clock
        self.workflows = workflows

    # -- workflows ------------------------------------------------------------------------

    def create(
        self, organization_id: str, body: dict[str, Any], *, claim: Claim | None = None
    ) -> WorkflowRecord:
        """A draft, or an active workflow that passed the activation checks: one transaction,
        so a refused create (400) stores nothing and a retry makes no duplicate. With
        ``claim``, its idempotency key is recorded with it."""
        status = read_status(body.get("status", "draft"))
        if status not in ("draft", "active"):
            raise ValidationFailed(FieldError("status", "a new workflow is draft or active"))
        values = self._validated(organization_id, body, partial=False)
        workflow_id = str(uuid.uuid4())
        now = self.clock.now()
        with self.store.db.begin() as conn:
            self.store.workflows.insert_workflow(
                conn,
                workflow_id=workflow_id,
                organization_id=organization_id,
                name=values["name"],
                description=values.get("description"),
                active=False,
                status="draft",
                version={
                    "timezone": values.get("timezone") or "America/New_York",
                    "workflow_schedule": values.get("workflowSchedule"),
                    "tcpa_schedule": values.get("tcpaSchedule"),
                    "definition": values.get("definition") or new_graph_definition(),
                },
                now=now,
            )
            if status == "active":
                self._activate(conn, self._locked(conn, organization_id, workflow_id), now)
            if claim is not None:
                claim.record(conn, {"workflowId": workflow_id}, now)
        return self.workflows.get(organization_id, workflow_id)

    def validate(self, organization_id: str, body: dict[str, Any]) -> list[Warning]:
        """What ``create`` would refuse, then what ``activate`` would, raised the same way,
        without storing anything; for a body both accept, the warnings."""
        status = read_status(body.get("status", "draft"))
        if status not in ("draft", "active"):
            raise ValidationFailed(FieldError("status", "a new workflow is draft or active"))
        values = self._validated(organization_id, body, partial=False)
        with self.store.db.read() as conn:
            channels = self.workflows.channels(conn, organization_id)
        raise_if_problems(
            validate_for_activation(
                values["definition"], agents=channels, variable_keys=None, root="definition"
            )
        )
        return warnings_of(values, body, self.clock.now())

    def _validated(
        self, organization_id: str, body: dict[str, Any], *, partial: bool
    ) -> dict[str, Any]:
        problems: list[FieldError] = []
        feather: dict[str, Any] = {}
        for key, value in body.items():
            if key == "status":
                continue
            target = WORKFLOW_FIELDS.get(key)
            if target is None:
                problems.append(FieldError(key, "unknown field"))
            else:
                feather[target] = value
        if not partial and "name" not in feather:
            problems.append(FieldError("title", "is required"))
        if "definition" in feather and not is_graph(feather["definition"]):
            problems.append(FieldError("definition", "must be a graph: {nodes, edges}"))
        elif "definition" in feather:
            feather["definition"] = with_ids(feather["definition"])
        if problems:
            raise ValidationFailed(problems)
        if not partial and "definition" not in feather:
            feather["definition"] = new_graph_definition()
        with self.store.db.begin() as conn:
            channels = self.workflows.channels(conn, organization_id)
        try:
            return validate_workflow(feather, channels, partial=True)
        except GraphInvalid as exc:
            raise GraphInvalid(
                [replace(p, field=_rename(p.field, SNAKE_CASE)) for p in exc.graph_problems]
            ) from exc
        except ValidationFailed as exc:
            raise ValidationFailed(
                [FieldError(_rename(p.field, SNAKE_CASE), p.message) for p in exc.problems]
            ) from exc

    def update(
        self, organization_id: str, workflow_id: str, body: dict[str, Any]
    ) -> WorkflowRecord:
        """PATCH: metadata, schedules and the graph. ``status`` is 409: use the verbs."""
        if "status" in body:
            raise Conflict(
                "status changes through the lifecycle endpoints (activate, pause, resume, "
                "cancel) so the audit trail records the intent",
                field="status",
            )
        values = self._validated(organization_id, body, partial=True)
        now = self.clock.now()
        with self.store.db.begin() as conn:
            current = self._locked(conn, organization_id, workflow_id)
            changes: dict[str, Any] = {"updated_at": now}
            for key in ("name", "description"):
                if key in values:
                    changes[key] = values[key]
            versioned = {
                "timezone": values.get("timezone", current.timezone),
                "workflow_schedule": values.get("workflowSchedule", current.workflow_schedule),
                "tcpa_schedule": values.get("tcpaSchedule", current.tcpa_schedule),
                "definition": values.get("definition", current.definition),
            }
            if {"timezone", "workflowSchedule", "tcpaSchedule", "definition"} & values.keys():
                self._check_edit(conn, current, versioned["definition"])
                changes.update(self._new_version(conn, current, versioned, now))
            self.store.workflows.update_workflow(conn, organization_id, workflow_id, changes)
        return self.workflows.get(organization_id, workflow_id)

    def delete(self, organization_id: str, workflow_id: str) -> None:
        current = self.workflows.get(organization_id, workflow_id)
        if current.status == "active":
            raise Conflict(
                "an active workflow cannot be deleted: cancel or pause it first", field="status"
            )
        self.workflows.delete(organization_id, workflow_id)

    def duplicate(
        self, organization_id: str, workflow_id: str, *, claim: Claim | None = None
    ) -> WorkflowRecord:
        """A deep copy of the graph and settings as a new draft; leads are not copied."""
        current = self.workflows.get(organization_id, workflow_id)
        body = {
            "title": f"{current.name} (Copy)",
            "description": current.description,
            "timezone": current.timezone,
            "workflow_schedule": current.workflow_schedule,
            "tcpa_schedule": current.tcpa_schedule,
        }
        if is_graph(current.definition):
            body["definition"] = current.definition
            return self.create(organization_id, body, claim=claim)
        raise Conflict("only graph workflows are duplicated here", field="definition")

    # -- lifecycle --------------------------------------------------------------------------

    def activate(self, organization_id: str, workflow_id: str) -> WorkflowRecord:
        """draft -> active, after the pre-activation checks; enrolled leads start now."""
        now = self.clock.now()
        with self.store.db.begin() as conn:
            current = self._locked(conn, organization_id, workflow_id)
            self._expect(current, "draft", "activate")
            self._activate(conn, current, now)
        return self.workflows.get(organization_id, workflow_id)

    def _activate(self, conn: Connection, current: WorkflowRecord, now: datetime) -> None:
        keys = self.store.executions.variable_keys(conn, current.organization_id, current.id)
        raise_if_problems(
            validate_for_activation(
                current.definition,
                agents=self.workflows.channels(conn, current.organization_id),
                variable_keys=frozenset(keys) if keys else None,
                root="definition",
            )
        )
        self._set_status(conn, current, "active", now)
        self.workflows.executions.start_pending(conn, current, now)

    def pause(self, organization_id: str, workflow_id: str) -> WorkflowRecord:
        """active -> paused: in-flight steps finish, no new step starts, delays keep their rest."""
        now = self.clock.now()
        with self.store.db.begin() as conn:
            current = self._locked(conn, organization_id, workflow_id)
            self._expect(current, "active", "pause")
            self._set_status(conn, current, "paused", now)
            flt = ExecutionFilter(
                organization_id=organization_id,
                workflow_id=workflow_id,
                statuses=(ExecutionStatus.CREATED.value, ExecutionStatus.RUNNING.value),
            )
            running = [
                (record, (Paused(),))
                for record in self.store.executions.lock_active(conn, flt)
                if not record.engine.awaits_start
            ]
            # One batch: its pending dispatches are taken back under one sorted set of
            # contact locks.
            self.engine.decide_batch(conn, running, now)
        return self.workflows.get(organization_id, workflow_id)

    def resume(self, organization_id: str, workflow_id: str) -> WorkflowRecord:
        """paused -> active: delays resume with their remaining time; new leads start."""
        now = self.clock.now()
        with self.store.db.begin() as conn:
            current = self._locked(conn, organization_id, workflow_id)
            self._expect(current, "paused", "resume")
            self._set_status(conn, current, "active", now)
            flt = ExecutionFilter(
                organization_id=organization_id,
                workflow_id=workflow_id,
                statuses=(ExecutionStatus.PAUSED.value,),
            )
            paused = self.store.executions.lock_active(conn, flt)
            self.engine.decide_batch(conn, [(record, (Resumed(),)) for record in paused], now)
            self.workflows.executions.start_pending(conn, current, now)
        return self.workflows.get(organization_id, workflow_id)

    def cancel(self, organization_id: str, workflow_id: str) -> WorkflowRecord:
        """Permanent: no further step fires; records are kept."""
        now = self.clock.now()
        with self.store.db.begin() as conn:
            current = self._locked(conn, organization_id, workflow_id)
            if current.status in FINAL:
                raise Conflict(f"workflow is already {current.status}", field="status")
            self._set_status(conn, current, "cancelled", now)
            self.engine.cancel_where(
                conn,
                ExecutionFilter(organization_id=organization_id, workflow_id=workflow_id),
                "workflow cancelled",
                now,
            )
        return self.workflows.get(organization_id, workflow_id)

    # -- nodes and edges ---------------------------------------------------------------------

    def nodes(self, organization_id: str, workflow_id: str) -> list[dict[str, Any]]:
        definition = self._graph(self.workflows.get(organization_id, workflow_id))
        return [dict(n) for n in definition["nodes"]]

    def node(self, organization_id: str, workflow_id: str, node_id: str) -> dict[str, Any]:
        for node in self.nodes(organization_id, workflow_id):
            if node.get("id") == node_id:
                return node
        raise NotFound(f"no node {node_id!r} in this workflow", field="node_id")

    def add_node(
        self,
        organization_id: str,
        workflow_id: str,
        body: dict[str, Any],
        *,
        claim: Claim | None = None,
    ) -> dict[str, Any]:
        _only(body, NODE_FIELDS)
        body = keyed_node(body)
        if body.get("id") is None:
            body = {**body, "id": f"node_{uuid.uuid4().hex[:12]}"}
        node = {"label": "", "config": {}, **body}
        node.setdefault("position_x", 0)
        node.setdefault("position_y", 0)
        self._edit(
            organization_id, workflow_id, lambda d: add_node(d, node), claim, {"nodeId": node["id"]}
        )
        return self.node(organization_id, workflow_id, str(node["id"]))

    def update_node(
        self, organization_id: str, workflow_id: str, node_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        _only(body, NODE_FIELDS)
        self._edit(organization_id, workflow_id, lambda d: update_node(d, node_id, body))
        return self.node(organization_id, workflow_id, node_id)

    def remove_node(self, organization_id: str, workflow_id: str, node_id: str) -> None:
        self._edit(organization_id, workflow_id, lambda d: remove_node(d, node_id))

    def edges(self, organization_id: str, workflow_id: str) -> list[dict[str, Any]]:
        definition = self._graph(self.workflows.get(organization_id, workflow_id))
        return [dict(e) for e in definition["edges"]]

    def add_edge(
        self,
        organization_id: str,
        workflow_id: str,
        body: dict[str, Any],
        *,
        claim: Claim | None = None,
    ) -> dict[str, Any]:
        _only(body, EDGE_FIELDS)
        edge = {"id": body.get("id") or new_edge_id()}
        edge.update((k, v) for k, v in body.items() if k != "id")
        self._edit(
            organization_id, workflow_id, lambda d: add_edge(d, edge), claim, {"edgeId": edge["id"]}
        )
        return edge

    def edge(self, organization_id: str, workflow_id: str, edge_id: str) -> dict[str, Any]:
        for edge in self.edges(organization_id, workflow_id):
            if edge.get("id") == edge_id:
                return edge
        raise NotFound(f"no edge {edge_id!r} in this workflow", field="edge_id")

    def remove_edge(self, organization_id: str, workflow_id: str, edge_id: str) -> None:
        self._edit(organization_id, workflow_id, lambda d: remove_edge(d, edge_id))

    def versions(
        self, organization_id: str, workflow_id: str
    ) -> list[tuple[VersionRecord, datetime]]:
        self.workflows.get(organization_id, workflow_id)
        with self.store.db.begin() as conn:
            return self.store.workflows.list_versions(conn, organization_id, workflow_id)

    # -- internals ----------------------------------------------------------------------------

    def _edit(
        self,
        organization_id: str,
        workflow_id: str,
        change: Callable[[dict[str, Any]], dict[str, Any]],
        claim: Claim | None = None,
        created: dict[str, Any] | None = None,
    ) -> None:
        """Change the graph as a new version; with ``claim``, its idempotency key is recorded
        with ``created`` (what the change added)."""
        now = self.clock.now()
        with self.store.db.begin() as conn:
            current = self._locked(conn, organization_id, workflow_id)
            definition = change(self._graph(current))
            self._check_edit(conn, current, definition)
            changes = self._new_version(
                conn,
                current,
                {
                    "timezone": current.timezone,
                    "workflow_schedule": current.workflow_schedule,
                    "tcpa_schedule": current.tcpa_schedule,
                    "definition": definition,
                },
                now,
            )
            self.store.workflows.update_workflow(
                conn, organization_id, workflow_id, {"updated_at": now, **changes}
            )
            if claim is not None:
                claim.record(conn, created or {}, now)

    def _check_edit(
        self, conn: Connection, current: WorkflowRecord, definition: dict[str, Any]
    ) -> None:
        if current.status in FINAL:
            raise Conflict(f"workflow is {current.status}; it can no longer change")
        check_graph_definition(definition, root="definition")
        if current.status == "draft":
            return
        problems = validate_for_activation(
            definition,
            agents=self.workflows.channels(conn, current.organization_id),
            variable_keys=None,
            root="definition",
        )
        raise_if_problems([p for p in problems if p.code not in WIRING])

    def _new_version(
        self,
        conn: Connection,
        current: WorkflowRecord,
        version: dict[str, Any],
        now: datetime,
    ) -> dict[str, Any]:
        if current.status == "draft":
            self.store.workflows.replace_version(conn, current.version_id, version)
            self.engine.forget_version(current.version_id)
            return {}
        number = current.version + 1
        self.store.workflows.insert_version(
            conn, current.organization_id, current.id, number, version, now
        )
        return {"version": number}

    def _locked(self, conn: Connection, organization_id: str, workflow_id: str) -> WorkflowRecord:
        record = self.store.workflows.get_workflow(conn, organization_id, workflow_id, lock=True)
        if record is None:
            raise NotFound(f"workflow {workflow_id} not found", field="workflowId")
        return record

    def _set_status(
        self, conn: Connection, current: WorkflowRecord, status: str, now: datetime
    ) -> None:
        self.store.workflows.update_workflow(
            conn,
            current.organization_id,
            current.id,
            {"status": status, "active": status == "active", "updated_at": now},
        )

    @staticmethod
    def _expect(current: WorkflowRecord, status: str, verb: str) -> None:
        if current.status != status:
            raise Conflict(
                f"cannot {verb} a workflow that is {current.status} (only {status})",
                field="status",
            )

    @staticmethod
    def _graph(record: WorkflowRecord) -> dict[str, Any]:
        if not is_graph(record.definition):
            raise Conflict(
                "this workflow is defined by linear steps; edit its definition instead",
                field="definition",
            )
        return dict(record.definition)


def _only(body: dict[str, Any], allowed: frozenset[str]) -> None:
    unknown = [k for k in body if k not in allowed]
    if unknown:
        raise ValidationFailed(
            [
                FieldError(k, f"unknown field; expected {', '.join(sorted(allowed))}")
                for k in unknown
            ]
        )


def _rename(field: str, names: dict[str, str]) -> str:
    head, dot, rest = field.partition(".")
    return names.get(head, head) + dot + rest
