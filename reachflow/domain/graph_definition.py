"""DialNexa's graph definition: parse (drafts), validate (activation), compile to ``Graph``.

The stored form is snake_case, as DialNexa's API writes it::

    {"nodes": [{"id": "n1", "node_type": "VOICE_CALL", "label": "First call",
                "position_x": 0, "position_y": 0, "config": {"agent_id": "a1"}}, ...],
     "edges": [{"id": "e1", "from_node_id": "n1", "to_node_id": "n2", "label": "DNP"}, ...],
     "entry_node_id": "n1"}          # optional; default: the first node in list order

Rule 1: ``parse_graph_definition`` checks structure only: types, node types, config shapes,
unique ids, edges between existing nodes, nothing leaving a terminal node. A draft passes it
while incomplete (a call without an agent, a node without a way out).
Rule 2: ``validate_for_activation`` adds what a running workflow needs: agents of the right
channel, known condition fields and template variables, a way out of every non-terminal node,
every node reachable from the entry, labels a node can emit, no duplicate edges, and no loop
that could spin (one without a TIME, VOICE_CALL or SMS node, which all wait).
Rule 3: every problem carries a machine ``code`` and a ``field`` naming the node or edge
(``nodes[n3].config.agent_id``, ``edges[e2].label``), so a caller fixes them all at once.
Rule 4: the edit helpers (``add_node`` ... ``remove_edge``) never mutate their input; each
returns a new definition that passes ``parse_graph_definition``, or raises.
Rule 5: ``compile_graph`` keeps edges in list order (the first matching label wins).
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from reachflow.domain.conditions import field_is_known, parse_condition_set
from reachflow.domain.enums import Channel, Disposition
from reachflow.domain.errors import (
    Conflict,
    FieldError,
    NotFound,
    ProblemCollector,
    ValidationFailed,
)
from reachflow.domain.graph import (
    NEXT,
    OUTCOME_GROUPS,
    ActionConfig,
    ApplicationConfig,
    ConditionalConfig,
    Edge,
    EndConfig,
    EndOutcome,
    Graph,
    Node,
    NodeConfig,
    NodeKind,
    TimeConfig,
)
from reachflow.domain.templates import TemplateSyntaxError, placeholder_names

# ---------------------------------------------------------------------------------- vocabulary


class NodeType(StrEnum):
    VOICE_CALL = "VOICE_CALL"
    SMS = "SMS"
    TIME = "TIME"
    CONDITIONAL = "CONDITIONAL"
    APPLICATION = "APPLICATION"
    CONVERTED = "CONVERTED"  # terminal, success
    DROPPED = "DROPPED"  # terminal


NODE_KINDS: Mapping[NodeType, NodeKind] = {
    NodeType.VOICE_CALL: NodeKind.ACTION,
    NodeType.SMS: NodeKind.ACTION,
    NodeType.TIME: NodeKind.TIME,
    NodeType.CONDITIONAL: NodeKind.CONDITIONAL,
    NodeType.APPLICATION: NodeKind.APPLICATION,
    NodeType.CONVERTED: NodeKind.END,
    NodeType.DROPPED: NodeKind.END,
}
TERMINAL_TYPES = frozenset({NodeType.CONVERTED, NodeType.DROPPED})
#: Node types that wait (for a timer or an agent's report); a loop must pass through one.
WAITING_TYPES = frozenset({NodeType.VOICE_CALL, NodeType.SMS, NodeType.TIME})

#: What a VOICE_CALL or SMS emits: its disposition, which also answers to its group label.
ACTION_OUTPUTS = frozenset(OUTCOME_GROUPS) | frozenset(d.value for d in Disposition)
CONDITION_OUTPUTS = frozenset({"true", "false"})
BRANCH_DEFAULT = "default"
APPLICATION_OUTPUTS = frozenset({"success", "failure"})

#: The edge labels each node type can emit (matched ignoring case; an unlabelled edge matches
#: anything). A CONDITIONAL with ``condition_field`` emits its ``branches`` or ``"default"``
#: instead of true/false: use ``node_outputs`` for a node's exact set.
NODE_OUTPUTS: Mapping[NodeType, frozenset[str]] = {
    NodeType.VOICE_CALL: ACTION_OUTPUTS,
    NodeType.SMS: ACTION_OUTPUTS,
    NodeType.TIME: frozenset({NEXT}),
    NodeType.CONDITIONAL: CONDITION_OUTPUTS,
    NodeType.APPLICATION: APPLICATION_OUTPUTS,
    NodeType.CONVERTED: frozenset(),
    NodeType.DROPPED: frozenset(),
}


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


# ---------------------------------------------------------------------------------- model


@dataclass(frozen=True, slots=True)
class GraphNode:
    id: str
    node_type: NodeType
    config: NodeConfig
    label: str = ""
    position_x: float = 0
    position_y: float = 0
    raw_config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> NodeKind:
        return NODE_KINDS[self.node_type]

    @property
    def is_terminal(self) -> bool:
        return self.node_type in TERMINAL_TYPES


@dataclass(frozen=True, slots=True)
class GraphEdge:
    id: str
    source: str
    target: str
    label: str | None = None  # None: unlabelled, matches every outcome


@dataclass(frozen=True, slots=True)
class GraphDefinition:
    nodes: tuple[GraphNode, ...]
    edges: tuple[GraphEdge, ...]
    entry: str | None  # None only when there are no nodes

    def node(self, node_id: str) -> GraphNode:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)

    @property
    def node_ids(self) -> frozenset[str]:
        return frozenset(n.id for n in self.nodes)

    def outgoing(self, node_id: str) -> list[GraphEdge]:
        return [e for e in self.edges if e.source == node_id]


def node_outputs(node: GraphNode) -> frozenset[str]:
    """The labels ``node`` can emit; a branching CONDITIONAL emits its branches or default."""
    config = node.config
    if isinstance(config, ConditionalConfig) and config.branch_field is not None:
        return frozenset(config.branches) | {BRANCH_DEFAULT}
    return NODE_OUTPUTS[node.node_type]


# ---------------------------------------------------------------------------------- parsing

DEFINITION_FIELDS = frozenset({"nodes", "edges", "entry_node_id"})
NODE_FIELDS = frozenset({"id", "node_type", "label", "position_x", "position_y", "config"})
EDGE_FIELDS = frozenset({"id", "from_node_id", "to_node_id", "label"})
VOICE_CALL_FIELDS = frozenset(
    {
        "agent_id",
        "from_phone_number",
        "leave_voicemail",
        "voicemail_message",
        "needs_tcpa_compliance",
    }
)
SMS_FIELDS = frozenset({"agent_id", "message", "needs_tcpa_compliance"})
DELAY_KEYS: Mapping[str, int] = {"delay_minutes": 60, "delay_hours": 3600, "delay_days": 86400}
DURATION_UNITS: Mapping[str, int] = {"minutes": 60, "hours": 3600, "days": 86400}
TIME_FORMS = (*DELAY_KEYS, "duration", "until_time", "until_schedule_opens")
TIME_FIELDS = frozenset({*TIME_FORMS, "unit"})
CONDITIONAL_FIELDS = frozenset({"conditions", "condition_field", "branches"})
MAX_DELAY_SECS = 366 * 86400
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
SUPPRESS_CHANNELS = ("ALL", "CALL", "TEXT")
_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,100}")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CLOCK = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])")


def is_graph(raw: object) -> bool:
    return isinstance(raw, Mapping) and "nodes" in raw


def parse_graph_definition(raw: object, problems: GraphProblems) -> GraphDefinition | None:
    """Check the structure of a (possibly incomplete) definition; ``None`` if it has problems.

    Every problem found is added to ``problems``; nothing is raised.
    """
    before = len(problems.items)
    if not isinstance(raw, Mapping):
        problems.add(ProblemCode.INVALID, "", "must be an object with 'nodes' and 'edges'")
        return None
    _unknown_keys(raw, DEFINITION_FIELDS, "", problems)
    nodes_raw = _list_field(raw, "nodes", problems, required=True)
    edges_raw = _list_field(raw, "edges", problems, required=False)
    nodes, known_ids = _parse_nodes(nodes_raw, problems)
    edges = _parse_edges(edges_raw, known_ids, {n.id: n for n in nodes}, problems)
    entry = _parse_entry(raw.get("entry_node_id"), nodes, known_ids, problems)
    if len(problems.items) > before:
        return None
    return GraphDefinition(tuple(nodes), tuple(edges), entry)


def check_graph_definition(raw: object, root: str = "") -> GraphDefinition:
    """``parse_graph_definition`` that raises ``GraphInvalid`` naming every problem."""
    problems = GraphProblems(root)
    parsed = parse_graph_definition(raw, problems)
    problems.raise_if_any()
    assert parsed is not None
    return parsed


def _list_field(
    raw: Mapping[str, Any], key: str, problems: GraphProblems, *, required: bool
) -> list[Any]:
    value = raw.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list):
        problems.add(ProblemCode.INVALID, key, "must be a list")
        return []
    return value


def _parse_nodes(items: list[Any], problems: GraphProblems) -> tuple[list[GraphNode], set[str]]:
    """Parsed nodes, and every well-formed id (also of nodes that failed to parse)."""
    nodes: list[GraphNode] = []
    first_index: dict[str, int] = {}
    for index, item in enumerate(items):
        node_id = _item_id(item, f"nodes[{index}]", problems)
        if node_id is None:
            continue
        if node_id in first_index:
            problems.add(
                ProblemCode.DUPLICATE_ID,
                f"nodes[{index}].id",
                f"duplicate node id {node_id!r} (also nodes[{first_index[node_id]}])",
            )
            continue
        first_index[node_id] = index
        node = _parse_node(item, node_id, index + 1, problems)
        if node is not None:
            nodes.append(node)
    return nodes, set(first_index)


def _item_id(item: object, path: str, problems: GraphProblems) -> str | None:
    if not isinstance(item, Mapping):
        problems.add(ProblemCode.INVALID, path, "must be an object")
        return None
    item_id = item.get("id")
    if not isinstance(item_id, str) or not _ID.fullmatch(item_id):
        problems.add(
            ProblemCode.INVALID,
            f"{path}.id",
            "must be 1-100 letters, digits or _ . : -",
        )
        return None
    return item_id


def _parse_node(
    item: Mapping[str, Any], node_id: str, position: int, problems: GraphProblems
) -> GraphNode | None:
    path = node_path(node_id)
    _unknown_keys(item, NODE_FIELDS, path, problems)
    label = _opt_str(item, "label", path, problems, allow_empty=True) or ""
    x = _coordinate(item, "position_x", path, problems)
    y = _coordinate(item, "position_y", path, problems)
    raw_type = item.get("node_type")
    if not isinstance(raw_type, str) or raw_type not in NodeType.__members__:
        problems.add(
            ProblemCode.UNKNOWN_NODE_TYPE,
            f"{path}.node_type",
            f"unknown node_type {raw_type!r}; expected one of {', '.join(NodeType)}",
        )
        return None
    node_type = NodeType(raw_type)
    raw_config = item.get("config")
    if raw_config is None:
        raw_config = {}
    if not isinstance(raw_config, Mapping):
        problems.add(ProblemCode.INVALID, f"{path}.config", "must be an object")
        return None
    config = _CONFIG_PARSERS[node_type](raw_config, f"{path}.config", problems)
    if isinstance(config, ActionConfig):
        config = replace(config, step_id=node_id, step_order=position)
    return GraphNode(node_id, node_type, config, label, x, y, dict(raw_config))


def _parse_edges(
    items: list[Any],
    known_ids: set[str],
    nodes: Mapping[str, GraphNode],
    problems: GraphProblems,
) -> list[GraphEdge]:
    edges: list[GraphEdge] = []
    first_index: dict[str, int] = {}
    for index, item in enumerate(items):
        edge_id = _item_id(item, f"edges[{index}]", problems)
        if edge_id is None:
            continue
        if edge_id in first_index:
            problems.add(
                ProblemCode.DUPLICATE_ID,
                f"edges[{index}].id",
                f"duplicate edge id {edge_id!r} (also edges[{first_index[edge_id]}])",
            )
            continue
        first_index[edge_id] = index
        edge = _parse_edge(item, edge_id, known_ids, nodes, problems)
        if edge is not None:
            edges.append(edge)
    return edges


def _parse_edge(
    item: Mapping[str, Any],
    edge_id: str,
    known_ids: set[str],
    nodes: Mapping[str, GraphNode],
    problems: GraphProblems,
) -> GraphEdge | None:
    """An edge between two nodes of this workflow; ``""`` as a label means unlabelled."""
    path = edge_path(edge_id)
    _unknown_keys(item, EDGE_FIELDS, path, problems)
    source = _edge_end(item, "from_node_id", path, known_ids, problems)
    target = _edge_end(item, "to_node_id", path, known_ids, problems)
    label = _opt_str(item, "label", path, problems, allow_empty=True) or None
    if source is None or target is None:
        return None
    if source in nodes and nodes[source].is_terminal:
        problems.add(
            ProblemCode.TERMINAL_EDGE,
            f"{path}.from_node_id",
            f"node {source!r} is {nodes[source].node_type.value}, a terminal node: "
            "no edge may leave it",
        )
    return GraphEdge(edge_id, source, target, label)


def _edge_end(
    item: Mapping[str, Any], key: str, path: str, known_ids: set[str], problems: GraphProblems
) -> str | None:
    value = item.get(key)
    if not isinstance(value, str) or not value:
        problems.add(ProblemCode.INVALID, f"{path}.{key}", "is required: a node id")
        return None
    if value not in known_ids:
        problems.add(ProblemCode.UNKNOWN_NODE, f"{path}.{key}", f"no node {value!r} here")
        return None
    return value


def _parse_entry(
    raw: object, nodes: list[GraphNode], known_ids: set[str], problems: GraphProblems
) -> str | None:
    """``entry_node_id`` if given, else the first node in list order."""
    if raw is None:
        return nodes[0].id if nodes else None
    if not isinstance(raw, str):
        problems.add(ProblemCode.INVALID, "entry_node_id", "must be a node id")
        return None
    if raw not in known_ids:
        problems.add(ProblemCode.UNKNOWN_NODE, "entry_node_id", f"no node {raw!r} here")
        return None
    return raw


# -- field readers ------------------------------------------------------------------------


def _unknown_keys(
    item: Mapping[str, Any], allowed: frozenset[str], path: str, problems: GraphProblems
) -> None:
    for key in item:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            problems.add(ProblemCode.INVALID, where, f"unknown field; expected {_names(allowed)}")


def _names(values: Iterable[str]) -> str:
    return ", ".join(sorted(values)) or "nothing"


def _opt_str(
    item: Mapping[str, Any],
    key: str,
    path: str,
    problems: GraphProblems,
    *,
    allow_empty: bool = False,
) -> str | None:
    value = item.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        problems.add(ProblemCode.INVALID, f"{path}.{key}", "must be a non-empty string")
        return None
    return value


def _bool(
    item: Mapping[str, Any], key: str, default: bool, path: str, problems: GraphProblems
) -> bool:
    value = item.get(key, default)
    if not isinstance(value, bool):
        problems.add(ProblemCode.INVALID, f"{path}.{key}", "must be a boolean")
        return default
    return value


def _coordinate(item: Mapping[str, Any], key: str, path: str, problems: GraphProblems) -> float:
    value = item.get(key, 0)
    if not _is_number(value):
        problems.add(ProblemCode.INVALID, f"{path}.{key}", "must be a number")
        return 0
    return float(value)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _template(item: Mapping[str, Any], key: str, path: str, problems: GraphProblems) -> str | None:
    """A ``{{placeholder}}`` text; malformed braces are a problem."""
    text = _opt_str(item, key, path, problems)
    if text is None:
        return None
    try:
        placeholder_names(text)
    except TemplateSyntaxError as exc:
        problems.add(ProblemCode.INVALID, f"{path}.{key}", str(exc))
        return None
    return text


# -- node configs -------------------------------------------------------------------------


def _parse_voice_call(
    config: Mapping[str, Any], path: str, problems: GraphProblems
) -> ActionConfig:
    """``agent_id`` may be missing in a draft (it becomes ``""``, refused at activation).

    ``voicemail_message`` becomes the dispatch message: what the agent leaves on voicemail.
    """
    _unknown_keys(config, VOICE_CALL_FIELDS, path, problems)
    return ActionConfig(
        channel=Channel.CALL,
        agent_id=_opt_str(config, "agent_id", path, problems) or "",
        leave_voicemail=_bool(config, "leave_voicemail", False, path, problems),
        message=_template(config, "voicemail_message", path, problems),
        needs_tcpa=_bool(config, "needs_tcpa_compliance", True, path, problems),
        from_phone_number=_opt_str(config, "from_phone_number", path, problems),
    )


def _parse_sms(config: Mapping[str, Any], path: str, problems: GraphProblems) -> ActionConfig:
    """``agent_id`` and ``message`` may be missing in a draft; activation requires both."""
    _unknown_keys(config, SMS_FIELDS, path, problems)
    return ActionConfig(
        channel=Channel.TEXT,
        agent_id=_opt_str(config, "agent_id", path, problems) or "",
        message=_template(config, "message", path, problems),
        needs_tcpa=_bool(config, "needs_tcpa_compliance", True, path, problems),
    )


def _parse_time(config: Mapping[str, Any], path: str, problems: GraphProblems) -> TimeConfig:
    """Exactly one of ``delay_minutes|delay_hours|delay_days`` (a positive number),
    ``{duration, unit}``, ``until_time: "HH:MM"`` (local, workflow zone) or
    ``until_schedule_opens: true``. None at all is a draft (refused at activation).
    """
    _unknown_keys(config, TIME_FIELDS, path, problems)
    forms = [key for key in TIME_FORMS if key in config]
    if "unit" in config and "duration" not in config:
        problems.add(ProblemCode.INVALID, f"{path}.duration", "is required with 'unit'")
    if len(forms) > 1:
        problems.add(
            ProblemCode.INVALID,
            path,
            f"give exactly one of {', '.join(TIME_FORMS)}; got {', '.join(forms)}",
        )
        return TimeConfig()
    if not forms:
        return TimeConfig()
    form = forms[0]
    if form in DELAY_KEYS:
        secs = _delay_secs(config[form], DELAY_KEYS[form], f"{path}.{form}", problems)
        return TimeConfig(delay_secs=secs)
    if form == "duration":
        unit = config.get("unit")
        if not isinstance(unit, str) or unit not in DURATION_UNITS:
            problems.add(ProblemCode.INVALID, f"{path}.unit", "must be minutes, hours or days")
            return TimeConfig()
        secs = _delay_secs(config["duration"], DURATION_UNITS[unit], f"{path}.duration", problems)
        return TimeConfig(delay_secs=secs)
    if form == "until_time":
        return TimeConfig(until_minute_of_day=_minute_of_day(config[form], path, problems))
    if config[form] is not True:
        problems.add(ProblemCode.INVALID, f"{path}.{form}", "must be true (or left out)")
    return TimeConfig(until_schedule_opens=True)


def _delay_secs(value: object, unit_secs: int, path: str, problems: GraphProblems) -> int | None:
    if not isinstance(value, (int, float)) or not _is_number(value) or value <= 0:
        problems.add(ProblemCode.INVALID, path, "must be a positive number")
        return None
    secs = round(value * unit_secs)
    if secs > MAX_DELAY_SECS:
        problems.add(ProblemCode.INVALID, path, "must be at most 366 days")
    return max(secs, 1)


def _minute_of_day(value: object, path: str, problems: GraphProblems) -> int | None:
    match = _CLOCK.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        problems.add(ProblemCode.INVALID, f"{path}.until_time", 'must be "HH:MM" (00:00-23:59)')
        return None
    return int(match.group(1)) * 60 + int(match.group(2))


def _parse_conditional(
    config: Mapping[str, Any], path: str, problems: GraphProblems
) -> ConditionalConfig:
    """Either ``conditions`` (emits true/false) or ``condition_field`` with ``branches``
    (emits the matching branch label, or "default"). Neither is a draft.
    """
    _unknown_keys(config, CONDITIONAL_FIELDS, path, problems)
    branching = "condition_field" in config or "branches" in config
    if branching and "conditions" in config:
        problems.add(
            ProblemCode.INVALID,
            path,
            "give either 'conditions' or 'condition_field' with 'branches', not both",
        )
        return ConditionalConfig()
    if branching:
        return _parse_branches(config, path, problems)
    collector = ProblemCollector()
    conditions = parse_condition_set(config.get("conditions"), f"{path}.conditions", collector)
    problems.absorb(collector, _condition_code)
    return ConditionalConfig(conditions=conditions)


def _condition_code(problem: FieldError) -> ProblemCode:
    # parse_condition_set reports an unknown field at ``...[i].field`` and nothing else there.
    return ProblemCode.UNKNOWN_FIELD if problem.field.endswith(".field") else ProblemCode.INVALID


def _parse_branches(
    config: Mapping[str, Any], path: str, problems: GraphProblems
) -> ConditionalConfig:
    branch_field = config.get("condition_field")
    if not isinstance(branch_field, str) or not field_is_known(branch_field):
        problems.add(
            ProblemCode.UNKNOWN_FIELD,
            f"{path}.condition_field",
            f"unknown field {branch_field!r}; use variables.<key>, metadata.<key>, "
            "disposition, agentCall.<field>, attempts or attempts.<nodeId>",
        )
        branch_field = None
    branches = config.get("branches")
    if not isinstance(branches, list) or not branches:
        problems.add(ProblemCode.INVALID, f"{path}.branches", "must be a non-empty list")
        return ConditionalConfig(branch_field=branch_field)
    seen: set[str] = set()
    for i, branch in enumerate(branches):
        if not isinstance(branch, str) or not branch.strip():
            problems.add(ProblemCode.INVALID, f"{path}.branches[{i}]", "must be a non-empty string")
        elif branch.upper() == BRANCH_DEFAULT.upper():
            problems.add(ProblemCode.INVALID, f"{path}.branches[{i}]", "'default' is reserved")
        elif branch.upper() in seen:
            problems.add(ProblemCode.INVALID, f"{path}.branches[{i}]", f"duplicate {branch!r}")
        else:
            seen.add(branch.upper())
    labels = tuple(b for b in branches if isinstance(b, str))
    return ConditionalConfig(branch_field=branch_field, branches=labels)


def _parse_application(
    config: Mapping[str, Any], path: str, problems: GraphProblems
) -> ApplicationConfig:
    """``action`` picks the shape; the params keep every default filled in."""
    action = config.get("action")
    parser = _ACTION_PARSERS.get(action) if isinstance(action, str) else None
    if parser is None:
        problems.add(
            ProblemCode.INVALID,
            f"{path}.action",
            f"unknown action {action!r}; expected one of {_names(_ACTION_PARSERS)}",
        )
        return ApplicationConfig(action=str(action))
    assert isinstance(action, str)
    return ApplicationConfig(action=action, params=parser(config, path, problems))


def _parse_set_variable(
    config: Mapping[str, Any], path: str, problems: GraphProblems
) -> dict[str, Any]:
    _unknown_keys(config, frozenset({"action", "key", "value"}), path, problems)
    key = config.get("key")
    if not isinstance(key, str) or not _IDENTIFIER.fullmatch(key):
        problems.add(ProblemCode.INVALID, f"{path}.key", "must be a name: a letter or _ first")
    if "value" not in config:
        problems.add(ProblemCode.INVALID, f"{path}.value", "is required")
    value = config.get("value")
    if value is not None and not isinstance(value, (str, bool)) and not _is_number(value):
        problems.add(ProblemCode.INVALID, f"{path}.value", "must be a string, number or boolean")
    return {"key": key, "value": value}


def _parse_merge_metadata(
    config: Mapping[str, Any], path: str, problems: GraphProblems
) -> dict[str, Any]:
    _unknown_keys(config, frozenset({"action", "metadata"}), path, problems)
    metadata = config.get("metadata")
    if not isinstance(metadata, Mapping) or not all(isinstance(k, str) for k in metadata):
        problems.add(ProblemCode.INVALID, f"{path}.metadata", "must be an object")
        return {"metadata": {}}
    return {"metadata": copy.deepcopy(dict(metadata))}


def _parse_suppress(
    config: Mapping[str, Any], path: str, problems: GraphProblems
) -> dict[str, Any]:
    _unknown_keys(config, frozenset({"action", "channel", "reason"}), path, problems)
    channel = config.get("channel", "ALL")
    if channel not in SUPPRESS_CHANNELS:
        problems.add(ProblemCode.INVALID, f"{path}.channel", "must be ALL, CALL or TEXT")
    params: dict[str, Any] = {"channel": channel}
    reason = _opt_str(config, "reason", path, problems)
    if reason is not None:
        params["reason"] = reason
    return params


def _parse_http(config: Mapping[str, Any], path: str, problems: GraphProblems) -> dict[str, Any]:
    """``url`` (http or https), ``method`` (default POST), ``secret`` (signs the body with
    HMAC), ``body`` (a JSON object)."""
    _unknown_keys(config, frozenset({"action", "url", "method", "secret", "body"}), path, problems)
    url = config.get("url")
    if not isinstance(url, str) or not _is_http_url(url):
        problems.add(ProblemCode.INVALID, f"{path}.url", "must be an http:// or https:// URL")
    method = config.get("method", "POST")
    if not isinstance(method, str) or method.upper() not in HTTP_METHODS:
        problems.add(ProblemCode.INVALID, f"{path}.method", f"must be one of {HTTP_METHODS}")
        method = "POST"
    params: dict[str, Any] = {"url": url, "method": method.upper()}
    secret = _opt_str(config, "secret", path, problems)
    if secret is not None:
        params["secret"] = secret
    body = config.get("body")
    if body is not None and not isinstance(body, Mapping):
        problems.add(ProblemCode.INVALID, f"{path}.body", "must be an object")
    elif body is not None:
        params["body"] = copy.deepcopy(dict(body))
    return params


def _is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _parse_end(outcome: EndOutcome) -> Callable[[Mapping[str, Any], str, GraphProblems], EndConfig]:
    def parse(config: Mapping[str, Any], path: str, problems: GraphProblems) -> EndConfig:
        _unknown_keys(config, frozenset(), path, problems)
        return EndConfig(outcome)

    return parse


_ConfigParser = Callable[[Mapping[str, Any], str, GraphProblems], NodeConfig]
_CONFIG_PARSERS: Mapping[NodeType, _ConfigParser] = {
    NodeType.VOICE_CALL: _parse_voice_call,
    NodeType.SMS: _parse_sms,
    NodeType.TIME: _parse_time,
    NodeType.CONDITIONAL: _parse_conditional,
    NodeType.APPLICATION: _parse_application,
    NodeType.CONVERTED: _parse_end(EndOutcome.CONVERTED),
    NodeType.DROPPED: _parse_end(EndOutcome.DROPPED),
}
_ACTION_PARSERS: Mapping[str, Callable[[Mapping[str, Any], str, GraphProblems], dict[str, Any]]] = {
    "set_variable": _parse_set_variable,
    "merge_metadata": _parse_merge_metadata,
    "suppress": _parse_suppress,
    "http": _parse_http,
}


# ---------------------------------------------------------------------------------- activation


def validate_for_activation(
    definition: Mapping[str, Any] | GraphDefinition,
    *,
    agents: Mapping[str, Channel],
    variable_keys: frozenset[str] | None,
    root: str = "",
) -> list[GraphProblem]:
    """Every problem that keeps the workflow from running; ``[]`` means it may be activated.

    ``agents`` maps the organization's agent ids to their channels. ``variable_keys`` are the
    lead variables templates may use (``None``: do not check templates); keys written by
    ``set_variable`` nodes count as known, and ``{{metadata.x}}`` is always allowed.
    Structural problems (Rule 1) are returned alone: the rest is checked once they are fixed.
    """
    problems = GraphProblems(root)
    if isinstance(definition, GraphDefinition):
        parsed: GraphDefinition | None = definition
    else:
        parsed = parse_graph_definition(definition, problems)
    if parsed is None:
        return problems.items
    if not parsed.nodes:
        problems.add(ProblemCode.EMPTY, "nodes", "an active workflow needs at least one node")
        return problems.items
    for node in parsed.nodes:
        _check_config(node, agents, problems)
        _check_condition_fields(node, parsed.node_ids, problems)
    if variable_keys is not None:
        _check_templates(parsed, variable_keys | set_variable_keys(parsed), problems)
    _check_edges(parsed, problems)
    _check_ways_out(parsed, problems)
    _check_reachable(parsed, problems)
    _check_spins(parsed, problems)
    return problems.items


def _check_config(node: GraphNode, agents: Mapping[str, Channel], problems: GraphProblems) -> None:
    """The fields a draft may leave out: an agent, an SMS message, a wait, a test."""
    path = f"{node_path(node.id)}.config"
    config = node.config
    if isinstance(config, ActionConfig):
        _check_agent(config, f"{path}.agent_id", agents, problems)
        if config.channel is Channel.TEXT and config.message is None:
            problems.add(ProblemCode.REQUIRED, f"{path}.message", "an SMS node needs a message")
    elif isinstance(config, TimeConfig) and _waits_for_nothing(config):
        problems.add(
            ProblemCode.REQUIRED,
            path,
            f"a TIME node needs one of {', '.join(TIME_FORMS)}",
        )
    elif isinstance(config, ConditionalConfig) and not _tests_anything(config):
        problems.add(
            ProblemCode.REQUIRED,
            path,
            "a CONDITIONAL node needs 'conditions' or 'condition_field' with 'branches'",
        )


def _check_agent(
    config: ActionConfig, path: str, agents: Mapping[str, Channel], problems: GraphProblems
) -> None:
    agent_id = config.agent_id
    if not agent_id:
        problems.add(ProblemCode.REQUIRED, path, "is required")
    elif agent_id not in agents:
        problems.add(ProblemCode.UNKNOWN_AGENT, path, f"unknown agent {agent_id!r}")
    elif agents[agent_id] is not config.channel:
        node_type = "VOICE_CALL" if config.channel is Channel.CALL else "SMS"
        problems.add(
            ProblemCode.WRONG_CHANNEL,
            path,
            f"agent {agent_id!r} is a {agents[agent_id].value} agent; a {node_type} node "
            f"needs a {config.channel.value} agent",
        )


def _waits_for_nothing(config: TimeConfig) -> bool:
    return (
        config.delay_secs is None
        and config.until_minute_of_day is None
        and not config.until_schedule_opens
    )


def _tests_anything(config: ConditionalConfig) -> bool:
    return config.conditions is not None or config.branch_field is not None


def _check_condition_fields(
    node: GraphNode, node_ids: frozenset[str], problems: GraphProblems
) -> None:
    """``attempts.<nodeId>`` must name a node of this graph (the rest is checked by parsing)."""
    config = node.config
    if not isinstance(config, ConditionalConfig):
        return
    path = f"{node_path(node.id)}.config"
    if config.branch_field is not None and not field_is_known(config.branch_field, node_ids):
        problems.add(
            ProblemCode.UNKNOWN_FIELD,
            f"{path}.condition_field",
            f"unknown field {config.branch_field!r}: no such node in this workflow",
        )
    if config.conditions is not None:
        collector = ProblemCollector()
        parse_condition_set(
            node.raw_config.get("conditions"), f"{path}.conditions", collector, node_ids
        )
        problems.absorb(collector, _condition_code)


def set_variable_keys(definition: GraphDefinition) -> frozenset[str]:
    """The variable keys the workflow's ``set_variable`` nodes write."""
    return frozenset(
        str(n.config.params["key"])
        for n in definition.nodes
        if isinstance(n.config, ApplicationConfig) and n.config.action == "set_variable"
    )


