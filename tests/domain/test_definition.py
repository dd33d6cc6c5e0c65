"""Feather's linear definitions: validation names fields; compilation builds the graph."""

from __future__ import annotations

from itertools import count
from typing import Any

import pytest

from reachflow.domain.compile import compile_definition
from reachflow.domain.conditions import Condition, ConditionSet, Operator
from reachflow.domain.definition import (
    END_COMPLETE,
    END_FINISH,
    attempt_node_id,
    compile_linear,
    is_linear,
    normalize_linear,
)
from reachflow.domain.enums import Channel, Disposition
from reachflow.domain.errors import ValidationFailed
from reachflow.domain.graph import SKIPPED, ActionConfig, Edge, EndConfig, NodeKind

AGENTS = {"call-1": Channel.CALL, "text-1": Channel.TEXT}


def ids() -> Any:
    return (f"new-{i}" for i in count(1))


def normalize(raw: object) -> dict[str, Any]:
    return normalize_linear(raw, AGENTS, ids())


def call(order: int = 1, **extra: Any) -> dict[str, Any]:
    return {"type": "CALL", "order": order, "agentId": "call-1", **extra}


def text(order: int = 2, **extra: Any) -> dict[str, Any]:
    return {"type": "TEXT", "order": order, "agentId": "text-1", **extra}


def problems_of(raw: object) -> list[str]:
    with pytest.raises(ValidationFailed) as info:
        normalize(raw)
    return [p.field for p in info.value.errors]


SEED_002 = {
    "steps": [
        call(1, delayInSecs=0, leaveVoicemail=True, finishOn=["CALENDLY", "NOT_INTERESTED", "DNC"]),
        text(
            2,
            delayInSecs=86400,
            initialMessage="Hi {{firstName}}, following up on our earlier outreach.",
            finishOn=["DNC"],
        ),
    ]
}


def test_seed_002_normalizes_with_defaults() -> None:
    out = normalize(SEED_002)
    assert out["isInfinite"] is False
    first, second = out["steps"]
    assert first == {
        "id": "new-1",
        "type": "CALL",
        "order": 1,
        "delayInSecs": 0,
        "agentId": "call-1",
        "leaveVoicemail": True,
        "needsTCPACompliance": True,
        "finishOn": ["CALENDLY", "NOT_INTERESTED", "DNC"],
        "conditions": [],
        "count": 1,
    }
    assert second["id"] == "new-2"
    assert second["initialMessage"].startswith("Hi {{firstName}}")
    assert second["delayInSecs"] == 86400


def test_steps_sorted_by_order_and_ids_kept() -> None:
    out = normalize({"steps": [text(5, id="b"), call(2, id="a")]})
    assert [s["id"] for s in out["steps"]] == ["a", "b"]
    # Normalising again is a fixed point.
    assert normalize(out) == out


