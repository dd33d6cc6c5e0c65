"""Field readers shared by the parsers: typed reads of one key that report coded problems.

Each reader adds a ``ProblemCode.INVALID`` problem at ``<path>.<key>`` and returns a safe
fallback instead of raising, so parsing carries on and reports every problem at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from reachflow.domain.graph_definition.problems import GraphProblems, ProblemCode
from reachflow.domain.templates import TemplateSyntaxError, placeholder_names


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
