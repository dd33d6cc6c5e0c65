"""The condition language: operators over the execution's facts, AND/OR, parse errors."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reachflow.domain.conditions import (
    Condition,
    ConditionSet,
    Facts,
    Logic,
    Operator,
    all_hold,
    field_is_known,
    holds,
    parse_condition_set,
)
from reachflow.domain.errors import ProblemCollector

FACTS = Facts(
    variables={"firstName": "Taylor", "age": 42, "score": "7.5", "vip": True, "tags": ["a", "B"]},
    metadata={"campaign": "Renewal-Q2", "empty": "", "none": None},
    disposition="NO_ANSWER",
    agent_call={"callDuration": 35, "status": "ended", "summary": "Asked to call back"},
    attempts=3,
    node_attempts={"step-1": 2},
    phone="+14155550123",
    zipcode="94107",
    state="CA",
)
BLANK = Facts(
    variables={}, metadata={}, disposition=None, agent_call=None, attempts=0, node_attempts={}
)


def check(field: str, op: str, value: Any = None, facts: Facts = FACTS) -> bool:
    return holds(Condition(field, Operator(op), value), facts)


@pytest.mark.parametrize(
    ("field", "op", "value", "expected"),
    [
        # equals: case-insensitive text, numbers by value, booleans by text
        ("variables.firstName", "equals", "taylor", True),
        ("variables.firstName", "equals", "Jordan", False),
        ("variables.age", "equals", "42", True),
        ("variables.age", "equals", 42.0, True),
        ("variables.vip", "equals", "true", True),
        ("variables.vip", "equals", False, False),
        ("metadata.campaign", "equals", "renewal-q2", True),
        ("disposition", "equals", "NO_ANSWER", True),
        ("lastDisposition", "equals", "no_answer", True),
        ("agentCall.status", "equals", "ENDED", True),
        ("attempts", "equals", 3, True),
        ("attempts.step-1", "equals", 2, True),
        ("attempts.step-9", "equals", 0, True),
        ("state", "equals", "ca", True),
        ("zipcode", "equals", "94107", True),
        ("phone", "equals", "+14155550123", True),
        # not_equals: a missing value is not equal to anything
        ("variables.firstName", "not_equals", "Taylor", False),
        ("variables.firstName", "not_equals", "Jordan", True),
        ("variables.missing", "not_equals", "x", True),
        ("metadata.none", "not_equals", "x", True),
        ("disposition", "not_equals", "DNC", True),
        # exists
        ("variables.firstName", "exists", None, True),
        ("variables.firstName", "exists", True, True),
        ("variables.firstName", "exists", False, False),
        ("variables.missing", "exists", None, False),
        ("variables.missing", "exists", False, True),
        ("metadata.empty", "exists", None, False),
        ("metadata.none", "exists", None, False),
        ("agentCall.recordingUrl", "exists", None, False),
        ("agentCall.summary", "exists", None, True),
        ("disposition", "exists", None, True),
        ("attempts", "exists", None, True),
        # contains: substring (case-insensitive) or list membership
        ("agentCall.summary", "contains", "CALL BACK", True),
        ("agentCall.summary", "contains", "voicemail", False),
        ("variables.tags", "contains", "b", True),
        ("variables.tags", "contains", "c", False),
        ("metadata.campaign", "contains", "q2", True),
        ("variables.missing", "contains", "x", False),
        # greater_than / less_than: numbers, numeric strings; anything else is false
        ("agentCall.callDuration", "greater_than", 30, True),
        ("agentCall.callDuration", "greater_than", 35, False),
        ("agentCall.callDuration", "less_than", "60", True),
        ("variables.score", "greater_than", 7, True),
        ("variables.score", "less_than", 7, False),
        ("attempts", "greater_than", 2, True),
        ("attempts", "less_than", 3, False),
        ("attempts.step-1", "less_than", 3, True),
        ("variables.firstName", "greater_than", 1, False),
        ("variables.vip", "greater_than", 0, False),
        ("variables.age", "greater_than", "many", False),
        ("variables.missing", "less_than", 5, False),
    ],
)
def test_operators(field: str, op: str, value: Any, expected: bool) -> None:
    assert check(field, op, value) is expected


def test_blank_facts() -> None:
    assert not check("disposition", "exists", facts=BLANK)
    assert not check("disposition", "equals", "NO_ANSWER", facts=BLANK)
    assert check("disposition", "not_equals", "NO_ANSWER", facts=BLANK)
    assert not check("agentCall.callDuration", "greater_than", 0, facts=BLANK)
    assert check("attempts", "equals", 0, facts=BLANK)
    assert not check("state", "exists", facts=BLANK)


def test_and_or() -> None:
    yes = Condition("disposition", Operator.EQUALS, "NO_ANSWER")
    no = Condition("disposition", Operator.EQUALS, "DNC")
    assert all_hold(ConditionSet((yes, yes)), FACTS)
    assert not all_hold(ConditionSet((yes, no)), FACTS)
    assert all_hold(ConditionSet((no, yes), Logic.OR), FACTS)
    assert not all_hold(ConditionSet((no, no), Logic.OR), FACTS)
    assert all_hold(ConditionSet(()), FACTS)
    assert not all_hold(ConditionSet((), Logic.OR), FACTS)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=6))
def test_and_or_match_all_any(truths: list[bool]) -> None:
    conds = tuple(
        Condition("disposition", Operator.EQUALS, "NO_ANSWER" if t else "DNC") for t in truths
    )
    assert all_hold(ConditionSet(conds, Logic.AND), FACTS) is all(truths)
    assert all_hold(ConditionSet(conds, Logic.OR), FACTS) is any(truths)


def parse(raw: object, node_ids: frozenset[str] | None = None) -> tuple[Any, list[str]]:
    problems = ProblemCollector()
    result = parse_condition_set(raw, "steps[0].conditions", problems, node_ids)
    return result, [p.field for p in problems.problems]


def test_parse_list_is_and() -> None:
    result, problems = parse(
        [
            {"field": "variables.vip", "operator": "equals", "value": True},
            {"field": "disposition", "operator": "exists"},
        ]
    )
    assert problems == []
    assert result == ConditionSet(
        (
            Condition("variables.vip", Operator.EQUALS, True),
            Condition("disposition", Operator.EXISTS, None),
        ),
        Logic.AND,
    )


def test_parse_object_with_logic() -> None:
    result, problems = parse(
        {"logic": "or", "conditions": [{"field": "attempts", "operator": "less_than", "value": 3}]}
    )
    assert problems == []
    assert result == ConditionSet((Condition("attempts", Operator.LESS_THAN, 3),), Logic.OR)


@pytest.mark.parametrize("raw", [None, [], {"conditions": []}])
def test_parse_empty_means_no_condition(raw: object) -> None:
    assert parse(raw) == (None, [])


P = "steps[0].conditions"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("disposition == DNC", [P]),
        ({"logic": "XOR", "conditions": []}, [f"{P}.logic"]),
        ({"logic": 1, "conditions": []}, [f"{P}.logic"]),
        ({"mode": "AND", "conditions": []}, [f"{P}.mode"]),
        ({"conditions": "x"}, [f"{P}.conditions"]),
        (
            {"conditions": [{"field": "nope", "operator": "equals", "value": 1}]},
            [f"{P}.conditions[0].field"],
        ),
        (["x"], [f"{P}[0]"]),
        ([{"field": "variables", "operator": "exists"}], [f"{P}[0].field"]),
        ([{"field": "variables.", "operator": "exists"}], [f"{P}[0].field"]),
        ([{"field": "agentCall.secret", "operator": "exists"}], [f"{P}[0].field"]),
        ([{"field": 5, "operator": "exists"}], [f"{P}[0].field"]),
        ([{"operator": "exists"}], [f"{P}[0].field"]),
        ([{"field": "disposition", "operator": "=="}], [f"{P}[0].operator"]),
        ([{"field": "disposition", "operator": None}], [f"{P}[0].operator"]),
        ([{"field": "disposition", "operator": "equals"}], [f"{P}[0].value"]),
        ([{"field": "disposition", "operator": "equals", "value": [1]}], [f"{P}[0].value"]),
        ([{"field": "disposition", "operator": "equals", "value": {}}], [f"{P}[0].value"]),
        (
            [{"field": "disposition", "operator": "exists", "negate": True}],
            [f"{P}[0].negate"],
        ),
        (
            [
                {"field": "disposition", "operator": "exists"},
                {"field": "bogus", "operator": "exists"},
            ],
            [f"{P}[1].field"],
        ),
    ],
)
def test_parse_problems_name_the_field(raw: object, expected: list[str]) -> None:
    assert parse(raw)[1] == expected


def test_parse_problem_messages_help() -> None:
    problems = ProblemCollector()
    parse_condition_set([{"field": "x", "operator": "is"}], "c", problems)
    assert "variables.<key>" in problems.problems[0].message
    problems = ProblemCollector()
    parse_condition_set([{"field": "disposition", "operator": "is", "value": 1}], "c", problems)
    assert "greater_than" in problems.problems[0].message


def test_attempts_node_checked_against_known_nodes() -> None:
    raw = [{"field": "attempts.call", "operator": "greater_than", "value": 1}]
    assert parse(raw, frozenset({"call"}))[1] == []
    assert parse(raw, frozenset({"text"}))[1] == [f"{P}[0].field"]
    assert parse(raw)[1] == []  # no node list: any node id


def test_field_is_known() -> None:
    for field in ("disposition", "lastDisposition", "attempts", "phone", "zipcode", "state"):
        assert field_is_known(field)
    assert field_is_known("variables.x.y")
    assert field_is_known("metadata.campaign")
    assert field_is_known("agentCall.callDuration")
    assert not field_is_known("agentCall.transcript")
    assert not field_is_known("lead.phone")
    assert not field_is_known("")


def test_to_json_round_trip() -> None:
    cs = ConditionSet(
        (
            Condition("variables.vip", Operator.EQUALS, True),
            Condition("disposition", Operator.EXISTS),
            Condition("disposition", Operator.EXISTS, False),
        ),
        Logic.OR,
    )
    out = cs.to_json()
    assert out["conditions"][1] == {"field": "disposition", "operator": "exists"}
    result, problems = parse(out)
    assert problems == []
    assert result == cs
