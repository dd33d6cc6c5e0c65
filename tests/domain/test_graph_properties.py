"""Properties of the one executable form, pure (no database), driven through ``decide``.

(a) A linear definition compiled to a graph behaves exactly like the linear rules, as stated by
    a small reference interpreter written here (``linear_reference``): steps in ``order``, each
    attempted ``count`` times after its delay, a ``finishOn`` disposition ends the execution,
    ``isInfinite`` starts again at the first step, a guard that does not hold skips the step
    (all its attempts, without waiting its delay).
(b) A graph that passes ``validate_for_activation`` never gets stuck: after every decision the
    execution has finished, or waits on a timer in the future, or on the one dispatch or
    application action it has in flight.

The last tests pin loops that do not wait: the decider fails the execution with the reason
(never a crash), and a loop through a TIME node "until the schedule opens" is refused.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from reachflow.domain.decider import (
    AgentReported,
    ApplicationFinished,
    Context,
    Decision,
    Dispatch,
    DispatchFailed,
    Effect,
    Event,
    ExecutionState,
    Lead,
    Phase,
    StepOpened,
    WakeUp,
    decide,
    new_execution,
)
from reachflow.domain.definition import END_COMPLETE, END_FINISH, compile_linear, normalize_linear
from reachflow.domain.enums import Channel, Disposition, ExecutionStatus, StepStatus
from reachflow.domain.errors import ValidationFailed
from reachflow.domain.gate import Constraint, Gate
from reachflow.domain.graph_definition import (
    NODE_OUTPUTS,
    NodeType,
    ProblemCode,
    compile_graph,
    validate_for_activation,
)
from reachflow.domain.schedule import TimeRange, WeekSchedule

Raw = dict[str, Any]

T0 = datetime(2026, 3, 9, 14, 0, tzinfo=UTC)  # Monday 10:00 in New York
NY = "America/New_York"
LEAD = Lead(phone="+12125550123", zipcode="10001", state="NY")
AGENTS = {
    "call-a": Channel.CALL,
    "call-b": Channel.CALL,
    "text-a": Channel.TEXT,
    "text-b": Channel.TEXT,
}
BY_CHANNEL = {c: sorted(a for a, ch in AGENTS.items() if ch is c) for c in Channel}
DISPOSITIONS = list(Disposition)


def context(graph: Any, gate: Gate | None = None) -> Context:
    return Context(graph=graph, gate=gate or Gate(), lead=LEAD, timezone=NY)


# ======================================================================= (a) linear == graph


@st.composite
def guards(draw: st.DrawFn, step_ids: list[str]) -> Any:
    """A step's ``conditions``: none, a list (AND) or ``{logic, conditions}``."""
    kind = draw(st.integers(0, 4))
    if kind <= 1:
        return None if kind == 0 else []

    def one() -> Raw:
        which = draw(st.sampled_from(["disposition", "tier", "attempts", "entries"]))
        if which == "disposition":
            op = draw(st.sampled_from(["equals", "not_equals"]))
            return {
                "field": "disposition",
                "operator": op,
                "value": draw(st.sampled_from(DISPOSITIONS)).value,
            }
        if which == "tier":
            op = draw(st.sampled_from(["equals", "not_equals"]))
            value = draw(st.sampled_from(["gold", "GOLD", "silver"]))
            return {"field": "variables.tier", "operator": op, "value": value}
        op = draw(st.sampled_from(["less_than", "greater_than"]))
        name = "attempts" if which == "attempts" else f"attempts.{draw(st.sampled_from(step_ids))}"
        return {"field": name, "operator": op, "value": draw(st.integers(0, 5))}

    items = [one() for _ in range(draw(st.integers(1, 2)))]
    if kind == 2:
        return items
    return {"logic": draw(st.sampled_from(["AND", "OR"])), "conditions": items}


