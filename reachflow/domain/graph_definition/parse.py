"""Structural parsing of a stored definition (Rule 1): drafts pass while incomplete.

``parse_graph_definition`` checks types, node types, config shapes (see ``configs``), unique
ids, edges between existing nodes and that nothing leaves a terminal node; it adds every
problem to a ``GraphProblems``. ``check_graph_definition`` raises them as ``GraphInvalid``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from reachflow.domain.graph import ActionConfig
from reachflow.domain.graph_definition.configs import _CONFIG_PARSERS
from reachflow.domain.graph_definition.fields import _coordinate, _opt_str, _unknown_keys
from reachflow.domain.graph_definition.model import (
    GraphDefinition,
    GraphEdge,
    GraphNode,
    NodeType,
)
from reachflow.domain.graph_definition.problems import (
    GraphProblems,
    ProblemCode,
    edge_path,
    node_path,
)

DEFINITION_FIELDS = frozenset({"nodes", "edges", "entry_node_id"})
NODE_FIELDS = frozenset({"id", "node_type", "label", "position_x", "position_y", "config"})
EDGE_FIELDS = frozenset({"id", "from_node_id", "to_node_id", "label"})


_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,100}")


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
    if item_id is None:
        problems.add(
            ProblemCode.INVALID,
            f"{path}.id",
            "is required: an id (or key) of 1-100 letters, digits or _ . : - that edges and "
            "conditions name",
        )
        return None
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
