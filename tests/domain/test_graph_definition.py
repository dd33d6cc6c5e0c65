"""DialNexa's graph definitions: structural parsing, activation checks, compilation, edits."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reachflow.domain.compile import compile_definition
from reachflow.domain.conditions import Condition, ConditionSet, Operator
from reachflow.domain.decider import (
    AgentReported,
    ApplicationFinished,
    Context,
    Decision,
    Lead,
    WakeUp,
    decide,
    new_execution,
)
from reachflow.domain.enums import Channel, Disposition, ExecutionStatus
from reachflow.domain.errors import Conflict, NotFound, ValidationFailed
from reachflow.domain.gate import Gate
from reachflow.domain.graph import (
    ActionConfig,
    ApplicationConfig,
    ConditionalConfig,
    Edge,
    EndConfig,
    EndOutcome,
    NodeKind,
    TimeConfig,
)
from reachflow.domain.graph_definition import (
    ACTION_OUTPUTS,
    NODE_OUTPUTS,
    GraphInvalid,
    GraphProblems,
    NodeType,
    ProblemCode,
    add_edge,
    add_node,
    check_graph_definition,
    compile_graph,
    node_outputs,
    parse_graph_definition,
    remove_edge,
    remove_node,
    set_entry_node,
    spin_cycles,
    template_variable_keys,
    update_node,
    validate_for_activation,
)

AGENTS = {"call-1": Channel.CALL, "text-1": Channel.TEXT}
KEYS = frozenset({"firstName"})
Raw = dict[str, Any]


def node(node_id: str, node_type: str, **config: Any) -> Raw:
    return {"id": node_id, "node_type": node_type, "label": node_id, "config": config}


def edge(edge_id: str, source: str, target: str, label: str | None = None) -> Raw:
    out: Raw = {"id": edge_id, "from_node_id": source, "to_node_id": target}
    if label is not None:
        out["label"] = label
    return out


def nurture() -> Raw:
    """Call; no pick-up: wait two days and try again twice; then text; converted or dropped."""
    return {
        "nodes": [
            node("call", "VOICE_CALL", agent_id="call-1", voicemail_message="Hi {{firstName}}"),
            node("wait", "TIME", delay_hours=48),
            node(
                "tries",
                "CONDITIONAL",
                conditions=[{"field": "attempts.call", "operator": "less_than", "value": 3}],
            ),
            node("sms", "SMS", agent_id="text-1", message="Hi {{firstName}}, {{metadata.city}}"),
            node("tag", "APPLICATION", action="set_variable", key="tier", value="gold"),
            node("won", "CONVERTED"),
            node("lost", "DROPPED"),
        ],
        "edges": [
            edge("e1", "call", "won", "COMPLETED"),
            edge("e2", "call", "wait", "DNP"),
            edge("e3", "call", "lost"),
            edge("e4", "wait", "tries"),
            edge("e5", "tries", "call", "true"),
            edge("e6", "tries", "sms", "false"),
            edge("e7", "sms", "tag", "TEXT_CONSENT"),
            edge("e8", "sms", "lost"),
            edge("e9", "tag", "won"),
        ],
    }


def parse_problems(raw: object) -> list[tuple[str, str]]:
    problems = GraphProblems()
    parsed = parse_graph_definition(raw, problems)
    assert (parsed is None) == bool(problems.items)
    return [(p.code.value, p.field) for p in problems.items]


def activation_problems(
    raw: Raw, agents: dict[str, Channel] | None = None, keys: frozenset[str] | None = KEYS
) -> list[tuple[str, str]]:
    found = validate_for_activation(raw, agents=agents or AGENTS, variable_keys=keys)
    return [(p.code.value, p.field) for p in found]


def changed(**changes: Callable[[Raw], None]) -> Callable[[], Raw]:
    (mutate,) = changes.values()

    def build() -> Raw:
        raw = nurture()
        mutate(raw)
        return raw

    return build


def node_of(raw: Raw, node_id: str) -> Raw:
    (found,) = (n for n in raw["nodes"] if n["id"] == node_id)
    return found


def set_config(node_id: str, **config: Any) -> Callable[[Raw], None]:
    return lambda raw: node_of(raw, node_id).__setitem__("config", config)


# ---------------------------------------------------------------------------------- parsing


def test_the_nurture_graph_is_valid() -> None:
    assert parse_problems(nurture()) == []
    assert activation_problems(nurture()) == []


def test_a_draft_may_be_incomplete() -> None:
    draft = {
        "nodes": [
            node("call", "VOICE_CALL"),
            node("sms", "SMS"),
            node("wait", "TIME"),
            node("branch", "CONDITIONAL"),
        ],
        "edges": [],
    }
    assert parse_problems(draft) == []
    assert parse_problems({"nodes": []}) == []
    assert check_graph_definition({"nodes": []}).entry is None


PARSE_CASES: list[tuple[str, object, list[tuple[str, str]]]] = [
    ("not an object", [], [("invalid", "definition")]),
    ("no nodes", {"edges": []}, [("invalid", "nodes")]),
    ("unknown top key", {"nodes": [], "steps": []}, [("invalid", "steps")]),
    ("node not an object", {"nodes": [3]}, [("invalid", "nodes[0]")]),
    ("node without id", {"nodes": [{"node_type": "TIME"}]}, [("invalid", "nodes[0].id")]),
    (
        "bad id characters",
        {"nodes": [node("a b", "CONVERTED")]},
        [("invalid", "nodes[0].id")],
    ),
    (
        "duplicate node id",
        {"nodes": [node("a", "CONVERTED"), node("a", "DROPPED")]},
        [("duplicate_id", "nodes[1].id")],
    ),
    (
        "unknown node type",
        {"nodes": [node("a", "WEBHOOK")]},
        [("unknown_node_type", "nodes[a].node_type")],
    ),
    (
        "node type not a string",
        {"nodes": [{"id": "a", "node_type": ["SMS"]}]},
        [("unknown_node_type", "nodes[a].node_type")],
    ),
    (
        "unknown node key",
        {"nodes": [{**node("a", "CONVERTED"), "colour": "red"}]},
        [("invalid", "nodes[a].colour")],
    ),
    (
        "bad position",
        {"nodes": [{**node("a", "CONVERTED"), "position_x": "left"}]},
        [("invalid", "nodes[a].position_x")],
    ),
    (
        "config not an object",
        {"nodes": [{**node("a", "CONVERTED"), "config": []}, {**node("b", "TIME"), "config": 1}]},
        [("invalid", "nodes[a].config"), ("invalid", "nodes[b].config")],
    ),
    (
        "terminal with config",
        {"nodes": [node("a", "CONVERTED", reason="x")]},
        [("invalid", "nodes[a].config.reason")],
    ),
    (
        "unknown voice call key",
        {"nodes": [node("a", "VOICE_CALL", agentId="call-1")]},
        [("invalid", "nodes[a].config.agentId")],
    ),
    (
        "voice call flag types",
        {"nodes": [node("a", "VOICE_CALL", leave_voicemail="yes", needs_tcpa_compliance=1)]},
        [
            ("invalid", "nodes[a].config.leave_voicemail"),
            ("invalid", "nodes[a].config.needs_tcpa_compliance"),
        ],
    ),
    (
        "malformed voicemail template",
        {"nodes": [node("a", "VOICE_CALL", voicemail_message="Hi {{first name}}")]},
        [("invalid", "nodes[a].config.voicemail_message")],
    ),
    (
        "empty sms message",
        {"nodes": [node("a", "SMS", agent_id="text-1", message=" ")]},
        [("invalid", "nodes[a].config.message")],
    ),
    (
        "two time forms",
        {"nodes": [node("a", "TIME", delay_hours=1, until_time="09:00")]},
        [("invalid", "nodes[a].config")],
    ),
    (
        "negative delay",
        {"nodes": [node("a", "TIME", delay_minutes=-5)]},
        [("invalid", "nodes[a].config.delay_minutes")],
    ),
    (
        "boolean delay",
        {"nodes": [node("a", "TIME", delay_days=True)]},
        [("invalid", "nodes[a].config.delay_days")],
    ),
    (
        "delay over a year",
        {"nodes": [node("a", "TIME", delay_days=400)]},
        [("invalid", "nodes[a].config.delay_days")],
    ),
    (
        "bad unit",
        {"nodes": [node("a", "TIME", duration=2, unit="weeks")]},
        [("invalid", "nodes[a].config.unit")],
    ),
    (
        "unit without duration",
        {"nodes": [node("a", "TIME", unit="days")]},
        [("invalid", "nodes[a].config.duration")],
    ),
    (
        "bad clock time",
        {"nodes": [node("a", "TIME", until_time="25:00")]},
        [("invalid", "nodes[a].config.until_time")],
    ),
    (
        "schedule false",
        {"nodes": [node("a", "TIME", until_schedule_opens=False)]},
        [("invalid", "nodes[a].config.until_schedule_opens")],
    ),
    (
        "condition on an unknown field",
        {"nodes": [node("a", "CONDITIONAL", conditions=[{"field": "mood", "operator": "exists"}])]},
        [("unknown_field", "nodes[a].config.conditions[0].field")],
    ),
    (
        "condition with a bad operator",
        {
            "nodes": [
                node(
                    "a",
                    "CONDITIONAL",
                    conditions={"logic": "OR", "conditions": [{"field": "state", "operator": "~"}]},
                )
            ]
        },
        [("invalid", "nodes[a].config.conditions.conditions[0].operator")],
    ),
    (
        "branch on an unknown field",
        {"nodes": [node("a", "CONDITIONAL", condition_field="call_state", branches=["A"])]},
        [("unknown_field", "nodes[a].config.condition_field")],
    ),
    (
        "branches: empty, reserved, duplicate",
        {
            "nodes": [
                node("a", "CONDITIONAL", condition_field="state", branches=[]),
                node("b", "CONDITIONAL", condition_field="state", branches=["CA", "ca", "Default"]),
            ]
        },
        [
            ("invalid", "nodes[a].config.branches"),
            ("invalid", "nodes[b].config.branches[1]"),
            ("invalid", "nodes[b].config.branches[2]"),
        ],
    ),
    (
        "both conditional forms",
        {
            "nodes": [
                node("a", "CONDITIONAL", conditions=[], condition_field="state", branches=["CA"])
            ]
        },
        [("invalid", "nodes[a].config")],
    ),
    (
        "unknown application action",
        {"nodes": [node("a", "APPLICATION", action="email")]},
        [("invalid", "nodes[a].config.action")],
    ),
    (
        "set_variable without a proper key or a value",
        {"nodes": [node("a", "APPLICATION", action="set_variable", key="first name")]},
        [("invalid", "nodes[a].config.key"), ("invalid", "nodes[a].config.value")],
    ),
    (
        "set_variable with an object value",
        {"nodes": [node("a", "APPLICATION", action="set_variable", key="k", value={"x": 1})]},
        [("invalid", "nodes[a].config.value")],
    ),
    (
        "merge_metadata without an object",
        {"nodes": [node("a", "APPLICATION", action="merge_metadata", metadata=[1])]},
        [("invalid", "nodes[a].config.metadata")],
    ),
    (
        "suppress with a bad channel",
        {"nodes": [node("a", "APPLICATION", action="suppress", channel="EMAIL")]},
        [("invalid", "nodes[a].config.channel")],
    ),
    (
        "http with a bad url, method, body and an extra key",
        {
            "nodes": [
                node(
                    "a",
                    "APPLICATION",
                    action="http",
                    url="ftp://x.test",
                    method="BREW",
                    body="x",
                    headers={},
                )
            ]
        },
        [
            ("invalid", "nodes[a].config.headers"),
            ("invalid", "nodes[a].config.url"),
            ("invalid", "nodes[a].config.method"),
            ("invalid", "nodes[a].config.body"),
        ],
    ),
    (
        "edge to an unknown node",
        {"nodes": [node("a", "TIME")], "edges": [edge("e1", "a", "zz")]},
        [("unknown_node", "edges[e1].to_node_id")],
    ),
    (
        "edge without ends",
        {"nodes": [node("a", "TIME")], "edges": [{"id": "e1", "label": 3}]},
        [
            ("invalid", "edges[e1].from_node_id"),
            ("invalid", "edges[e1].to_node_id"),
            ("invalid", "edges[e1].label"),
        ],
    ),
    (
        "duplicate edge id",
        {
            "nodes": [node("a", "TIME"), node("b", "CONVERTED")],
            "edges": [edge("e1", "a", "b"), edge("e1", "a", "b", "next")],
        },
        [("duplicate_id", "edges[1].id")],
    ),
    (
        "edge out of a terminal node",
        {
            "nodes": [node("a", "TIME"), node("b", "DROPPED")],
            "edges": [edge("e1", "a", "b"), edge("e2", "b", "a")],
        },
        [("terminal_edge", "edges[e2].from_node_id")],
    ),
    (
        "edge to a node that failed to parse names no unknown node",
        {"nodes": [node("a", "TIME"), node("b", "FAX")], "edges": [edge("e1", "a", "b")]},
        [("unknown_node_type", "nodes[b].node_type")],
    ),
    (
        "unknown entry",
        {"nodes": [node("a", "TIME")], "entry_node_id": "b"},
        [("unknown_node", "entry_node_id")],
    ),
]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(raw, exp) for _, raw, exp in PARSE_CASES],
    ids=[c[0] for c in PARSE_CASES],
)
def test_parse_names_every_bad_field(raw: object, expected: list[tuple[str, str]]) -> None:
    assert parse_problems(raw) == expected


def test_problems_take_a_root_and_raise_as_validation_failed() -> None:
    problems = GraphProblems(root="definition")
    parse_graph_definition({"nodes": [node("a", "FAX")]}, problems)
    assert [p.field for p in problems.items] == ["definition.nodes[a].node_type"]
    with pytest.raises(GraphInvalid) as info:
        check_graph_definition({"nodes": [node("a", "FAX")]})
    assert isinstance(info.value, ValidationFailed)
    assert [p.field for p in info.value.errors] == ["nodes[a].node_type"]
    assert info.value.graph_problems[0].to_json()["code"] == "unknown_node_type"


# ---------------------------------------------------------------------------------- activation


def add_nodes(*nodes: Raw) -> Callable[[Raw], None]:
    return lambda raw: raw["nodes"].extend(nodes)


def add_edges(*edges: Raw) -> Callable[[Raw], None]:
    return lambda raw: raw["edges"].extend(edges)


def both(*mutations: Callable[[Raw], None]) -> Callable[[Raw], None]:
    def run(raw: Raw) -> None:
        for mutate in mutations:
            mutate(raw)

    return run


ACTIVATION_CASES: list[tuple[str, Callable[[], Raw], list[tuple[str, str]]]] = [
    ("empty", lambda: {"nodes": [], "edges": []}, [("empty", "nodes")]),
    (
        "missing agent",
        changed(m=set_config("call")),
        [("required", "nodes[call].config.agent_id")],
    ),
    (
        "unknown agent",
        changed(m=set_config("call", agent_id="ghost")),
        [("unknown_agent", "nodes[call].config.agent_id")],
    ),
    (
        "a TEXT agent on a call",
        changed(m=set_config("call", agent_id="text-1")),
        [("wrong_channel", "nodes[call].config.agent_id")],
    ),
    (
        "a CALL agent on an SMS, without a message",
        changed(m=set_config("sms", agent_id="call-1")),
        [
            ("wrong_channel", "nodes[sms].config.agent_id"),
            ("required", "nodes[sms].config.message"),
        ],
    ),
    ("TIME without a wait", changed(m=set_config("wait")), [("required", "nodes[wait].config")]),
    (
        "CONDITIONAL without a test",
        changed(m=set_config("tries")),
        [("required", "nodes[tries].config")],
    ),
    (
        "attempts of a node not in the graph",
        changed(
            m=set_config("tries", conditions=[{"field": "attempts.gone", "operator": "exists"}])
        ),
        [("unknown_field", "nodes[tries].config.conditions[0].field")],
    ),
    (
        "branch on attempts of a node not in the graph",
        changed(m=set_config("tries", condition_field="attempts.gone", branches=["1", "2"])),
        [
            ("unknown_field", "nodes[tries].config.condition_field"),
            ("bad_label", "edges[e5].label"),
            ("bad_label", "edges[e6].label"),
        ],
    ),
    (
        "unknown template variable",
        changed(m=set_config("sms", agent_id="text-1", message="{{lastName}} {{variables.x}}")),
        [("unknown_variable", "nodes[sms].config.message")],
    ),
    (
        "unknown variable in the voicemail",
        changed(m=set_config("call", agent_id="call-1", voicemail_message="Hi {{nick}}")),
        [("unknown_variable", "nodes[call].config.voicemail_message")],
    ),
    (
        "CONDITIONAL edge without a label",
        changed(m=lambda raw: raw["edges"][5].pop("label")),
        [("missing_label", "edges[e6].label")],
    ),
    (
        "a label a call never emits",
        changed(m=lambda raw: raw["edges"][0].__setitem__("label", "success")),
        [("bad_label", "edges[e1].label")],
    ),
    (
        "a label a TIME never emits",
        changed(m=lambda raw: raw["edges"][3].__setitem__("label", "DNP")),
        [("bad_label", "edges[e4].label")],
    ),
    (
        "duplicate edge (labels ignore case)",
        changed(m=add_edges(edge("e10", "call", "won", "completed"))),
        [("duplicate_edge", "edges[e10]")],
    ),
    (
        "no way out",
        changed(m=lambda raw: raw["edges"].pop()),
        [("no_way_out", "nodes[tag]")],
    ),
    (
        "unreachable",
        changed(
            m=both(
                add_nodes(node("orphan", "TIME", delay_days=1)),
                add_edges(edge("x", "orphan", "won")),
            )
        ),
        [("unreachable", "nodes[orphan]")],
    ),
    (
        "unreachable from an explicit entry",
        changed(m=lambda raw: raw.__setitem__("entry_node_id", "sms")),
        [
            ("unreachable", "nodes[call]"),
            ("unreachable", "nodes[wait]"),
            ("unreachable", "nodes[tries]"),
        ],
    ),
    (
        "spin through CONDITIONAL and APPLICATION nodes",
        changed(
            m=both(
                add_nodes(node("log", "APPLICATION", action="suppress")),
                add_edges(edge("x1", "tries", "log", "false"), edge("x2", "log", "tries")),
            )
        ),
        [("spin_cycle", "nodes[tries]")],
    ),
    (
        "spin on a self-loop",
        changed(
            m=both(
                add_nodes(node("loop", "APPLICATION", action="suppress")),
                add_edges(edge("x1", "tag", "loop", "failure"), edge("x2", "loop", "loop")),
            )
        ),
        [("spin_cycle", "nodes[loop]")],
    ),
]


@pytest.mark.parametrize(
    ("build", "expected"),
    [(build, exp) for _, build, exp in ACTIVATION_CASES],
    ids=[c[0] for c in ACTIVATION_CASES],
)
def test_activation_names_every_problem(
    build: Callable[[], Raw], expected: list[tuple[str, str]]
) -> None:
    assert activation_problems(build()) == expected


def test_activation_returns_structural_problems_alone() -> None:
    raw = nurture()
    raw["nodes"][0]["node_type"] = "FAX"
    assert activation_problems(raw) == [("unknown_node_type", "nodes[call].node_type")]


def test_variables_known_from_set_variable_and_unchecked_without_keys() -> None:
    raw = nurture()
    node_of(raw, "sms")["config"]["message"] = "Your tier: {{tier}} {{variables.tier}}"
    assert activation_problems(raw) == []
    node_of(raw, "sms")["config"]["message"] = "{{lastName}}"
    assert activation_problems(raw, keys=None) == []
    assert template_variable_keys(raw) == {"firstName", "lastName"}


def test_a_loop_through_a_wait_is_not_a_spin() -> None:
    # e5 loops call -> wait -> tries -> call: it waits in TIME and in the call.
    assert spin_cycles(check_graph_definition(nurture())) == []


def test_outputs_mapping() -> None:
    assert {"COMPLETED", "FAILED", "DNP", "NO_ANSWER", "CALENDLY"} <= ACTION_OUTPUTS
    assert NODE_OUTPUTS[NodeType.SMS] == ACTION_OUTPUTS
    assert NODE_OUTPUTS[NodeType.TIME] == {"next"}
    assert NODE_OUTPUTS[NodeType.APPLICATION] == {"success", "failure"}
    assert NODE_OUTPUTS[NodeType.CONDITIONAL] == {"true", "false"}
    assert NODE_OUTPUTS[NodeType.CONVERTED] == frozenset()
    parsed = check_graph_definition(
        {"nodes": [node("b", "CONDITIONAL", condition_field="state", branches=["CA", "NY"])]}
    )
    assert node_outputs(parsed.nodes[0]) == {"CA", "NY", "default"}


# ---------------------------------------------------------------------------------- compile


def test_compile_keeps_ids_edge_order_and_default_entry() -> None:
    graph = compile_graph(nurture())
    assert graph.entry == "call"
    assert list(graph.nodes) == ["call", "wait", "tries", "sms", "tag", "won", "lost"]
    assert graph.outgoing("call") == [
        Edge("call", "won", "COMPLETED"),
        Edge("call", "wait", "DNP"),
        Edge("call", "lost", None),
    ]
    assert graph.next_node("call", Disposition.NO_ANSWER) == "wait"
    assert graph.next_node("call", Disposition.CALENDLY) == "won"
    assert graph.next_node("call", Disposition.BAD_NUMBER) == "lost"
    assert compile_definition(nurture()) == graph


def test_compile_explicit_entry_and_empty_label() -> None:
    raw = nurture()
    raw["entry_node_id"] = "sms"
    raw["edges"][8]["label"] = ""
    graph = compile_graph(raw)
    assert graph.entry == "sms"
    assert graph.outgoing("tag") == [Edge("tag", "won", None)]


def test_compile_configs() -> None:
    graph = compile_graph(nurture())
    call = graph.node("call")
    assert call.kind is NodeKind.ACTION
    assert call.config == ActionConfig(
        channel=Channel.CALL,
        agent_id="call-1",
        message="Hi {{firstName}}",
        step_id="call",
        step_order=1,
    )
    sms = graph.node("sms").config
    assert isinstance(sms, ActionConfig)
    assert (sms.channel, sms.agent_id, sms.needs_tcpa) == (Channel.TEXT, "text-1", True)
    assert graph.node("wait").config == TimeConfig(delay_secs=48 * 3600)
    assert graph.node("tries").config == ConditionalConfig(
        conditions=ConditionSet((Condition("attempts.call", Operator.LESS_THAN, 3),))
    )
    assert graph.node("tag").config == ApplicationConfig(
        "set_variable", {"key": "tier", "value": "gold"}
    )
    assert graph.node("won").kind is NodeKind.END
    assert graph.node("won").config == EndConfig(EndOutcome.CONVERTED)
    assert graph.node("lost").config == EndConfig(EndOutcome.DROPPED)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"delay_minutes": 1.5}, TimeConfig(delay_secs=90)),
        ({"delay_days": 2}, TimeConfig(delay_secs=2 * 86400)),
        ({"duration": 3, "unit": "hours"}, TimeConfig(delay_secs=3 * 3600)),
        ({"until_time": "9:05"}, TimeConfig(until_minute_of_day=9 * 60 + 5)),
        ({"until_schedule_opens": True}, TimeConfig(until_schedule_opens=True)),
    ],
)
def test_time_forms(config: Raw, expected: TimeConfig) -> None:
    graph = compile_graph({"nodes": [node("t", "TIME", **config)]})
    assert graph.node("t").config == expected


@pytest.mark.parametrize(
    ("config", "params"),
    [
        ({"action": "suppress"}, {"channel": "ALL"}),
        (
            {"action": "suppress", "channel": "TEXT", "reason": "stop"},
            {"channel": "TEXT", "reason": "stop"},
        ),
        ({"action": "merge_metadata", "metadata": {"a": 1}}, {"metadata": {"a": 1}}),
        (
            {"action": "http", "url": "https://h.test/x", "secret": "s", "body": {"a": 1}},
            {"url": "https://h.test/x", "method": "POST", "secret": "s", "body": {"a": 1}},
        ),
        (
            {"action": "http", "url": "http://h.test", "method": "put"},
            {"url": "http://h.test", "method": "PUT"},
        ),
    ],
)
def test_application_params_fill_defaults(config: Raw, params: Raw) -> None:
    graph = compile_graph({"nodes": [node("a", "APPLICATION", **config)]})
    assert graph.node("a").config == ApplicationConfig(config["action"], params)


def test_compile_refuses_bad_or_empty_graphs() -> None:
    with pytest.raises(GraphInvalid):
        compile_graph({"nodes": [node("a", "FAX")]})
    with pytest.raises(GraphInvalid):
        compile_graph({"nodes": []})
    for other in ({"blocks": []}, {"nodes": []}):
        with pytest.raises(ValueError, match="unknown definition form"):
            compile_definition(other)


def test_the_compiled_graph_runs_in_the_decider() -> None:
    """call -> DNP -> wait 48h -> tries(true) -> call -> COMPLETED -> won."""
    ctx = Context(graph=compile_graph(nurture()), gate=Gate(), lead=Lead(phone="+14155550123"))
    now = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    decision = decide(ctx, new_execution("x1", now=now), WakeUp(), now)
    first = decision.dispatches[0]
    assert (first.node_id, first.message) == ("call", "Hi ")
    decision = decide(
        ctx, decision.state, AgentReported(first.step_execution_id, Disposition.NO_ANSWER), now
    )
    assert decision.state.node_id == "wait"
    assert decision.state.wake_at == now + timedelta(hours=48)
    later = now + timedelta(hours=48)
    decision = decide(ctx, decision.state, WakeUp(), later)
    second = decision.dispatches[0]
    assert second.node_id == "call"
    decision = decide(
        ctx, decision.state, AgentReported(second.step_execution_id, Disposition.CALENDLY), later
    )
    assert decision.state.status is ExecutionStatus.COMPLETED
    assert decision.state.outcome == "converted"


def test_an_http_node_follows_success_or_failure() -> None:
    raw = {
        "nodes": [
            node("hook", "APPLICATION", action="http", url="https://h.test"),
            node("won", "CONVERTED"),
            node("lost", "DROPPED"),
        ],
        "edges": [edge("e1", "hook", "won", "success"), edge("e2", "hook", "lost", "failure")],
    }
    assert activation_problems(raw) == []
    ctx = Context(graph=compile_graph(raw), gate=Gate(), lead=Lead(phone="+14155550123"))
    now = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    decision: Decision = decide(ctx, new_execution("x1", now=now), WakeUp(), now)
    (effect,) = decision.effects
    assert effect.params["url"] == "https://h.test"
    done = decide(ctx, decision.state, ApplicationFinished(effect.step_execution_id, False), now)
    assert done.state.outcome == "dropped"


# ---------------------------------------------------------------------------------- edits


def test_edits_return_new_definitions_and_leave_the_input_alone() -> None:
    raw = nurture()
    before = copy.deepcopy(raw)
    added = add_node(raw, node("wait2", "TIME", delay_days=1))
    added = add_edge(added, edge("e10", "wait2", "won"))
    updated = update_node(added, "wait2", {"label": "Wait a day", "config": {"delay_hours": 2}})
    entry = set_entry_node(updated, "wait2")
    assert raw == before
    assert node_of(updated, "wait2")["label"] == "Wait a day"
    assert node_of(updated, "wait2")["config"] == {"delay_hours": 2}
    assert compile_graph(entry).entry == "wait2"
    removed = remove_node(entry, "wait2")
    assert removed == before
    assert remove_node(raw, "call")["edges"] == [
        e for e in raw["edges"] if "call" not in (e["from_node_id"], e["to_node_id"])
    ]


def test_edit_errors() -> None:
    raw = nurture()
    with pytest.raises(Conflict):
        add_node(raw, node("call", "SMS"))
    with pytest.raises(GraphInvalid):
        add_node(raw, node("fax", "FAX"))
    with pytest.raises(NotFound):
        update_node(raw, "ghost", {"label": "x"})
    with pytest.raises(ValidationFailed, match="immutable"):
        update_node(raw, "call", {"node_type": "SMS"})
    with pytest.raises(GraphInvalid):
        update_node(raw, "wait", {"config": {"delay_hours": -1}})
    with pytest.raises(NotFound):
        remove_node(raw, "ghost")
    with pytest.raises(NotFound) as info:
        add_edge(raw, edge("e10", "call", "ghost"))
    assert info.value.field == "to_node_id"
    with pytest.raises(Conflict):
        add_edge(raw, edge("e10", "call", "won", "Completed"))
    with pytest.raises(Conflict):
        add_edge(raw, edge("e1", "call", "sms"))
    with pytest.raises(GraphInvalid):
        add_edge(raw, edge("e10", "won", "call"))
    with pytest.raises(NotFound):
        remove_edge(raw, "ghost")
    with pytest.raises(NotFound):
        set_entry_node(raw, "ghost")
    assert raw == nurture()


def test_removing_the_entry_node_falls_back_to_the_first() -> None:
    raw = {**nurture(), "entry_node_id": "call"}
    out = remove_node(raw, "call")
    assert "entry_node_id" not in out
    assert compile_graph(out).entry == "wait"


# ---------------------------------------------------------------------------------- properties

WAITING = ("VOICE_CALL", "SMS", "TIME")
MOVERS = ("CONDITIONAL", "APPLICATION")
CONFIGS: dict[str, list[Raw]] = {
    "VOICE_CALL": [
        {"agent_id": "call-1"},
        {"agent_id": "call-1", "leave_voicemail": True, "voicemail_message": "Hi {{firstName}}"},
    ],
    "SMS": [{"agent_id": "text-1", "message": "Hi {{firstName}} from {{metadata.city}}"}],
    "TIME": [
        {"delay_minutes": 5},
        {"duration": 2, "unit": "days"},
        {"until_time": "09:30"},
        # until_schedule_opens passes straight through while open: a mover, tested apart
    ],
    "CONDITIONAL": [
        {"conditions": [{"field": "disposition", "operator": "equals", "value": "NO_ANSWER"}]},
        {"conditions": [{"field": "attempts.n0", "operator": "greater_than", "value": 1}]},
        {"condition_field": "variables.tier", "branches": ["gold", "silver"]},
    ],
    "APPLICATION": [
        {"action": "set_variable", "key": "tier", "value": "gold"},
        {"action": "merge_metadata", "metadata": {"seen": True}},
        {"action": "suppress", "channel": "CALL"},
        {"action": "http", "url": "https://hooks.test/x"},
    ],
    "CONVERTED": [{}],
    "DROPPED": [{}],
}
TERMINAL = ("CONVERTED", "DROPPED")


def raw_outputs(raw_node: Raw) -> list[str]:
    branches = raw_node["config"].get("branches")
    if branches is not None:
        return [*branches, "default"]
    return sorted(NODE_OUTPUTS[NodeType(raw_node["node_type"])])


@st.composite
def labels_for(draw: st.DrawFn, raw_node: Raw) -> str | None:
    outputs = raw_outputs(raw_node)
    if raw_node["node_type"] != "CONDITIONAL" and draw(st.booleans()):
        return None
    return draw(st.sampled_from(outputs))


@st.composite
def raw_nodes(draw: st.DrawFn, node_id: str, types: tuple[str, ...]) -> Raw:
    node_type = draw(st.sampled_from(types))
    return node(node_id, node_type, **draw(st.sampled_from(CONFIGS[node_type])))


class EdgeSet:
    """Edges without duplicate (from, to, label) keys."""

    def __init__(self) -> None:
        self.edges: list[Raw] = []
        self.keys: set[tuple[str, str, str]] = set()

    def add(self, source: str, target: str, label: str | None) -> None:
        key = (source, target, (label or "").upper())
        if key not in self.keys:
            self.keys.add(key)
            self.edges.append(edge(f"e{len(self.edges)}", source, target, label))


@st.composite
def valid_graphs(draw: st.DrawFn) -> Raw:
    """A tree from n0 (every node reachable), extra forward edges, back edges only out of
    waiting nodes (so every loop waits), and a final CONVERTED node, reached from n0, as the
    way out of every node that has none."""
    size = draw(st.integers(1, 7))
    nodes = [draw(raw_nodes("n0", WAITING + MOVERS))]
    nodes += [draw(raw_nodes(f"n{i}", WAITING + MOVERS + TERMINAL)) for i in range(1, size)]
    nodes.append(node("end", "CONVERTED"))
    live = [i for i, n in enumerate(nodes) if n["node_type"] not in TERMINAL]
    edges = EdgeSet()
    for i in range(1, size):
        parent = draw(st.sampled_from([j for j in live if j < i]))
        edges.add(f"n{parent}", nodes[i]["id"], draw(labels_for(nodes[parent])))
    for j in live:
        for _ in range(draw(st.integers(0, 2))):
            target = draw(st.integers(0 if nodes[j]["node_type"] in WAITING else j + 1, size))
            edges.add(f"n{j}", nodes[target]["id"], draw(labels_for(nodes[j])))
        if j == 0 or not any(e["from_node_id"] == f"n{j}" for e in edges.edges):
            edges.add(f"n{j}", "end", draw(labels_for(nodes[j])))
    return {"nodes": nodes, "edges": edges.edges}


@settings(max_examples=80, deadline=None)
@given(valid_graphs())
def test_valid_graphs_activate_and_every_non_end_node_has_a_way_out(raw: Raw) -> None:
    assert validate_for_activation(raw, agents=AGENTS, variable_keys=KEYS) == []
    graph = compile_graph(raw)
    for graph_node in graph.nodes.values():
        assert (graph_node.kind is NodeKind.END) == (graph.outgoing(graph_node.id) == [])


@st.composite
def graphs_with_a_spin(draw: st.DrawFn) -> Raw:
    """A valid graph plus a loop of 1-3 CONDITIONAL/APPLICATION nodes entered from n0."""
    raw = draw(valid_graphs())
    loop = [draw(raw_nodes(f"m{i}", MOVERS)) for i in range(draw(st.integers(1, 3)))]
    raw["nodes"].extend(loop)
    extra = [
        edge("x-in", "n0", "m0", draw(labels_for(raw["nodes"][0]))),
        *(
            edge(f"x{i}", m["id"], loop[(i + 1) % len(loop)]["id"], draw(labels_for(m)))
            for i, m in enumerate(loop)
        ),
        *(edge(f"x-out{i}", m["id"], "end", raw_outputs(m)[0]) for i, m in enumerate(loop)),
    ]
    raw["edges"] = [*raw["edges"], *extra]
    return raw


@settings(max_examples=80, deadline=None)
@given(graphs_with_a_spin())
def test_graphs_with_a_spin_are_refused(raw: Raw) -> None:
    found = validate_for_activation(raw, agents=AGENTS, variable_keys=None)
    spins = [p for p in found if p.code is ProblemCode.SPIN_CYCLE]
    assert spins
    assert spins[0].field == "nodes[m0]"


@st.composite
def random_digraphs(draw: st.DrawFn) -> Raw:
    size = draw(st.integers(1, 8))
    nodes = [draw(raw_nodes(f"n{i}", WAITING + MOVERS + MOVERS)) for i in range(size)]
    pairs = draw(
        st.lists(st.tuples(st.integers(0, size - 1), st.integers(0, size - 1)), max_size=16)
    )
    edges = [edge(f"e{k}", f"n{a}", f"n{b}", f"{k}") for k, (a, b) in enumerate(pairs)]
    return {"nodes": nodes, "edges": edges}


def brute_spinning(raw: Raw) -> set[str]:
    """Movers that can reach themselves through movers only: the spin-cycle oracle."""
    movers = {n["id"] for n in raw["nodes"] if n["node_type"] in MOVERS}
    succ = {
        m: {e["to_node_id"] for e in raw["edges"] if e["from_node_id"] == m} & movers
        for m in movers
    }
    spinning = set()
    for start in movers:
        seen, todo = set(), list(succ[start])
        while todo:
            current = todo.pop()
            if current not in seen:
                seen.add(current)
                todo.extend(succ[current])
        if start in seen:
            spinning.add(start)
    return spinning


@settings(max_examples=150, deadline=None)
@given(random_digraphs())
def test_spin_cycles_match_a_brute_force_oracle(raw: Raw) -> None:
    groups = spin_cycles(check_graph_definition(raw))
    assert {n for g in groups for n in g} == brute_spinning(raw)
    assert sum(len(g) for g in groups) == len({n for g in groups for n in g})


@settings(max_examples=80, deadline=None)
@given(valid_graphs(), st.data())
def test_add_edge_then_remove_edge_round_trips(raw: Raw, data: st.DataObject) -> None:
    before = copy.deepcopy(raw)
    live = [n for n in raw["nodes"] if n["node_type"] not in TERMINAL]
    source = data.draw(st.sampled_from(live))
    target = data.draw(st.sampled_from(raw["nodes"]))
    label = data.draw(labels_for(source))
    new = edge("new", source["id"], target["id"], label)
    key = (source["id"], target["id"], (label or "").upper())
    existing = {
        (e["from_node_id"], e["to_node_id"], (e.get("label") or "").upper()) for e in raw["edges"]
    }
    if key in existing:
        with pytest.raises(Conflict):
            add_edge(raw, new)
        return
    added = add_edge(raw, new)
    assert added["edges"][-1] == new
    assert remove_edge(added, "new") == before
    assert raw == before
    with pytest.raises(Conflict):
        add_edge(added, {**new, "id": "again"})


@pytest.mark.parametrize("delay", [1e308, 10**30, 367 * 1440])
def test_a_huge_delay_is_a_problem_not_an_overflow(delay: float) -> None:
    definition = {
        "nodes": [
            {"id": "wait", "node_type": "TIME", "config": {"delay_minutes": delay}},
            {"id": "end", "node_type": "DROPPED", "config": {}},
        ],
        "edges": [{"id": "e1", "from_node_id": "wait", "to_node_id": "end"}],
    }
    with pytest.raises(GraphInvalid) as refused:
        check_graph_definition(definition, root="definition")
    assert any("366 days" in p.message for p in refused.value.graph_problems)
