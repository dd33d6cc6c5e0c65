"""Coded problems: what is wrong with a graph definition, and where.

Every problem carries a machine ``code`` (``ProblemCode``) and a ``field`` naming the node or
edge (``nodes[n3].config.agent_id``, ``edges[e2].label``), so a caller fixes them all at once.
``GraphProblems`` collects them; ``GraphInvalid`` raises them as a ``ValidationFailed``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from reachflow.domain.errors import FieldError, ProblemCollector, ValidationFailed


class ProblemCode(StrEnum):
    INVALID = "invalid"  # wrong type or shape, unknown key
    UNKNOWN_NODE_TYPE = "unknown_node_type"
    DUPLICATE_ID = "duplicate_id"
    UNKNOWN_NODE = "unknown_node"  # an edge or the entry names no node of this workflow
    TERMINAL_EDGE = "terminal_edge"  # an edge leaves CONVERTED or DROPPED
    UNKNOWN_FIELD = "unknown_field"  # a condition reads a field that does not exist
    EMPTY = "empty"  # activation: no nodes at all
    REQUIRED = "required"  # activation: agent_id, SMS message, TIME wait, CONDITIONAL test
    UNKNOWN_AGENT = "unknown_agent"
    WRONG_CHANNEL = "wrong_channel"
    UNKNOWN_VARIABLE = "unknown_variable"
    MISSING_LABEL = "missing_label"  # an edge out of a CONDITIONAL without a label
    BAD_LABEL = "bad_label"  # a label the source node can never emit
    DUPLICATE_EDGE = "duplicate_edge"
    NO_WAY_OUT = "no_way_out"
    UNREACHABLE = "unreachable"
    SPIN_CYCLE = "spin_cycle"


@dataclass(frozen=True, slots=True)
class GraphProblem:
    code: ProblemCode
    field: str
    message: str

    def to_field_error(self) -> FieldError:
        return FieldError(self.field, self.message)

    def to_json(self) -> dict[str, str]:
        return {"code": self.code.value, "field": self.field, "message": self.message}


class GraphInvalid(ValidationFailed):
    """A ``ValidationFailed`` that keeps each problem's code in ``graph_problems``."""

    def __init__(self, problems: list[GraphProblem]) -> None:
        super().__init__([p.to_field_error() for p in problems])
        self.graph_problems = list(problems)


@dataclass(slots=True)
class GraphProblems:
    """Collects coded problems; ``root`` (e.g. ``"definition"``) prefixes every field."""

    root: str = ""
    items: list[GraphProblem] = field(default_factory=list)

    def add(self, code: ProblemCode, path: str, message: str) -> None:
        if not path:
            where = self.root or "definition"
        else:
            where = f"{self.root}.{path}" if self.root else path
        self.items.append(GraphProblem(code, where, message))

    def absorb(
        self, collector: ProblemCollector, code: Callable[[FieldError], ProblemCode]
    ) -> None:
        for problem in collector.problems:
            self.add(code(problem), problem.field, problem.message)

    def raise_if_any(self) -> None:
        if self.items:
            raise GraphInvalid(self.items)


def raise_if_problems(problems: list[GraphProblem]) -> None:
    if problems:
        raise GraphInvalid(problems)


def node_path(node_id: str) -> str:
    return f"nodes[{node_id}]"


def edge_path(edge_id: str) -> str:
    return f"edges[{edge_id}]"
