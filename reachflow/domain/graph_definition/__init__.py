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

The package's modules, each with one job:

- ``problems``: ``ProblemCode``, ``GraphProblem``, ``GraphProblems``, ``GraphInvalid``
- ``model``: ``NodeType``, what each type emits, ``GraphNode``, ``GraphEdge``, ``GraphDefinition``
- ``fields``: typed field readers shared by the parsers
- ``configs``: per-node ``config`` parsing
- ``parse``: ``parse_graph_definition``, ``check_graph_definition`` (Rule 1)
- ``activation``: ``validate_for_activation`` and the graph walks it uses (Rule 2)
- ``compile``: ``compile_graph`` (Rule 5)
- ``edits``: ``new_graph_definition``, ``add_node`` ... ``set_entry_node`` (Rule 4)
"""

from reachflow.domain.graph_definition.activation import (
    condition_warnings,
    reachable_from,
    set_variable_keys,
    spin_cycles,
    strongly_connected,
    template_variable_keys,
    validate_for_activation,
)
from reachflow.domain.graph_definition.compile import compile_graph
from reachflow.domain.graph_definition.configs import (
    CONDITIONAL_FIELDS,
    DELAY_KEYS,
    DURATION_UNITS,
    HTTP_METHODS,
    MAX_DELAY_SECS,
    SMS_FIELDS,
    SUPPRESS_CHANNELS,
    TIME_FIELDS,
    TIME_FORMS,
    VOICE_CALL_FIELDS,
)
from reachflow.domain.graph_definition.edits import (
    add_edge,
    add_node,
    keyed_node,
    new_graph_definition,
    remove_edge,
    remove_node,
    set_entry_node,
    update_node,
    with_ids,
)
from reachflow.domain.graph_definition.model import (
    ACTION_OUTPUTS,
    APPLICATION_OUTPUTS,
    BRANCH_DEFAULT,
    CONDITION_OUTPUTS,
    NODE_KINDS,
    NODE_OUTPUTS,
    TERMINAL_TYPES,
    WAITING_TYPES,
    GraphDefinition,
    GraphEdge,
    GraphNode,
    NodeType,
    node_outputs,
)
from reachflow.domain.graph_definition.parse import (
    DEFINITION_FIELDS,
    EDGE_FIELDS,
    NODE_FIELDS,
    check_graph_definition,
    is_graph,
    parse_graph_definition,
)
from reachflow.domain.graph_definition.problems import (
    GraphInvalid,
    GraphProblem,
    GraphProblems,
    ProblemCode,
    edge_path,
    node_path,
    raise_if_problems,
)

__all__ = [
    "ACTION_OUTPUTS",
    "APPLICATION_OUTPUTS",
    "BRANCH_DEFAULT",
    "CONDITIONAL_FIELDS",
    "CONDITION_OUTPUTS",
    "DEFINITION_FIELDS",
    "DELAY_KEYS",
    "DURATION_UNITS",
    "EDGE_FIELDS",
    "HTTP_METHODS",
    "MAX_DELAY_SECS",
    "NODE_FIELDS",
    "NODE_KINDS",
    "NODE_OUTPUTS",
    "SMS_FIELDS",
    "SUPPRESS_CHANNELS",
    "TERMINAL_TYPES",
    "TIME_FIELDS",
    "TIME_FORMS",
    "VOICE_CALL_FIELDS",
    "WAITING_TYPES",
    "GraphDefinition",
    "GraphEdge",
    "GraphInvalid",
    "GraphNode",
    "GraphProblem",
    "GraphProblems",
    "NodeType",
    "ProblemCode",
    "add_edge",
    "add_node",
    "check_graph_definition",
    "compile_graph",
    "condition_warnings",
    "edge_path",
    "is_graph",
    "keyed_node",
    "new_graph_definition",
    "node_outputs",
    "node_path",
    "parse_graph_definition",
    "raise_if_problems",
    "reachable_from",
    "remove_edge",
    "remove_node",
    "set_entry_node",
    "set_variable_keys",
    "spin_cycles",
    "strongly_connected",
    "template_variable_keys",
    "update_node",
    "validate_for_activation",
    "with_ids",
]
