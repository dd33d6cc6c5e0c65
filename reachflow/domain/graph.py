"""The one executable form of every workflow: nodes joined by ordered, labelled edges.

Rule 1: after a node finishes with an outcome, its outgoing edges are checked in order and the
first whose label matches is taken; an unlabelled edge always matches (the default).
Rule 2: an ACTION's outcome is its disposition; it also matches the DialNexa group labels
``COMPLETED`` / ``DNP`` / ``FAILED`` (see ``OUTCOME_GROUPS``). Matching ignores case.
Rule 3: reaching an END node, or finding no matching edge, finishes the execution.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from reachflow.domain.conditions import ConditionSet
from reachflow.domain.enums import OUTCOME_GROUPS as OUTCOME_GROUPS  # re-exported
from reachflow.domain.enums import Channel, Disposition


class NodeKind(StrEnum):
    ACTION = "ACTION"  # a CALL or TEXT step dispatched to an agent
    TIME = "TIME"  # wait
    CONDITIONAL = "CONDITIONAL"  # branch on the execution's own state
    APPLICATION = "APPLICATION"  # act on the execution's data or the outside world
    END = "END"  # terminal


class EndOutcome(StrEnum):
    COMPLETED = "completed"
    CONVERTED = "converted"
    DROPPED = "dropped"


SKIPPED = "SKIPPED"
NEXT = "next"


@dataclass(frozen=True, slots=True)
class ActionConfig:
    channel: Channel
    agent_id: str
    leave_voicemail: bool = False
    message: str | None = None
    needs_tcpa: bool = True
    delay_secs: int = 0
    guard: ConditionSet | None = None
    from_phone_number: str | None = None
    # What a Feather step execution shows: the step's own fields.
    step_id: str | None = None
    step_order: int = 0
    finish_on: tuple[Disposition, ...] = ()


@dataclass(frozen=True, slots=True)
class TimeConfig:
    """Exactly one of: a fixed delay, a local time of day, or the next schedule opening."""

    delay_secs: int | None = None
    until_minute_of_day: int | None = None
    until_schedule_opens: bool = False


@dataclass(frozen=True, slots=True)
class ConditionalConfig:
    """``conditions`` gives outcome true/false; ``branch_field`` gives the field's value."""

    conditions: ConditionSet | None = None
    branch_field: str | None = None
    branches: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ApplicationConfig:
    action: str  # set_variable | merge_metadata | suppress | http
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EndConfig:
    outcome: EndOutcome = EndOutcome.COMPLETED


NodeConfig = ActionConfig | TimeConfig | ConditionalConfig | ApplicationConfig | EndConfig


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    kind: NodeKind
    config: NodeConfig
    label: str = ""


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    label: str | None = None

    def matches(self, outcome: str) -> bool:
        if self.label is None or self.label == "":
            return True
        wanted = self.label.upper()
        if wanted == outcome.upper():
            return True
        return outcome in OUTCOME_GROUPS.get(wanted, frozenset())


@dataclass(frozen=True, slots=True)
class Graph:
    entry: str
    nodes: Mapping[str, Node]
    edges: tuple[Edge, ...]

    def node(self, node_id: str) -> Node:
        return self.nodes[node_id]

    def outgoing(self, node_id: str) -> list[Edge]:
        return [e for e in self.edges if e.source == node_id]

    def next_node(self, node_id: str, outcome: str) -> str | None:
        for edge in self.outgoing(node_id):
            if edge.matches(outcome):
                return edge.target
        return None

    def actions(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.kind is NodeKind.ACTION]