def _templates(definition: GraphDefinition) -> Iterable[tuple[str, str]]:
    """``(field path, template)`` of every message: SMS ``message``, ``voicemail_message``."""
    for node in definition.nodes:
        config = node.config
        if isinstance(config, ActionConfig) and config.message is not None:
            key = "message" if config.channel is Channel.TEXT else "voicemail_message"
            yield f"{node_path(node.id)}.config.{key}", config.message


def _variable_name(placeholder: str) -> str | None:
    """The variable a placeholder needs: ``metadata.x`` needs none, ``variables.x`` needs x."""
    root, _, rest = placeholder.partition(".")
    if rest and root == "metadata":
        return None
    if rest and root == "variables":
        return rest
    return placeholder


def template_variable_keys(definition: Mapping[str, Any] | GraphDefinition) -> frozenset[str]:
    """The lead variables the definition's templates read (``metadata.*`` excluded)."""
    parsed = definition
    if not isinstance(parsed, GraphDefinition):
        parsed = check_graph_definition(parsed)
    names = (
        _variable_name(name) for _, text in _templates(parsed) for name in placeholder_names(text)
    )
    return frozenset(name for name in names if name is not None)


def _check_templates(
    definition: GraphDefinition, known: frozenset[str], problems: GraphProblems
) -> None:
    for path, text in _templates(definition):
        names = (_variable_name(name) for name in placeholder_names(text))
        unknown = sorted({n for n in names if n is not None and n not in known})
        if unknown:
            problems.add(
                ProblemCode.UNKNOWN_VARIABLE,
                path,
                f"unknown variable(s) {', '.join(unknown)}; known: {_names(known)} "
                "(use {{metadata.<key>}} for lead metadata)",
            )


