"""Edit helpers on the stored (raw) form (Rule 4): ``add_node`` ... ``set_entry_node``.

None mutates its input; each returns a new definition that passes
``parse_graph_definition``, or raises (``Conflict``, ``NotFound``, ``ValidationFailed`` or
``GraphInvalid``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from reachflow.domain.errors import Conflict, FieldError, NotFound, ValidationFailed
from reachflow.domain.graph_definition.model import _label_key
from reachflow.domain.graph_definition.parse import check_graph_definition


def new_graph_definition() -> dict[str, Any]:
    return {"nodes": [], "edges": []}


def with_ids(definition: object) -> object:
    """A definition as a client may write it, with the ids the stored form needs.

    A node may name itself with ``key`` instead of ``id`` (it is stored as ``id``, so edges
    and ``attempts.<id>`` conditions use it). An edge without an ``id`` gets one from its
    position, ``edge_<n>`` (1-based; ``edge_<n>_2`` ... if a given id already took it), as
    ``POST .../edges`` generates one. Anything else is left for the parser to report; the
    input is not mutated.
    """
    if not isinstance(definition, Mapping):
        return definition
    out = copy.deepcopy(dict(definition))
    nodes = out.get("nodes")
    if isinstance(nodes, list):
        out["nodes"] = [_keyed(n) for n in nodes]
    edges = out.get("edges")
    if isinstance(edges, list):
        taken = {e.get("id") for e in edges if isinstance(e, dict)}
        filled: list[object] = []
        for index, edge in enumerate(edges):
            if isinstance(edge, dict) and edge.get("id") is None:
                edge_id = _free(f"edge_{index + 1}", taken)
                taken.add(edge_id)
                edge = {"id": edge_id, **{k: v for k, v in edge.items() if k != "id"}}
            filled.append(edge)
        out["edges"] = filled
    return out


def _free(wanted: str, taken: set[object]) -> str:
    candidate, n = wanted, 1
    while candidate in taken:
        n += 1
        candidate = f"{wanted}_{n}"
    return candidate


def keyed_node(node: Mapping[str, Any]) -> dict[str, Any]:
    """``key`` read as ``id`` when ``id`` is left out (both given: the parser reports key)."""
    keyed: dict[str, Any] = _keyed(dict(node))
    return keyed


def _keyed(node: object) -> Any:
    if isinstance(node, dict) and node.get("id") is None and "key" in node:
        out = {k: v for k, v in node.items() if k not in ("key", "id")}
        return {"id": node["key"], **out}
    return node


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
