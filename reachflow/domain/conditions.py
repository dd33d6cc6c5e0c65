"""The condition language shared by Feather ``conditions`` and graph ``CONDITIONAL`` nodes.

A condition is ``{field, operator, value}``; a set joins conditions with ``AND`` or ``OR``.
Fields read only the execution's own state:

* ``variables.<key>``, ``metadata.<key>``: the lead's data;
* ``disposition`` (alias ``lastDisposition``): the last reported disposition;
* ``agentCall.<field>``: the last call record (``callDuration``, ``status``, ...);
* ``attempts``: actions dispatched in this execution; ``attempts.<nodeId>``: entries into a node;
* ``call_status`` (DialNexa's CONDITIONAL example): the outcome group of the last reported
  disposition, ``COMPLETED``, ``DNP`` or ``FAILED`` (see ``enums.OUTCOME_GROUPS``);
* ``phone``, ``zipcode``, ``state``: the contact.
* ``lastReply``: the contact's last reply to a step that waited for one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from reachflow.domain.enums import outcome_group
from reachflow.domain.errors import ProblemCollector


class Operator(StrEnum):
    EQUALS = "equals"
    NOT_EQUALS = "not_equals"
    EXISTS = "exists"
    CONTAINS = "contains"
    GREATER_THAN = "greater_than"
    LESS_THAN = "less_than"


class Logic(StrEnum):
    AND = "AND"
    OR = "OR"


CALL_STATUS = "call_status"
_SCALAR_FIELDS = frozenset(
    {"disposition", "lastDisposition", "attempts", "phone", "zipcode", "state", CALL_STATUS}
)
#: What an unknown field is told: every field a condition may read.
KNOWN_FIELDS_HINT = (
    "use variables.<key>, metadata.<key>, disposition, call_status, agentCall.<field>, "
    "attempts or attempts.<nodeId>"
)
#: The contact's last reply to a step that waited for one (``waitForReply``).
LAST_REPLY_FIELD = "lastReply"
_SCALAR_FIELDS = _SCALAR_FIELDS | {LAST_REPLY_FIELD}
_PREFIXES = ("variables.", "metadata.", "agentCall.", "attempts.")
AGENT_CALL_FIELDS = frozenset(
    {
        "id",
        "status",
        "callStartedAt",
        "callEndedAt",
        "callDuration",
        "callEndedReason",
        "recordingUrl",
        "summary",
    }
)


@dataclass(frozen=True, slots=True)
class Condition:
    field: str
    operator: Operator
    value: Any = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"field": self.field, "operator": self.operator.value}
        if self.operator is not Operator.EXISTS or self.value is not None:
            out["value"] = self.value
        return out


@dataclass(frozen=True, slots=True)
class ConditionSet:
    conditions: tuple[Condition, ...]
    logic: Logic = Logic.AND

    def to_json(self) -> dict[str, Any]:
        return {"logic": self.logic.value, "conditions": [c.to_json() for c in self.conditions]}


@dataclass(frozen=True, slots=True)
class Facts:
    """What a condition may look at: the execution's own state, nothing else."""

    variables: Mapping[str, Any]
    metadata: Mapping[str, Any]
    disposition: str | None
    agent_call: Mapping[str, Any] | None
    attempts: int
    node_attempts: Mapping[str, int]
    phone: str | None = None
    zipcode: str | None = None
    state: str | None = None
    last_reply: str | None = None


_MISSING = object()


def lookup(facts: Facts, field: str) -> Any:
    root, _, rest = field.partition(".")
    if not rest:
        if field in ("disposition", "lastDisposition"):
            return facts.disposition if facts.disposition is not None else _MISSING
        if field == "attempts":
            return facts.attempts
        if field == CALL_STATUS:
            group = outcome_group(facts.disposition)
            return _MISSING if group is None else group
        value = {
            "phone": facts.phone,
            "zipcode": facts.zipcode,
            "state": facts.state,
            LAST_REPLY_FIELD: facts.last_reply,
        }.get(field)
        return _MISSING if value is None else value
    if root == "attempts":
        return facts.node_attempts.get(rest, 0)
    source: Mapping[str, Any] | None = {
        "variables": facts.variables,
        "metadata": facts.metadata,
        "agentCall": facts.agent_call,
    }.get(root)
    if source is None:
        return _MISSING
    value = source.get(rest, _MISSING)
    return _MISSING if value is None else value