def _label_key(label: str | None) -> str:
    return (label or "").upper()


def _check_edges(definition: GraphDefinition, problems: GraphProblems) -> None:
    """Labels the source can emit, a label on every CONDITIONAL edge, no duplicate edges."""
    first: dict[tuple[str, str, str], str] = {}
    nodes = {n.id: n for n in definition.nodes}
    for edge in definition.edges:
        source = nodes[edge.source]
        path = edge_path(edge.id)
        outputs = node_outputs(source)
        if edge.label is None and source.node_type is NodeType.CONDITIONAL:
            problems.add(
                ProblemCode.MISSING_LABEL,
                f"{path}.label",
                f"edges out of a CONDITIONAL node need a label: one of {_names(outputs)}",
            )
        elif edge.label is not None and _label_key(edge.label) not in map(_label_key, outputs):
            problems.add(
                ProblemCode.BAD_LABEL,
                f"{path}.label",
                f"a {source.node_type.value} node never emits {edge.label!r}; "
                f"expected one of {_names(outputs)}",
            )
        key = (edge.source, edge.target, _label_key(edge.label))
        if key in first:
            problems.add(
                ProblemCode.DUPLICATE_EDGE,
                path,
                f"same from_node_id, to_node_id and label as {edge_path(first[key])}",
            )
        first.setdefault(key, edge.id)


