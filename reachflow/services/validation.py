"""Small checks shared by the request validators of every resource."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from reachflow.domain.errors import ProblemCollector


def start_validation(
    body: dict[str, Any], allowed: Iterable[str], *, partial: bool
) -> tuple[ProblemCollector, dict[str, Any]]:
    """Flag unknown fields and read the required ``name``; returns (problems, values)."""
    known = frozenset(allowed)
    problems = ProblemCollector()
    for key in body:
        if key not in known:
            problems.add(key, "unknown field")
    out: dict[str, Any] = {}
    if "name" in body or not partial:
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            problems.add("name", "is required: a non-empty string")
        else:
            out["name"] = name.strip()
    return problems, out