def holds(condition: Condition, facts: Facts) -> bool:
    actual = lookup(facts, condition.field)
    op = condition.operator
    if op is Operator.EXISTS:
        present = actual is not _MISSING and actual != ""
        return present if condition.value in (None, True) else not present
    if actual is _MISSING:
        return op is Operator.NOT_EQUALS
    expected = condition.value
    if op is Operator.EQUALS:
        return _equal(actual, expected)
    if op is Operator.NOT_EQUALS:
        return not _equal(actual, expected)
    if op is Operator.CONTAINS:
        if isinstance(actual, (list, tuple)):
            return any(_equal(item, expected) for item in actual)
        return str(expected).lower() in str(actual).lower()
    left, right = _number(actual), _number(expected)
    if left is None or right is None:
        return False
    return left > right if op is Operator.GREATER_THAN else left < right


def all_hold(conditions: ConditionSet, facts: Facts) -> bool:
    results = (holds(c, facts) for c in conditions.conditions)
    if conditions.logic is Logic.AND:
        return all(results)
    return any(results)


def _equal(actual: Any, expected: Any) -> bool:
    if isinstance(actual, bool) or isinstance(expected, bool):
        return str(actual).lower() == str(expected).lower()
    a, b = _number(actual), _number(expected)
    if a is not None and b is not None:
        return a == b
    return str(actual).lower() == str(expected).lower()


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def field_is_known(field: str, node_ids: frozenset[str] | None = None) -> bool:
    if field in _SCALAR_FIELDS:
        return True
    for prefix in _PREFIXES:
        if field.startswith(prefix) and len(field) > len(prefix):
            rest = field[len(prefix) :]
            if prefix == "agentCall.":
                return rest in AGENT_CALL_FIELDS
            if prefix == "attempts." and node_ids is not None:
                return rest in node_ids
            return True
    return False


def parse_condition_set(
    raw: object,
    path: str,
    problems: ProblemCollector,
    node_ids: frozenset[str] | None = None,
) -> ConditionSet | None:
    """A list (joined by AND) or ``{logic, conditions}``; ``None`` or ``[]`` means no condition."""
    if raw is None:
        return None
    logic = Logic.AND
    items: object = raw
    if isinstance(raw, Mapping):
        for key in raw:
            if key not in ("logic", "conditions"):
                problems.add(f"{path}.{key}", "unknown field; expected 'logic' and 'conditions'")
        logic_raw = raw.get("logic", "AND")
        if not isinstance(logic_raw, str) or logic_raw.upper() not in ("AND", "OR"):
            problems.add(f"{path}.logic", "must be AND or OR")
        else:
            logic = Logic(logic_raw.upper())
        items = raw.get("conditions", [])
        path = f"{path}.conditions"
    if not isinstance(items, list):
        problems.add(path, "must be a list of {field, operator, value}")
        return None
    parsed = [
        c
        for i, item in enumerate(items)
        if (c := _parse_condition(item, f"{path}[{i}]", problems, node_ids)) is not None
    ]
    if not items:
        return None
    return ConditionSet(tuple(parsed), logic)


def _parse_condition(
    item: object, path: str, problems: ProblemCollector, node_ids: frozenset[str] | None
) -> Condition | None:
    if not isinstance(item, Mapping):
        problems.add(path, "must be an object {field, operator, value}")
        return None
    for key in item:
        if key not in ("field", "operator", "value"):
            problems.add(f"{path}.{key}", "unknown field")
    field = item.get("field")
    if isinstance(field, str) and field_is_known(field) and not field_is_known(field, node_ids):
        problems.add(
            f"{path}.field",
            f"unknown field {field!r}: no node {field.partition('.')[2]!r} in this workflow",
        )
        return None
    if not isinstance(field, str) or not field_is_known(field, node_ids):
        problems.add(
            f"{path}.field",
            f"unknown field {field!r}; {KNOWN_FIELDS_HINT}",
        )
        return None
    op_raw = item.get("operator")
    try:
        op = Operator(str(op_raw))
    except ValueError:
        problems.add(
            f"{path}.operator",
            f"unknown operator {op_raw!r}; expected one of " + ", ".join(o.value for o in Operator),
        )
        return None
    if op is not Operator.EXISTS and "value" not in item:
        problems.add(f"{path}.value", f"operator {op.value} needs a value")
        return None
    value = item.get("value")
    if isinstance(value, (dict, list)):
        problems.add(f"{path}.value", "must be a string, number or boolean")
        return None
    return Condition(field, op, value)