def _check_ways_out(definition: GraphDefinition, problems: GraphProblems) -> None:
    sources = {e.source for e in definition.edges}
    for node in definition.nodes:
        if not node.is_terminal and node.id not in sources:
            problems.add(
                ProblemCode.NO_WAY_OUT,
                node_path(node.id),
                f"a {node.node_type.value} node needs an outgoing edge "
                "(only CONVERTED and DROPPED end a workflow)",
            )


def reachable_from(definition: GraphDefinition, start: str) -> set[str]:
    seen = {start}
    todo = [start]
    while todo:
        for edge in definition.outgoing(todo.pop()):
            if edge.target not in seen:
                seen.add(edge.target)
                todo.append(edge.target)
    return seen


def _check_reachable(definition: GraphDefinition, problems: GraphProblems) -> None:
    assert definition.entry is not None
    seen = reachable_from(definition, definition.entry)
    for node in definition.nodes:
        if node.id not in seen:
            problems.add(
                ProblemCode.UNREACHABLE,
                node_path(node.id),
                f"no path leads here from the entry node {definition.entry!r}",
            )


def spin_cycles(definition: GraphDefinition) -> list[tuple[str, ...]]:
    """Groups of CONDITIONAL/APPLICATION nodes that can loop among themselves forever.

    They are the strongly connected components of the graph restricted to those nodes that
    have more than one node, or one node with an edge to itself. Each group is in list order.
    """
    order = {n.id: i for i, n in enumerate(definition.nodes)}
    movers = [n.id for n in definition.nodes if n.node_type not in WAITING_TYPES | TERMINAL_TYPES]
    adjacency: dict[str, list[str]] = {node_id: [] for node_id in movers}
    for edge in definition.edges:
        if edge.source in adjacency and edge.target in adjacency:
            adjacency[edge.source].append(edge.target)
    groups = [sorted(c, key=order.__getitem__) for c in strongly_connected(adjacency)]
    spins = [g for g in groups if len(g) > 1 or g[0] in adjacency[g[0]]]
    return sorted((tuple(g) for g in spins), key=lambda g: order[g[0]])