@st.composite
def linear_definitions(draw: st.DrawFn) -> Raw:
    """Steps with ids s1..sn, shuffled, with distinct random orders; maybe ``isInfinite``."""
    size = draw(st.integers(1, 5))
    ids = [f"s{i}" for i in range(1, size + 1)]
    orders = draw(st.lists(st.integers(1, 50), min_size=size, max_size=size, unique=True))
    steps = []
    for step_id, order in zip(ids, orders, strict=True):
        channel = draw(st.sampled_from(list(Channel)))
        step: Raw = {
            "id": step_id,
            "type": channel.value,
            "order": order,
            "agentId": draw(st.sampled_from(BY_CHANNEL[channel])),
            "delayInSecs": draw(
                st.one_of(st.sampled_from([0, 0, 60, 3600, 86400]), st.integers(0, 3 * 86400))
            ),
            "finishOn": draw(st.lists(st.sampled_from(DISPOSITIONS), max_size=4, unique=True)),
            "count": draw(st.integers(1, 3)),
            "leaveVoicemail": draw(st.booleans()),
        }
        conditions = draw(guards(ids))
        if conditions is not None:
            step["conditions"] = conditions
        steps.append(step)
    infinite = draw(st.booleans())
    if infinite and not any(s["delayInSecs"] > 0 for s in steps):
        steps[draw(st.integers(0, size - 1))]["delayInSecs"] = draw(st.integers(1, 86400))
    return {"steps": draw(st.permutations(steps)), "isInfinite": infinite}


# -- the reference interpreter -------------------------------------------------------------


@dataclass
class Facts:
    disposition: Disposition | None = None
    dispatched: int = 0
    entries: Counter[str] = field(default_factory=Counter)
    variables: dict[str, Any] = field(default_factory=dict)


def _text(value: Any) -> str:
    return str(value).lower()


def reference_holds(condition: Raw, facts: Facts) -> bool:
    name, op, value = condition["field"], condition["operator"], condition["value"]
    actual: Any
    if name == "disposition":
        actual = facts.disposition.value if facts.disposition is not None else None
    elif name == "variables.tier":
        actual = facts.variables.get("tier")
    elif name == "attempts":
        actual = facts.dispatched
    else:
        actual = facts.entries[name.removeprefix("attempts.")]
    if op == "equals":
        return actual is not None and _text(actual) == _text(value)
    if op == "not_equals":
        return actual is None or _text(actual) != _text(value)
    return actual < value if op == "less_than" else actual > value


def reference_guard(conditions: Any, facts: Facts) -> bool:
    if not conditions:
        return True
    if isinstance(conditions, list):
        return all(reference_holds(c, facts) for c in conditions)
    results = [reference_holds(c, facts) for c in conditions["conditions"]]
    return all(results) if conditions["logic"] == "AND" else any(results)


