"""The parsed graph: node types, what each can emit, and the node/edge/definition records.

``NODE_OUTPUTS`` and ``node_outputs`` give the edge labels a node can emit (matched ignoring
case, see ``_label_key``); an unlabelled edge matches anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from reachflow.domain.enums import Disposition
from reachflow.domain.graph import (
    NEXT,
    OUTCOME_GROUPS,
    REPLY_OUTCOMES,
    ActionConfig,
    ConditionalConfig,
    NodeConfig,
    NodeKind,
    ReplyConfig,
)


class NodeType(StrEnum):
    VOICE_CALL = "VOICE_CALL"
    SMS = "SMS"
    TIME = "TIME"
    CONDITIONAL = "CONDITIONAL"
    APPLICATION = "APPLICATION"
    CONVERTED = "CONVERTED"  # terminal, success
    DROPPED = "DROPPED"  # terminal
    WAIT_FOR_REPLY = "WAIT_FOR_REPLY"  # hold until the contact texts back, or a timeout


NODE_KINDS: Mapping[NodeType, NodeKind] = {
    NodeType.VOICE_CALL: NodeKind.ACTION,
    NodeType.SMS: NodeKind.ACTION,
    NodeType.TIME: NodeKind.TIME,
    NodeType.CONDITIONAL: NodeKind.CONDITIONAL,
    NodeType.APPLICATION: NodeKind.APPLICATION,
    NodeType.CONVERTED: NodeKind.END,
    NodeType.DROPPED: NodeKind.END,
    NodeType.WAIT_FOR_REPLY: NodeKind.WAIT_FOR_REPLY,
}
TERMINAL_TYPES = frozenset({NodeType.CONVERTED, NodeType.DROPPED})
#: Node types that wait (for a timer or an agent's report); a loop must pass through one.
WAITING_TYPES = frozenset(
    {NodeType.VOICE_CALL, NodeType.SMS, NodeType.TIME, NodeType.WAIT_FOR_REPLY}
)

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
    NodeType.WAIT_FOR_REPLY: frozenset(REPLY_OUTCOMES),
}


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
    wait = (
        config.reply_wait
        if isinstance(config, ActionConfig)
        else config.wait
        if isinstance(config, ReplyConfig)
        else None
    )
    if wait is not None:  # a reply's outcomes, and each branch's label
        labels = frozenset(b.label for b in wait.branches)
        return NODE_OUTPUTS[node.node_type] | frozenset(REPLY_OUTCOMES) | labels
    return NODE_OUTPUTS[node.node_type]


def _label_key(label: str | None) -> str:
    return (label or "").upper()
