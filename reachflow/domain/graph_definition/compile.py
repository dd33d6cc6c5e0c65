"""Compilation of a graph definition to the engine's ``Graph`` (Rule 5).

Edges keep their list order: the first matching label wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reachflow.domain.graph import Edge, Graph, Node
from reachflow.domain.graph_definition.model import GraphDefinition
from reachflow.domain.graph_definition.parse import check_graph_definition
from reachflow.domain.graph_definition.problems import GraphInvalid, GraphProblem, ProblemCode


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
