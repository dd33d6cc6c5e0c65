"""Small checks shared by the request validators of every resource."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from reachflow.domain.errors import ProblemCollector
from reachflow.store import json_codec


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


@dataclass(frozen=True, slots=True)
class FieldLimits:
    """Bounds on the free-form JSON a client stores (settings ``REACHFLOW_MAX_*_BYTES``),
    measured as the compact JSON text in UTF-8."""

    metadata_bytes: int = 65_536
    variables_bytes: int = 65_536
    agent_config_bytes: int = 65_536


DEFAULT_LIMITS = FieldLimits()


def check_size(value: object, field: str, limit: int, problems: ProblemCollector) -> None:
    """A value whose JSON text is over ``limit`` bytes is a problem naming ``field``."""
    size = len(json_codec.dumps(value).encode())
    if size > limit:
        problems.add(field, f"is {size} bytes as JSON; at most {limit} bytes are accepted")
