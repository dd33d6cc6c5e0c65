"""Warnings of a valid definition: properties of ``never_in_window`` and the cap warning."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from reachflow.domain.compliance.rules import load_rules
from reachflow.domain.definition_warnings import definition_warnings
from reachflow.domain.enums import Channel
from reachflow.domain.graph import (
    NO_REPLY,
    REPLIED,
    ActionConfig,
    Edge,
    EndConfig,
    Graph,
    Node,
    NodeKind,
    ReplyWait,
    RetryRule,
    TimeConfig,
)
from reachflow.domain.schedule import WeekSchedule
from tests.domain.strategies import week_schedules

NOW = datetime(2026, 3, 9, 14, 0, tzinfo=UTC)
RULES = load_rules()
#: Local minutes inside the federal calling hours (8:00-21:00), away from their edges.
FEDERAL = (8 * 60 + 1, 21 * 60 - 1)


def one_step(needs_tcpa: bool, retries: tuple[RetryRule, ...] = ()) -> Graph:
    config = ActionConfig(Channel.CALL, "a", needs_tcpa=needs_tcpa, retries=retries)
    return Graph("s", {"s": Node("s", NodeKind.ACTION, config)}, ())


def codes(graph: Graph, schedule: WeekSchedule | None) -> set[str]:
    return {
        w.code
        for w in definition_warnings(
            graph,
            paths={"s": "definition.steps[0]"},
            timezone="America/New_York",
            workflow_schedule=schedule,
            tcpa_schedule=None,
            rules=RULES,
            now=NOW,
        )
    }


def overlaps_federal_hours(schedule: WeekSchedule) -> bool:
    low, high = FEDERAL
    return any(r.start_minute < high and r.end_minute > low for day in schedule.days for r in day)


@given(week_schedules(grid=30))
def test_a_step_warns_it_never_runs_exactly_when_its_hours_miss_the_federal_ones(
    schedule: WeekSchedule,
) -> None:
    warned = "never_in_window" in codes(one_step(True), schedule)
    if overlaps_federal_hours(schedule):
        assert not warned
    if schedule.is_never_open:
        assert warned
    # Without the TCPA check only the schedule itself can close a step.
    assert ("never_in_window" in codes(one_step(False), schedule)) == schedule.is_never_open


@given(st.integers(1, 86400), st.integers(1, 10))
def test_retries_warn_when_they_would_pass_a_cap(delay: int, retries: int) -> None:
    graph = one_step(True, (RetryRule("NO_ANSWER", delay, retries),))
    caps = [r.cap for r in RULES.rules if r.cap is not None and Channel.CALL in r.channels]
    passes = any(
        1 + min(retries, int(cap.window.total_seconds()) // delay) > cap.max_attempts
        for cap in caps
    )
    assert ("retries_beyond_caps" in codes(graph, None)) == passes
    if retries >= 3 and delay <= 3600:  # Florida: 3 calls in 24 hours
        assert passes


# -- waits_for_cap ---------------------------------------------------------------------------

CAPS = [r for r in RULES.rules if r.cap is not None]


def chain(channels: list[Channel], delays: list[int], **last: object) -> Graph:
    """Steps one after another, each waiting its delay after the previous one's report."""
    nodes = {}
    edges = []
    for i, (channel, delay) in enumerate(zip(channels, delays, strict=True)):
        config = ActionConfig(channel, "a", delay_secs=delay, step_id=f"s{i}")
        nodes[f"s{i}"] = Node(f"s{i}", NodeKind.ACTION, config)
        if i:
            edges.append(Edge(f"s{i - 1}", f"s{i}"))
    return Graph("s0", nodes, tuple(edges))


def cap_warnings(graph: Graph) -> dict[str, str]:
    paths = {node_id: f"definition.steps[{node_id[1:]}]" for node_id in graph.nodes}
    return {
        w.field: w.message
        for w in definition_warnings(
            graph,
            paths=paths,
            timezone="America/New_York",
            workflow_schedule=None,
            tcpa_schedule=None,
            rules=RULES,
            now=NOW,
        )
        if w.code == "waits_for_cap"
    }