P = "definition.steps"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"steps": [call(agentId="call-9")]}, [f"{P}[0].agentId"]),
        ({"steps": [call(agentId="text-1")]}, [f"{P}[0].agentId"]),
        ({"steps": [text(1, agentId="call-1")]}, [f"{P}[0].agentId"]),
        ({"steps": [{"type": "CALL", "order": 1}]}, [f"{P}[0].agentId"]),
        ({"steps": [call(1), text(1)]}, [f"{P}[1].order"]),
        ({"steps": [call(delayInSecs=-1)]}, [f"{P}[0].delayInSecs"]),
        ({"steps": [call(delayInSecs="60")]}, [f"{P}[0].delayInSecs"]),
        ({"steps": [call(delayInSecs=1.5)]}, [f"{P}[0].delayInSecs"]),
        ({"steps": [call(finishOn=["DNC", "HUNG_UP"])]}, [f"{P}[0].finishOn[1]"]),
        ({"steps": [call(finishOn=["dnc"])]}, [f"{P}[0].finishOn[0]"]),
        ({"steps": [call(finishOn=[{"x": 1}])]}, [f"{P}[0].finishOn[0]"]),
        ({"steps": [call(finishOn=[["DNC"]])]}, [f"{P}[0].finishOn[0]"]),
        ({"steps": [call(finishOn="DNC")]}, [f"{P}[0].finishOn"]),
        ({"steps": [call(bogus=1)]}, [f"{P}[0].bogus"]),
        ({"steps": [text(1, initialMessage="Hi {{firstName}")]}, [f"{P}[0].initialMessage"]),
        ({"steps": [text(1, initialMessage=5)]}, [f"{P}[0].initialMessage"]),
        ({"steps": [call(voicemailMessage="{{ bad name }}")]}, [f"{P}[0].voicemailMessage"]),
        ({"steps": [call()], "isInfinite": True}, ["definition.isInfinite"]),
        ({"steps": [call(delayInSecs=0)], "isInfinite": True}, ["definition.isInfinite"]),
        ({"steps": [call()], "isInfinite": "yes"}, ["definition.isInfinite"]),
        ({"steps": [call(type="EMAIL")]}, [f"{P}[0].type"]),
        ({"steps": [{"type": "CALL", "agentId": "call-1"}]}, [f"{P}[0].order"]),
        ({"steps": [call(0)]}, [f"{P}[0].order"]),
        ({"steps": [call(count=0)]}, [f"{P}[0].count"]),
        ({"steps": [call(count=21)]}, [f"{P}[0].count"]),
        ({"steps": [call(leaveVoicemail="true")]}, [f"{P}[0].leaveVoicemail"]),
        ({"steps": [call(needsTCPACompliance=1)]}, [f"{P}[0].needsTCPACompliance"]),
        ({"steps": [call(id="")]}, [f"{P}[0].id"]),
        ({"steps": [call(1, id="x"), text(2, id="x")]}, [f"{P}[1].id"]),
        (
            {"steps": [call(conditions=[{"field": "nope", "operator": "exists"}])]},
            [f"{P}[0].conditions[0].field"],
        ),
        ({"steps": ["call"]}, [f"{P}[0]"]),
        ({"steps": []}, [P]),
        ({"steps": "x"}, [P]),
        ({}, [P]),
        ({"steps": [call()], "name": "x"}, ["definition.name"]),
        ([call()], ["definition"]),
    ],
)
def test_problems_name_the_field(raw: object, expected: list[str]) -> None:
    assert problems_of(raw) == expected


def test_problem_messages() -> None:
    with pytest.raises(ValidationFailed) as info:
        normalize({"steps": [call(agentId="text-1"), call(2, agentId="call-9")]})
    messages = [p.message for p in info.value.errors]
    assert "a CALL step needs a CALL agent" in messages[0]
    assert "unknown agent 'call-9'" in messages[1]
    assert info.value.field == f"{P}[0].agentId"
    assert info.value.code == "VALIDATION_ERROR"


def test_every_problem_at_once() -> None:
    raw = {
        "steps": [
            call(1, delayInSecs=-5, finishOn=["NOPE"], extra=True),
            text(1, agentId="call-1", initialMessage="{{oops"),
        ],
        "isInfinite": True,
    }
    assert sorted(problems_of(raw)) == sorted(
        [
            f"{P}[0].extra",
            f"{P}[0].delayInSecs",
            f"{P}[0].finishOn[0]",
            f"{P}[1].agentId",
            f"{P}[1].initialMessage",
            f"{P}[1].order",
            "definition.isInfinite",
        ]
    )


def test_infinite_with_a_delay_is_fine() -> None:
    out = normalize({"steps": [call(delayInSecs=3600)], "isInfinite": True})
    assert out["isInfinite"] is True


def test_custom_path() -> None:
    with pytest.raises(ValidationFailed) as info:
        normalize_linear({"steps": [call(agentId="x")]}, AGENTS, ids(), path="body.definition")
    assert info.value.field == "body.definition.steps[0].agentId"


# ------------------------------------------------------------------------------ compile


def edges_from(graph: Any, node_id: str) -> list[tuple[str, str | None]]:
    return [(e.target, e.label) for e in graph.outgoing(node_id)]


def test_compile_seed_002() -> None:
    graph = compile_definition(normalize(SEED_002))
    assert graph.entry == "new-1"
    assert set(graph.nodes) == {"new-1", "new-2", END_FINISH, END_COMPLETE}
    assert edges_from(graph, "new-1") == [
        (END_FINISH, "CALENDLY"),
        (END_FINISH, "NOT_INTERESTED"),
        (END_FINISH, "DNC"),
        ("new-2", None),
    ]
    assert edges_from(graph, "new-2") == [(END_FINISH, "DNC"), (END_COMPLETE, None)]
    first = graph.node("new-1")
    assert first.kind is NodeKind.ACTION
    assert isinstance(first.config, ActionConfig)
    assert first.config.channel is Channel.CALL
    assert first.config.leave_voicemail
    assert first.config.finish_on == (
        Disposition.CALENDLY,
        Disposition.NOT_INTERESTED,
        Disposition.DNC,
    )
    second = graph.node("new-2").config
    assert isinstance(second, ActionConfig)
    assert second.delay_secs == 86400
    assert second.message is not None
    assert second.message.startswith("Hi {{firstName}}")
    assert second.step_order == 2
    assert second.step_id == "new-2"
    assert graph.node(END_FINISH).kind is NodeKind.END
    assert isinstance(graph.node(END_COMPLETE).config, EndConfig)
    assert [n.id for n in graph.actions()] == ["new-1", "new-2"]
    # Outcomes route through the edges in order.
    assert graph.next_node("new-1", "DNC") == END_FINISH
    assert graph.next_node("new-1", "NO_ANSWER") == "new-2"
    assert graph.next_node("new-2", "TEXT_CONSENT") == END_COMPLETE