@dataclass
class LinearRun:
    #: ``(node id, agent, channel, leaveVoicemail, dispatched at)`` of each attempt dispatched.
    dispatches: list[tuple[str, str, Channel, bool, datetime]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    end: str | None = None  # END_FINISH, END_COMPLETE, or None: still running at the cap
    spins: bool = False  # an infinite lap that dispatches nothing: the next laps repeat it
    disposition: Disposition | None = None
    finished_at: datetime | None = None
    entries: Counter[str] = field(default_factory=Counter)


def linear_reference(
    definition: Raw,
    outcomes: list[Disposition],
    report_after: timedelta,
    variables: dict[str, Any],
    cap: int,
) -> LinearRun:
    """The linear rules, stated directly; stops before the ``cap + 1``-th dispatch.

    ``outcomes[k % len(outcomes)]`` is the disposition of the k-th dispatch, reported
    ``report_after`` after it. ``attempts.<id>`` counts the entries into the step so far,
    the current one included; ``attempts`` counts the dispatches.
    """
    steps = sorted(definition["steps"], key=lambda s: s["order"])
    facts = Facts(variables=dict(variables))
    run = LinearRun(entries=facts.entries)
    now = T0
    while True:
        lap_dispatched = False
        for step in steps:
            facts.entries[step["id"]] += 1
            if not reference_guard(step.get("conditions"), facts):
                run.skipped.append(step["id"])
                continue
            for attempt in range(1, step["count"] + 1):
                node_id = step["id"] if attempt == 1 else f"{step['id']}#{attempt}"
                if attempt > 1:
                    facts.entries[node_id] += 1
                if len(run.dispatches) == cap:
                    return run
                now += timedelta(seconds=step["delayInSecs"])
                channel = Channel(step["type"])
                run.dispatches.append(
                    (node_id, step["agentId"], channel, step["leaveVoicemail"], now)
                )
                lap_dispatched = True
                now += report_after
                facts.dispatched += 1
                facts.disposition = outcomes[(len(run.dispatches) - 1) % len(outcomes)]
                run.disposition = facts.disposition
                if facts.disposition.value in step["finishOn"]:
                    return _ended(run, END_FINISH, now)
        if not definition["isInfinite"]:
            return _ended(run, END_COMPLETE, now)
        if not lap_dispatched:
            run.spins = True
            return run


def _ended(run: LinearRun, end: str, at: datetime) -> LinearRun:
    run.end = end
    run.finished_at = at
    run.entries[end] += 1
    return run


# -- the decider, driven --------------------------------------------------------------------


@dataclass
class Driven:
    state: ExecutionState
    now: datetime
    dispatches: list[tuple[datetime, Dispatch]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    node_of_step: dict[str, str] = field(default_factory=dict)

    def absorb(self, decision: Decision) -> None:
        self.state = decision.state
        for step in decision.steps:
            if isinstance(step, StepOpened):
                self.node_of_step[step.id] = step.node_id
            elif step.status is StepStatus.SKIPPED:
                self.skipped.append(self.node_of_step[step.id].partition("#")[0])
        self.dispatches.extend((self.now, d) for d in decision.dispatches)


def drive_linear(
    ctx: Context,
    variables: dict[str, Any],
    outcomes: list[Disposition],
    report_after: timedelta,
    cap: int,
) -> Driven:
    """Play the shell: report each dispatch ``report_after`` later, fire timers when due; stop
    when finished or after the ``cap + 1``-th dispatch."""
    run = Driven(new_execution("exec-1", now=T0, variables=variables), T0)
    incoming: Event = WakeUp()
    for _ in range(4 * cap + 10):
        run.absorb(decide(ctx, run.state, incoming, run.now))
        if run.state.is_finished or len(run.dispatches) > cap:
            return run
        if run.state.phase is Phase.DISPATCHED:
            run.now += report_after
            k = len(run.dispatches) - 1
            incoming = AgentReported(
                run.dispatches[k][1].step_execution_id, outcomes[k % len(outcomes)]
            )
        else:
            assert run.state.wake_at is not None, f"stuck: {run.state}"
            run.now = max(run.now, run.state.wake_at)
            incoming = WakeUp()
    raise AssertionError(f"no end after {4 * cap + 10} events: {run.state}")


CAP = 12


@settings(max_examples=200, deadline=None)
@given(
    definition=linear_definitions(),
    outcomes=st.lists(st.sampled_from(DISPOSITIONS), min_size=1, max_size=8),
    report_after=st.sampled_from([0, 1, 30, 60, 3600]).map(lambda s: timedelta(seconds=s)),
    tier=st.sampled_from([None, "gold", "Gold", "silver"]),
)
def test_a_compiled_linear_definition_follows_the_linear_rules(
    definition: Raw, outcomes: list[Disposition], report_after: timedelta, tier: str | None
) -> None:
    variables = {} if tier is None else {"tier": tier}
    expected = linear_reference(definition, outcomes, report_after, variables, CAP)
    assume(not expected.spins)  # a known bug: see test_an_infinite_loop_that_skips_every_step
    graph = compile_linear(normalize_linear(definition, AGENTS, iter(())))
    run = drive_linear(context(graph), variables, outcomes, report_after, CAP)

    actual = [(d.node_id, d.agent_id, d.channel, d.leave_voicemail, at) for at, d in run.dispatches]
    assert actual[:CAP] == expected.dispatches
    assert run.skipped == expected.skipped
    event(f"end={expected.end}")
    event(f"infinite={definition['isInfinite']}")
    if expected.end is None:
        assert len(run.dispatches) == CAP + 1
        assert not run.state.is_finished
        return
    state = run.state
    assert len(run.dispatches) == len(expected.dispatches)
    assert (state.status, state.outcome, state.node_id) == (
        ExecutionStatus.COMPLETED,
        "completed",
        expected.end,
    )
    assert state.disposition == expected.disposition
    assert state.completed_at == expected.finished_at
    assert state.actions == len(expected.dispatches)
    assert dict(state.visits) == dict(expected.entries)


# ====================================================================== (b) never stuck

WAITING = ("VOICE_CALL", "SMS", "TIME")
MOVERS = ("CONDITIONAL", "APPLICATION")
TERMINAL = ("CONVERTED", "DROPPED")
#: Every config form but ``until_schedule_opens`` (see the spin test at the end).
CONFIGS: dict[str, list[Raw]] = {
    "VOICE_CALL": [{"agent_id": "call-a"}, {"agent_id": "call-b", "leave_voicemail": True}],
    "SMS": [{"agent_id": "text-a", "message": "Hi {{tier}}"}],
    "TIME": [
        {"delay_minutes": 5},
        {"delay_hours": 0.5},
        {"delay_days": 2},
        {"duration": 3, "unit": "hours"},
        {"until_time": "09:30"},
        {"until_time": "00:00"},
    ],
    "CONDITIONAL": [
        {"conditions": [{"field": "disposition", "operator": "equals", "value": "NO_ANSWER"}]},
        {
            "conditions": {
                "logic": "OR",
                "conditions": [
                    {"field": "variables.tier", "operator": "equals", "value": "gold"},
                    {"field": "attempts", "operator": "greater_than", "value": 2},
                ],
            }
        },
        {"conditions": [{"field": "attempts.n0", "operator": "greater_than", "value": 1}]},
        {"condition_field": "disposition", "branches": ["CALENDLY", "NOT_INTERESTED", "DNC"]},
        {"condition_field": "variables.tier", "branches": ["gold", "silver"]},
    ],
    "APPLICATION": [
        {"action": "set_variable", "key": "tier", "value": "gold"},
        {"action": "set_variable", "key": "tier", "value": "silver"},
        {"action": "merge_metadata", "metadata": {"seen": True}},
        {"action": "suppress", "channel": "TEXT"},
        {"action": "http", "url": "https://hooks.test/x"},
    ],
}


def outputs(raw_node: Raw) -> list[str]:
    branches = raw_node["config"].get("branches")
    if branches is not None:
        return [*branches, "default"]
    return sorted(NODE_OUTPUTS[NodeType(raw_node["node_type"])])


@st.composite
def labels(draw: st.DrawFn, raw_node: Raw) -> str | None:
    if raw_node["node_type"] != "CONDITIONAL" and draw(st.integers(0, 2)) == 0:
        return None
    return draw(st.sampled_from(outputs(raw_node)))


@st.composite
def activatable_graphs(draw: st.DrawFn) -> Raw:
    """2-8 nodes: a random tree from ``n0`` (so all are reachable), random extra edges in any
    direction (loops too), a way out for every non-terminal node; kept only if it activates."""
    live_count = draw(st.integers(1, 6))
    nodes: list[Raw] = []
    for i in range(live_count):
        node_type = draw(st.sampled_from(WAITING + MOVERS))
        config = draw(st.sampled_from(CONFIGS[node_type]))
        nodes.append({"id": f"n{i}", "node_type": node_type, "config": config})
    for i in range(draw(st.integers(1, 2))):
        nodes.append({"id": f"end{i}", "node_type": draw(st.sampled_from(TERMINAL))})
    live = [i for i, n in enumerate(nodes) if n["node_type"] not in TERMINAL]
    edges: list[Raw] = []
    keys: set[tuple[str, str, str]] = set()

    def add(source: int, target: int, label: str | None = "") -> None:
        if label == "":
            label = draw(labels(nodes[source]))
        key = (nodes[source]["id"], nodes[target]["id"], (label or "").upper())
        if key not in keys:
            keys.add(key)
            edges.append(
                {
                    "id": f"e{len(edges)}",
                    "from_node_id": key[0],
                    "to_node_id": key[1],
                    "label": label,
                }
            )

    for i in range(1, len(nodes)):  # mostly a chain, so runs go deep
        parents = [j for j in live if j < i]
        add(draw(st.sampled_from([parents[-1], parents[-1], *parents])), i)
    for j in live:
        for _ in range(draw(st.integers(0, 2))):
            add(j, draw(st.integers(0, len(nodes) - 1)))
        if not any(e["from_node_id"] == nodes[j]["id"] for e in edges):
            add(j, draw(st.integers(0, len(nodes) - 1)))
        if draw(st.booleans()):  # often a catch-all, so runs go on (no edge matching ends them)
            for label in outputs(nodes[j]) if nodes[j]["node_type"] == "CONDITIONAL" else [None]:
                add(j, draw(st.integers(0, len(nodes) - 1)), label)
    raw = {"nodes": nodes, "edges": edges}
    assume(validate_for_activation(raw, agents=AGENTS, variable_keys=None) == [])
    return raw


WEEKDAYS_9_TO_17 = WeekSchedule(
    days=tuple((TimeRange(540, 1020),) if d < 5 else () for d in range(7))
)
GATES = [Gate(), Gate((Constraint("workflowSchedule", "1", NY, WEEKDAYS_9_TO_17),))]


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
)
@given(
    raw=activatable_graphs(),
    gate=st.sampled_from(GATES),
    tier=st.sampled_from([None, "gold", "silver"]),
    data=st.data(),
)
def test_an_activatable_graph_never_gets_stuck(
    raw: Raw, gate: Gate, tier: str | None, data: st.DataObject
) -> None:
    ctx = context(compile_graph(raw), gate)
    state = new_execution("exec-1", now=T0, variables={} if tier is None else {"tier": tier})
    now = T0
    incoming: Event = WakeUp()
    in_flight: Dispatch | Effect | None = None
    decisions = 0
    while decisions < 60:
        decisions += 1
        decision = decide(ctx, state, incoming, now)
        state = decision.state
        # At most one command the execution then waits on (a dispatch or an http effect);
        # fire-and-forget ``suppress`` effects, at most one per node entered.
        awaited = [e for e in decision.effects if e.action != "suppress"]
        assert len(decision.dispatches) + len(awaited) <= 1
        assert len(decision.effects) - len(awaited) <= len(raw["nodes"])
        for d in decision.dispatches:
            assert in_flight is None, "a second dispatch while one is in flight"
            in_flight = d
        if state.phase is Phase.APPLYING:
            [in_flight] = [e for e in decision.effects if e.step_execution_id == state.step_id]

        # The execution has finished, or it waits: on a timer in the future, or on the one
        # agent report / application result it has in flight (whose deadline is its timer).
        assert state.status is not ExecutionStatus.FAILED, state.reason
        if state.is_finished:
            assert state.outcome in ("converted", "dropped", "completed")
            assert (state.phase, state.wake_at, decision.dispatches) == (Phase.DONE, None, ())
            break
        assert state.status is ExecutionStatus.RUNNING
        assert state.wake_at is not None, f"idle with nothing pending: {state}"
        assert state.wake_at > now, f"a timer that does not wait: {state}"
        if state.phase is Phase.DISPATCHED:
            assert isinstance(in_flight, Dispatch)
            assert in_flight.step_execution_id == state.step_id
        elif state.phase is Phase.APPLYING:
            assert isinstance(in_flight, Effect)
        else:
            assert state.phase in (Phase.DELAY, Phase.DEFERRED)
            assert in_flight is None

        # The world answers: a report (or a refused dispatch, or silence until the deadline),
        # an application result (or silence), or the timer fires.
        answer = data.draw(st.sampled_from(["answer", "answer", "answer", "fail", "silence"]))
        if in_flight is not None and answer != "silence":
            now += timedelta(seconds=data.draw(st.integers(0, 3600)))
            if isinstance(in_flight, Effect):
                incoming = ApplicationFinished(in_flight.step_execution_id, answer == "answer")
            elif answer == "fail":
                incoming = DispatchFailed(in_flight.step_execution_id, "refused")
            else:
                disposition = data.draw(st.sampled_from(DISPOSITIONS))
                incoming = AgentReported(in_flight.step_execution_id, disposition)
        else:
            now = state.wake_at
            incoming = WakeUp()
        in_flight = None
    event(f"finished={state.is_finished}")
    event(f"decisions={min(decisions, 10)}")


# ====================================================================== loops that do not wait


def test_an_infinite_loop_that_skips_every_step_is_refused_or_waits() -> None:
    definition = {
        "steps": [
            {
                "id": "s1",
                "type": "CALL",
                "order": 1,
                "agentId": "call-a",
                "delayInSecs": 3600,
                "conditions": [{"field": "disposition", "operator": "equals", "value": "CALENDLY"}],
            }
        ],
        "isInfinite": True,
    }
    try:
        normalized = normalize_linear(definition, AGENTS, iter(()))
    except ValidationFailed:
        return  # refusing the definition is a fix
    decision = decide(context(compile_linear(normalized)), new_execution("x", now=T0), WakeUp(), T0)
    state = decision.state
    assert state.is_finished or (state.wake_at is not None and state.wake_at > T0)


def _loop(first: Raw) -> Raw:
    """``first`` -> CONDITIONAL (false: back to ``first``; true: CONVERTED)."""
    return {
        "nodes": [
            first,
            {
                "id": "check",
                "node_type": "CONDITIONAL",
                "config": {
                    "conditions": [
                        {"field": "disposition", "operator": "equals", "value": "CALENDLY"}
                    ]
                },
            },
            {"id": "won", "node_type": "CONVERTED"},
        ],
        "edges": [
            {"id": "e1", "from_node_id": first["id"], "to_node_id": "check"},
            {"id": "e2", "from_node_id": "check", "to_node_id": "won", "label": "true"},
            {"id": "e3", "from_node_id": "check", "to_node_id": first["id"], "label": "false"},
        ],
    }


def test_a_loop_through_a_suppressed_call_does_not_crash_decide() -> None:
    raw = _loop({"id": "call", "node_type": "VOICE_CALL", "config": {"agent_id": "call-a"}})
    assert validate_for_activation(raw, agents=AGENTS, variable_keys=None) == []
    gate = Gate(suppressed={Channel.CALL: "DNC"})
    decision = decide(context(compile_graph(raw), gate), new_execution("x", now=T0), WakeUp(), T0)
    state = decision.state
    assert state.is_finished or (state.wake_at is not None and state.wake_at > T0)


def test_a_loop_through_until_schedule_opens_is_a_spin() -> None:
    """While the schedule is open (or with none) the node passes straight through."""
    raw = _loop({"id": "wait", "node_type": "TIME", "config": {"until_schedule_opens": True}})
    found = validate_for_activation(raw, agents=AGENTS, variable_keys=None)
    assert [p.code for p in found] == [ProblemCode.SPIN_CYCLE]