def crowded_oracle(channels: list[Channel], delays: list[int]) -> set[int]:
    """Steps j that some earlier step i reaches as attempt max + 1 within a cap's window."""
    out: set[int] = set()
    for j, channel in enumerate(channels):
        for rule in CAPS:
            assert rule.cap is not None
            for i in range(j):
                if channel not in rule.channels or j - i + 1 <= rule.cap.max_attempts:
                    continue
                if sum(delays[i + 1 : j + 1]) < rule.cap.window.total_seconds():
                    out.add(j)
    return out


def test_a_call_an_hour_after_another_waits_for_maines_cap() -> None:
    warned = cap_warnings(chain([Channel.CALL, Channel.CALL], [0, 3600]))
    assert list(warned) == ["definition.steps[1]"]
    assert "US-ME" in warned["definition.steps[1]"]
    assert "within 8 h" in warned["definition.steps[1]"]
    # Eight hours later the first call has left Maine's window; Florida allows 3 in 24 h.
    assert cap_warnings(chain([Channel.CALL, Channel.CALL], [0, 8 * 3600])) == {}
    # A text is not held by Maine's cap, but it counts: a call an hour after a text waits.
    assert cap_warnings(chain([Channel.CALL, Channel.TEXT], [0, 60])) == {}
    assert list(cap_warnings(chain([Channel.TEXT, Channel.CALL], [0, 60]))) == [
        "definition.steps[1]"
    ]
    # Four texts 8 hours apart: never 4 in 24 h. Seven hours apart: the fourth waits.
    texts = [Channel.TEXT] * 4
    assert cap_warnings(chain(texts, [0, 8 * 3600, 8 * 3600, 8 * 3600])) == {}
    assert list(cap_warnings(chain(texts, [0, 7 * 3600, 7 * 3600, 7 * 3600]))) == [
        "definition.steps[3]"
    ]


def test_a_reply_timeout_is_a_wait_on_the_no_reply_way_only() -> None:
    def waiting(timeout: int, reply_target: str) -> Graph:
        text = ActionConfig(Channel.TEXT, "t", reply_wait=ReplyWait(timeout), step_id="s0")
        call = ActionConfig(Channel.CALL, "c", step_id="s1")
        nodes = {
            "s0": Node("s0", NodeKind.ACTION, text),
            "s1": Node("s1", NodeKind.ACTION, call),
            "end": Node("end", NodeKind.END, EndConfig()),
        }
        edges = (Edge("s0", reply_target, REPLIED), Edge("s0", "s1", NO_REPLY))
        return Graph("s0", nodes, edges)

    assert cap_warnings(waiting(9 * 3600, "end")) == {}
    assert list(cap_warnings(waiting(3600, "end"))) == ["definition.steps[1]"]
    # A reply can come at once: if it leads to the call too, the call may follow the text
    # at once.
    assert list(cap_warnings(waiting(9 * 3600, "s1"))) == ["definition.steps[1]"]


def test_time_nodes_and_loops_count_their_waits() -> None:
    call = ActionConfig(Channel.TEXT, "a", step_id="s0")
    nodes = {
        "s0": Node("s0", NodeKind.ACTION, call),
        "w": Node("w", NodeKind.TIME, TimeConfig(delay_secs=6 * 3600)),
    }
    loop = (Edge("s0", "w"), Edge("w", "s0"))
    # A text every 6 hours, forever: the fourth within 24 hours waits for Florida's cap.
    warned = cap_warnings(Graph("s0", nodes, loop))
    assert list(warned) == ["definition.steps[0]"]
    assert "attempt 4 within 24 h" in warned["definition.steps[0]"]
    slow = {**nodes, "w": Node("w", NodeKind.TIME, TimeConfig(delay_secs=8 * 3600))}
    assert cap_warnings(Graph("s0", slow, loop)) == {}


@given(
    st.lists(
        st.tuples(st.sampled_from([Channel.CALL, Channel.TEXT]), st.integers(0, 30)),
        min_size=1,
        max_size=6,
    )
)
def test_waits_for_cap_warns_exactly_the_steps_a_cap_would_hold(
    steps: list[tuple[Channel, int]],
) -> None:
    channels = [c for c, _ in steps]
    delays = [0] + [h * 3600 for _, h in steps[1:]]
    expected = {f"definition.steps[{j}]" for j in crowded_oracle(channels, delays)}
    assert set(cap_warnings(chain(channels, delays))) == expected