def strongly_connected(adjacency: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative so deep graphs cannot exhaust the stack."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in adjacency:
        if start in index:
            continue
        work = [(start, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            successors = adjacency[node]
            if i < len(successors):
                work.append((node, i + 1))
                successor = successors[i]
                if successor not in index:
                    work.append((successor, 0))
                elif successor in on_stack:
                    low[node] = min(low[node], index[successor])
                continue
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return components


def _check_spins(definition: GraphDefinition, problems: GraphProblems) -> None:
    for group in spin_cycles(definition):
        problems.add(
            ProblemCode.SPIN_CYCLE,
            node_path(group[0]),
            f"nodes {', '.join(group)} can loop without a TIME, VOICE_CALL or SMS node: an "
            "execution would spin; put a wait in the loop",
        )


# ---------------------------------------------------------------------------------- compile


def compile_graph(definition: Mapping[str, Any] | GraphDefinition) -> Graph:
    """One ``Node`` per node (same id), edges in list order, the entry node.

    Raises ``GraphInvalid`` on structural problems or an empty graph.
    """
    parsed = definition
    if not isinstance(parsed, GraphDefinition):
        parsed = check_graph_definition(parsed)
    if parsed.entry is None:
        raise GraphInvalid([GraphProblem(ProblemCode.EMPTY, "nodes", "the graph has no nodes")])
    nodes = {n.id: Node(n.id, n.kind, n.config, n.label) for n in parsed.nodes}
    edges = tuple(Edge(e.source, e.target, e.label) for e in parsed.edges)
    return Graph(entry=parsed.entry, nodes=nodes, edges=edges)


# ---------------------------------------------------------------------------------- edits


def new_graph_definition() -> dict[str, Any]:
    return {"nodes": [], "edges": []}


def add_node(definition: Mapping[str, Any], node: Mapping[str, Any]) -> dict[str, Any]:
    """Append ``node``; ``Conflict`` if its id is taken, ``GraphInvalid`` if it is malformed."""
    out = _copied(definition)
    node_id = node.get("id")
    if any(n.get("id") == node_id for n in _nodes(out)):
        raise Conflict(f"node {node_id!r} already exists", field="id")
    out["nodes"].append(copy.deepcopy(dict(node)))
    return _checked(out)


def update_node(
    definition: Mapping[str, Any], node_id: str, changes: Mapping[str, Any]
) -> dict[str, Any]:
    """Merge ``changes`` (``label``, ``config``, ``position_x``, ``position_y``) into a node.

    ``config`` is replaced whole. ``id`` and ``node_type`` are immutable: to change the type,
    remove the node and add a new one.
    """
    out = _copied(definition)
    index = _node_index(out, node_id)
    current = out["nodes"][index]
    for key in ("id", "node_type"):
        if key in changes and changes[key] != current.get(key):
            raise ValidationFailed(
                FieldError(key, "is immutable; remove the node and add a new one")
            )
    out["nodes"][index] = {**current, **copy.deepcopy(dict(changes))}
    return _checked(out)


def remove_node(definition: Mapping[str, Any], node_id: str) -> dict[str, Any]:
    """Remove a node and every edge into or out of it; the entry falls back to the first node."""
    out = _copied(definition)
    index = _node_index(out, node_id)
    del out["nodes"][index]
    out["edges"] = [
        e for e in _edges(out) if node_id not in (e.get("from_node_id"), e.get("to_node_id"))
    ]
    if out.get("entry_node_id") == node_id:
        del out["entry_node_id"]
    return _checked(out)


def add_edge(definition: Mapping[str, Any], edge: Mapping[str, Any]) -> dict[str, Any]:
    """Append ``edge`` (it is checked after the existing ones: first match wins).

    ``NotFound`` if an end names no node; ``Conflict`` if the id is taken or an edge with the
    same ``(from_node_id, to_node_id, label)`` exists (labels compare ignoring case, and
    ``""`` equals no label); ``GraphInvalid`` if malformed (e.g. it leaves a terminal node).
    """
    out = _copied(definition)
    ids = {n.get("id") for n in _nodes(out)}
    for key in ("from_node_id", "to_node_id"):
        value = edge.get(key)
        if isinstance(value, str) and value not in ids:
            raise NotFound(f"no node {value!r} in this workflow", field=key)
    if any(e.get("id") == edge.get("id") for e in _edges(out)):
        raise Conflict(f"edge {edge.get('id')!r} already exists", field="id")
    same = _edge_key(edge)
    if any(_edge_key(e) == same for e in _edges(out)):
        raise Conflict(
            "an edge with the same from_node_id, to_node_id and label already exists",
            field="label",
        )
    out["edges"].append(copy.deepcopy(dict(edge)))
    return _checked(out)


def remove_edge(definition: Mapping[str, Any], edge_id: str) -> dict[str, Any]:
    out = _copied(definition)
    kept = [e for e in _edges(out) if e.get("id") != edge_id]
    if len(kept) == len(out["edges"]):
        raise NotFound(f"no edge {edge_id!r} in this workflow", field="edge_id")
    out["edges"] = kept
    return _checked(out)


def set_entry_node(definition: Mapping[str, Any], node_id: str) -> dict[str, Any]:
    out = _copied(definition)
    _node_index(out, node_id)
    out["entry_node_id"] = node_id
    return _checked(out)


def _copied(definition: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(definition))
    for key in ("nodes", "edges"):
        if not isinstance(out.get(key), list):
            out[key] = []
    return out


def _nodes(definition: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [n for n in definition["nodes"] if isinstance(n, dict)]


def _edges(definition: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [e for e in definition["edges"] if isinstance(e, dict)]


def _node_index(definition: Mapping[str, Any], node_id: str) -> int:
    for index, node in enumerate(definition["nodes"]):
        if isinstance(node, dict) and node.get("id") == node_id:
            return index
    raise NotFound(f"no node {node_id!r} in this workflow", field="node_id")


def _edge_key(edge: Mapping[str, Any]) -> tuple[object, object, str]:
    label = edge.get("label")
    return (
        edge.get("from_node_id"),
        edge.get("to_node_id"),
        _label_key(label if isinstance(label, str) else None),
    )


def _checked(definition: dict[str, Any]) -> dict[str, Any]:
    check_graph_definition(definition)
    return definition