def test_compile_count_chains_attempts() -> None:
    graph = compile_linear(
        normalize(
            {"steps": [call(1, id="c", count=3, delayInSecs=60, finishOn=["DNC"]), text(2, id="t")]}
        )
    )
    assert attempt_node_id("c", 1) == "c"
    assert attempt_node_id("c", 3) == "c#3"
    assert edges_from(graph, "c") == [(END_FINISH, "DNC"), ("c#2", None)]
    assert edges_from(graph, "c#2") == [(END_FINISH, "DNC"), ("c#3", None)]
    assert edges_from(graph, "c#3") == [(END_FINISH, "DNC"), ("t", None)]
    for node_id in ("c", "c#2", "c#3"):
        config = graph.node(node_id).config
        assert isinstance(config, ActionConfig)
        assert config.delay_secs == 60
        assert config.step_id == "c"


def test_compile_guard_skips_every_attempt() -> None:
    guard_raw = [{"field": "variables.vip", "operator": "equals", "value": True}]
    graph = compile_linear(
        normalize(
            {
                "steps": [
                    call(1, id="c", count=2, conditions=guard_raw, finishOn=["DNC"]),
                    text(2, id="t", conditions={"logic": "OR", "conditions": guard_raw}),
                ]
            }
        )
    )
    first = graph.node("c").config
    assert isinstance(first, ActionConfig)
    assert first.guard == ConditionSet((Condition("variables.vip", Operator.EQUALS, True),))
    again = graph.node("c#2").config
    assert isinstance(again, ActionConfig)
    assert again.guard is None  # the guard is checked once, on reaching the step
    assert edges_from(graph, "c") == [("t", SKIPPED), (END_FINISH, "DNC"), ("c#2", None)]
    assert graph.next_node("c", SKIPPED) == "t"
    # A single-attempt step needs no SKIPPED edge: the default edge is the next step.
    assert edges_from(graph, "t") == [(END_COMPLETE, None)]
    assert graph.next_node("t", SKIPPED) == END_COMPLETE


def test_compile_infinite_loops_to_the_first_step() -> None:
    graph = compile_linear(
        normalize({"steps": [call(1, id="a", delayInSecs=60), text(2, id="b")], "isInfinite": True})
    )
    assert edges_from(graph, "b") == [("a", None)]
    assert graph.next_node("b", "NO_ANSWER") == "a"


def test_compile_definition_rejects_other_forms() -> None:
    assert is_linear({"steps": []})
    assert not is_linear({"nodes": []})
    assert not is_linear([])
    with pytest.raises(ValueError, match="unknown definition form"):
        compile_definition({"nodes": []})


@pytest.mark.parametrize(
    ("label", "outcome", "matches"),
    [
        (None, "anything", True),
        ("", "anything", True),
        ("DNC", "DNC", True),
        ("dnc", "DNC", True),
        ("DNC", "NO_ANSWER", False),
        ("DNP", "NO_ANSWER", True),
        ("dnp", "LINE_BUSY", True),
        ("DNP", "DNC", False),
        ("FAILED", "BAD_NUMBER", True),
        ("FAILED", "DISPATCH_FAILED", True),
        ("COMPLETED", "CALENDLY", True),
        ("COMPLETED", "NO_ANSWER", False),
        ("SKIPPED", "NO_ANSWER", False),
    ],
)
def test_edge_labels(label: str | None, outcome: str, matches: bool) -> None:
    assert Edge("a", "b", label).matches(outcome) is matches


def test_a_calls_voicemail_message_is_the_message_it_carries() -> None:
    graph = compile_definition(
        normalize({"steps": [call(leaveVoicemail=True, voicemailMessage="Hi {{firstName}}")]})
    )
    config = graph.node("new-1").config
    assert isinstance(config, ActionConfig)
    assert config.message == "Hi {{firstName}}"
