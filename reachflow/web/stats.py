"""Conversion per graph edge: how many executions of a workflow took each edge, and how many
reached the edge's source node, from the history the engine already keeps.

The engine logs a ``started`` event when an execution enters its workflow's entry node and a
``transition`` event (``{"source", "target", "outcome"}``) each time it follows an edge. One
statement per graph reads them: the workflow's executions by ``ix_executions_workflow_created``
(``organization_id, workflow_id``, a covering prefix), their events by
``ix_execution_events_execution_id``, the ``started`` and ``transition`` rows among them, and
counts distinct executions three ways (per edge, per node entered, started), with ``UNION ALL``
over one common table expression. Read-only; nothing here writes.

Node ids are counted by their base (before ``#``): a linear step's second attempt
(``step#2``) is the same step in the drawing, as the leads-per-node counts take it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reachflow.store.tables import execution_events, executions


@dataclass(frozen=True, slots=True)
class EdgeCounts:
    """Distinct executions: ``edges[(source, target)]`` took that edge at least once,
    ``entered[node]`` entered that node by an edge at least once, ``started`` entered the
    entry node (every execution that started)."""

    started: int = 0
    edges: dict[tuple[str, str], int] = field(default_factory=dict)
    entered: dict[str, int] = field(default_factory=dict)


def _base(column: Any, dialect: str) -> Any:
    """The node id before ``#`` (``step#2`` -> ``step``), in SQL."""
    if dialect == "postgresql":
        return sa.func.split_part(column, "#", 1)
    cut = sa.func.instr(column, "#")
    return sa.case((cut > 0, sa.func.substr(column, 1, cut - 1)), else_=column)


def edge_query(organization_id: str, workflow_id: str, dialect: str) -> sa.CompoundSelect[Any]:
    ev, ex = execution_events, executions
    moves = (
        sa.select(
            ev.c.execution_id,
            ev.c.kind,
            _base(ev.c.data["source"].as_string(), dialect).label("src"),
            _base(ev.c.data["target"].as_string(), dialect).label("tgt"),
        )
        .select_from(ex.join(ev, ev.c.execution_id == ex.c.id))
        .where(
            ex.c.organization_id == organization_id,
            ex.c.workflow_id == workflow_id,
            ev.c.organization_id == organization_id,
            ev.c.kind.in_(("started", "transition")),
        )
        .cte("moves")
    )
    distinct = sa.func.count(sa.distinct(moves.c.execution_id))
    moved = moves.c.kind == "transition"
    return sa.union_all(
        sa.select(sa.literal("edge").label("what"), moves.c.src, moves.c.tgt, distinct)
        .where(moved)
        .group_by(moves.c.src, moves.c.tgt),
        sa.select(sa.literal("node"), sa.null(), moves.c.tgt, distinct)
        .where(moved)
        .group_by(moves.c.tgt),
        sa.select(sa.literal("start"), sa.null(), sa.null(), distinct).where(
            moves.c.kind == "started"
        ),
    )


def edge_counts(conn: Connection, organization_id: str, workflow_id: str) -> EdgeCounts:
    started = 0
    edges: dict[tuple[str, str], int] = {}
    entered: dict[str, int] = {}
    query = edge_query(organization_id, workflow_id, conn.dialect.name)
    for what, source, target, count in conn.execute(query):
        if what == "start":
            started = int(count)
        elif what == "edge" and source is not None and target is not None:
            edges[(str(source), str(target))] = int(count)
        elif what == "node" and target is not None:
            entered[str(target)] = int(count)
    return EdgeCounts(started, edges, entered)
