"""Every definition form compiles to one ``Graph``: Feather's ``steps``, DialNexa's ``nodes``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reachflow.domain.definition import compile_linear, is_linear
from reachflow.domain.graph import Graph
from reachflow.domain.graph_definition import compile_graph, is_graph


def compile_definition(definition: Mapping[str, Any]) -> Graph:
    """``steps`` -> ``compile_linear``; ``nodes`` -> ``compile_graph``.

    A graph without nodes has nothing to execute, so it is not a form either (``ValueError``).
    """
    if is_linear(definition):
        return compile_linear(definition)
    if is_graph(definition) and definition["nodes"]:
        return compile_graph(definition)
    raise ValueError("unknown definition form: expected 'steps', or 'nodes' with at least one node")
