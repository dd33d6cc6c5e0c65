"""Every definition form compiles to one ``Graph``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reachflow.domain.definition import compile_linear, is_linear
from reachflow.domain.graph import Graph


def compile_definition(definition: Mapping[str, Any]) -> Graph:
    if is_linear(definition):
        return compile_linear(definition)
    raise ValueError("unknown definition form: expected 'steps'")
