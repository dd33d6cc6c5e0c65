"""decide() with waitForReply and retry policies: pure examples and properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reachflow.domain.codec import state_from_json, state_to_json
from reachflow.domain.decider import (
    AgentReported,
    Context,
    Decision,
    Event,
    ExecutionState,
    Lead,
    Paused,
    Phase,
    ReplyReceived,
    Resumed,
    StepUpdated,
    WakeUp,
    decide,
    new_execution,
)
from reachflow.domain.definition import compile_linear, normalize_linear
from reachflow.domain.enums import Channel, Disposition, ExecutionStatus, StepStatus
from reachflow.domain.errors import ValidationFailed
from reachflow.domain.gate import Gate
from reachflow.domain.graph import (
    NO_REPLY,
    OPTED_OUT,
    REPLIED,
    Graph,
    ReplyBranch,
    ReplyWait,
)
from reachflow.domain.graph_definition import compile_graph, validate_for_activation
from reachflow.domain.replies import classify, keyword_in

AGENTS = {"call-1": Channel.CALL, "text-1": Channel.TEXT}
T0 = datetime(2026, 3, 9, 14, 0, tzinfo=UTC)
LEAD = Lead(phone="+14155550123")


def graph_of(steps: list[dict[str, Any]]) -> Graph:
    ids = (f"s{i}" for i in count(1))
    return compile_linear(normalize_linear({"steps": steps}, AGENTS, ids))


class Run:
    """Feeds events to decide, keeping the state and every decision."""

    def __init__(self, graph: Graph) -> None:
        self.ctx = Context(graph=graph, gate=Gate(), lead=LEAD, timezone="America/New_York")
        self.state: ExecutionState = new_execution("ex-1", now=T0)
        self.now = T0
        self.decisions: list[Decision] = []

    def feed(self, event: Event, *, at: datetime | None = None) -> Decision:
        self.now = at or self.now
        decision = decide(self.ctx, self.state, event, self.now)
        # The state survives storage as JSON.
        self.state = state_from_json(state_to_json(decision.state))
        self.decisions.append(decision)
        return decision

    def wake(self) -> Decision:
        assert self.state.wake_at is not None
        return self.feed(WakeUp(), at=max(self.now, self.state.wake_at))

    def report(self, disposition: Disposition, **extra: Any) -> Decision:
        assert self.state.step_id is not None
        return self.feed(AgentReported(self.state.step_id, disposition, {}, **extra))

    def kinds(self) -> list[str]:
        return [h.kind for d in self.decisions for h in d.history]

    def dispatches(self) -> list[Any]:
        return [x for d in self.decisions for x in d.dispatches]


def text_waiting(**wait: Any) -> dict[str, Any]:
    return {
        "id": "ask",
        "type": "TEXT",
        "order": 1,
        "agentId": "text-1",
        "initialMessage": "Still interested? Reply YES or NO",
        "waitForReply": {
            "timeoutSecs": 86400,
            "branches": [
                {"name": "yes", "keywords": ["yes", "sure"], "then": "next"},
                {"name": "no", "regex": r"^\s*(no|nope)\b", "then": "finish"},
            ],
            **wait,
        },
    }


FOLLOW_UP = {
    "id": "follow",
    "type": "TEXT",
    "order": 2,
    "agentId": "text-1",
    "initialMessage": "You said: {{lastReply}}",
}


def test_a_reply_before_the_timeout_takes_its_keyword_branch() -> None:
    run = Run(graph_of([text_waiting(), FOLLOW_UP]))
    run.wake()
    run.report(Disposition.ENDED)
    assert run.state.phase is Phase.AWAITING_REPLY
    assert run.state.wake_at == T0 + timedelta(days=1)
    ask_step = run.state.step_id
    decision = run.feed(ReplyReceived("Yes, please!"), at=T0 + timedelta(hours=2))
    [done] = [s for s in decision.steps if isinstance(s, StepUpdated) and s.id == ask_step]
    assert done.status is StepStatus.COMPLETED
    assert done.reply == "Yes, please!"
    replied = next(h for h in decision.history if h.kind == "replied")
    assert replied.data["outcome"] == "yes"
    # "then": "next" leads to the follow-up, which quotes the reply.
    assert decision.dispatches[0].message == "You said: Yes, please!"
    assert run.state.last_reply == "Yes, please!"


def test_a_regex_branch_and_a_reply_no_branch_matches() -> None:
    run = Run(graph_of([text_waiting(), FOLLOW_UP]))
    run.wake()
    run.report(Disposition.ENDED)
    run.feed(ReplyReceived("nope, not now"))
    assert run.state.status is ExecutionStatus.COMPLETED  # "no" -> finish
    other = Run(graph_of([text_waiting(onReply="next"), FOLLOW_UP]))
    other.wake()
    other.report(Disposition.ENDED)
    decision = other.feed(ReplyReceived("who is this?"))
    assert next(h for h in decision.history if h.kind == "replied").data["outcome"] == REPLIED
    assert decision.dispatches  # onReply: next


def test_no_reply_before_the_timeout_goes_on() -> None:
    run = Run(graph_of([text_waiting(), FOLLOW_UP]))
    run.wake()
    run.report(Disposition.ENDED)
    decision = run.wake()
    assert "no_reply" in [h.kind for h in decision.history]
    assert decision.dispatches[0].node_id == "follow"  # onNoReply: next (the default)
    assert decision.dispatches[0].message == "You said: "


def test_stop_as_a_reply_takes_the_opt_out_branch() -> None:
    wait = text_waiting()
    wait["waitForReply"]["branches"].append({"optOut": True, "then": "finish"})
    run = Run(graph_of([wait, FOLLOW_UP]))
    run.wake()
    run.report(Disposition.ENDED)
    decision = run.feed(ReplyReceived("STOP"))
    assert next(h for h in decision.history if h.kind == "replied").data["outcome"] == OPTED_OUT
    assert run.state.status is ExecutionStatus.COMPLETED
    assert not decision.dispatches


def test_a_reply_before_the_delivery_report_counts_and_the_report_is_ignored() -> None:
    run = Run(graph_of([text_waiting(), FOLLOW_UP]))
    run.wake()
    step = run.state.step_id
    assert step is not None
    run.feed(ReplyReceived("sure"))
    late = run.feed(AgentReported(step, Disposition.ENDED, {}))
    assert [h.kind for h in late.history] == ["report_ignored"]


def test_a_text_that_did_not_go_out_does_not_wait() -> None:
    run = Run(graph_of([text_waiting(), FOLLOW_UP]))
    run.wake()
    run.report(Disposition.BAD_NUMBER)
    assert run.state.phase is not Phase.AWAITING_REPLY
    assert "awaiting_reply" not in run.kinds()


def test_a_pause_stops_the_reply_clock_and_a_resume_restarts_it() -> None:
    run = Run(graph_of([text_waiting(), FOLLOW_UP]))
    run.wake()
    run.report(Disposition.ENDED)
    run.feed(Paused(), at=T0 + timedelta(hours=20))
    assert run.state.wake_at is None
    run.feed(Resumed(), at=T0 + timedelta(days=3))
    assert run.state.wake_at == T0 + timedelta(days=3, hours=4)


def test_a_reply_arriving_when_nothing_waits_changes_only_the_history() -> None:
    run = Run(graph_of([FOLLOW_UP]))
    run.wake()
    before = run.state
    decision = run.feed(ReplyReceived("hello"))
    assert [h.kind for h in decision.history] == ["reply_ignored"]
    assert decision.state == before


def test_wait_for_reply_only_on_text_steps_and_targets_must_exist() -> None:
    bad_call = {
        "type": "CALL",
        "order": 1,
        "agentId": "call-1",
        "waitForReply": {"timeoutSecs": 60},
    }
    with pytest.raises(ValidationFailed) as caught:
        graph_of([bad_call])
    assert caught.value.problems[0].field == "definition.steps[0].waitForReply"
    with pytest.raises(ValidationFailed) as missing:
        graph_of([text_waiting(onReply="nowhere")])
    assert [p.field for p in missing.value.problems] == ["definition.steps[0].waitForReply.onReply"]


# -- retries ---------------------------------------------------------------------------------


def call_with_policy(**policy: Any) -> dict[str, Any]:
    return {
        "id": "call",
        "type": "CALL",
        "order": 1,
        "agentId": "call-1",
        "retryPolicy": policy,
    }


def test_a_no_answer_is_retried_after_its_delay_at_most_max_retries_times() -> None:
    run = Run(graph_of([call_with_policy(NO_ANSWER={"delaySecs": 4 * 3600, "maxRetries": 3})]))
    run.wake()
    for retry in range(1, 4):
        decision = run.report(Disposition.NO_ANSWER)
        scheduled = next(h for h in decision.history if h.kind == "retry_scheduled")
        assert scheduled.data["retry"] == retry
        assert run.state.wake_at == run.now + timedelta(hours=4)
        run.wake()
    run.report(Disposition.NO_ANSWER)
    assert "retries_exhausted" in run.kinds()
    assert run.state.status is ExecutionStatus.COMPLETED
    keys = [d.idempotency_key for d in run.dispatches()]
    assert len(keys) == 4
    assert len(set(keys)) == 4  # every retry is a new attempt with its own key
    assert len({d.step_execution_id for d in run.dispatches()}) == 4


def test_call_again_is_honoured_at_the_time_the_contact_named() -> None:
    policy = {"CALL_AGAIN": {"useCallbackAt": True, "delaySecs": 3600, "maxRetries": 2}}
    run = Run(graph_of([call_with_policy(**policy)]))
    run.wake()
    named = T0 + timedelta(days=1, hours=5)
    decision = run.report(Disposition.CALL_AGAIN, callback_at=named)
    assert run.state.wake_at == named
    why = next(h for h in decision.history if h.kind == "retry_scheduled").data["why"]
    assert "asked for a call back" in why
    run.wake()
    assert run.dispatches()[-1].step_execution_id != run.dispatches()[0].step_execution_id
    # Without a time, the rule's delay.
    run.report(Disposition.CALL_AGAIN)
    assert run.state.wake_at == run.now + timedelta(hours=1)


def test_a_retry_while_paused_waits_for_the_resume() -> None:
    run = Run(graph_of([call_with_policy(LINE_BUSY={"delaySecs": 600})]))
    run.wake()
    run.feed(Paused())
    run.report(Disposition.LINE_BUSY)
    assert run.state.wake_at is None
    assert run.state.remaining_secs == 600
    run.feed(Resumed(), at=T0 + timedelta(hours=1))
    assert run.state.wake_at == T0 + timedelta(hours=1, minutes=10)


def test_retry_policies_are_checked() -> None:
    with pytest.raises(ValidationFailed) as caught:
        graph_of([call_with_policy(NOPE={"delaySecs": 1}, NO_ANSWER={"maxRetries": 99})])
    fields = {p.field for p in caught.value.problems}
    assert "definition.steps[0].retryPolicy.NOPE" in fields
    assert "definition.steps[0].retryPolicy.NO_ANSWER.maxRetries" in fields
    assert "definition.steps[0].retryPolicy.NO_ANSWER.delaySecs" in fields


@given(
    st.lists(st.sampled_from([Disposition.NO_ANSWER, Disposition.LINE_BUSY, Disposition.ENDED])),
    st.integers(1, 4),
    st.integers(1, 4),
)
def test_retries_never_exceed_the_policy_and_every_attempt_has_its_own_key(
    outcomes: list[Disposition], no_answer: int, busy: int
) -> None:
    policy = {
        "NO_ANSWER": {"delaySecs": 3600, "maxRetries": no_answer},
        "LINE_BUSY": {"delaySecs": 600, "maxRetries": busy},
    }
    run = Run(graph_of([call_with_policy(**policy), {**FOLLOW_UP, "initialMessage": "hi"}]))
    run.wake()
    for outcome in outcomes:
        if run.state.is_finished or run.state.phase is not Phase.DISPATCHED:
            break
        run.report(outcome)
        while run.state.phase is Phase.DELAY:
            run.wake()
    call_dispatches = [d for d in run.dispatches() if d.node_id == "call"]
    assert len(call_dispatches) <= 1 + no_answer + busy
    keys = [d.idempotency_key for d in run.dispatches()]
    assert len(keys) == len(set(keys))


# -- the graph form ----------------------------------------------------------------------------


def test_a_wait_for_reply_node_in_a_graph() -> None:
    definition = {
        "nodes": [
            {
                "id": "sms",
                "node_type": "SMS",
                "config": {"agent_id": "text-1", "message": "Book a call? YES/NO"},
            },
            {
                "id": "wait",
                "node_type": "WAIT_FOR_REPLY",
                "config": {
                    "timeout_hours": 24,
                    "branches": [{"label": "yes", "keywords": ["yes"]}],
                },
            },
            {"id": "won", "node_type": "CONVERTED", "config": {}},
            {"id": "lost", "node_type": "DROPPED", "config": {}},
        ],
        "edges": [
            {"id": "e1", "from_node_id": "sms", "to_node_id": "wait"},
            {"id": "e2", "from_node_id": "wait", "to_node_id": "won", "label": "yes"},
            {"id": "e3", "from_node_id": "wait", "to_node_id": "lost", "label": "no_reply"},
            {"id": "e4", "from_node_id": "wait", "to_node_id": "lost", "label": "replied"},
        ],
    }
    assert validate_for_activation(definition, agents=AGENTS, variable_keys=None) == []
    run = Run(compile_graph(definition))
    run.wake()
    run.report(Disposition.ENDED)
    assert run.state.node_id == "wait"
    assert run.state.phase is Phase.AWAITING_REPLY
    run.feed(ReplyReceived("YES!"))
    assert run.state.outcome == "converted"
    lost = Run(compile_graph(definition))
    lost.wake()
    lost.report(Disposition.ENDED)
    lost.wake()
    assert lost.state.outcome == "dropped"


def test_a_graph_reply_label_must_be_one_the_node_emits() -> None:
    definition = {
        "nodes": [
            {"id": "wait", "node_type": "WAIT_FOR_REPLY", "config": {}},
            {"id": "won", "node_type": "CONVERTED", "config": {}},
        ],
        "edges": [{"id": "e1", "from_node_id": "wait", "to_node_id": "won", "label": "maybe"}],
    }
    problems = validate_for_activation(definition, agents=AGENTS, variable_keys=None)
    codes = {(p.code.value, p.field) for p in problems}
    assert ("required", "nodes[wait].config") in codes
    assert ("bad_label", "edges[e1].label") in codes


# -- classification properties ---------------------------------------------------------------

words = st.text(st.characters(codec="ascii", categories=["L"]), min_size=1, max_size=8)


@given(st.text(max_size=200), st.lists(words, max_size=4))
def test_every_reply_has_exactly_one_outcome(reply: str, keywords: list[str]) -> None:
    wait = ReplyWait(3600, tuple(ReplyBranch(f"b{i}", (k,)) for i, k in enumerate(keywords)))
    outcome = classify(reply, wait)
    assert outcome in {OPTED_OUT, REPLIED} | {f"b{i}" for i in range(len(keywords))}
    assert outcome != NO_REPLY


@given(words, st.text(max_size=20), st.text(max_size=20))
def test_a_keyword_said_as_a_word_matches(keyword: str, before: str, after: str) -> None:
    assert keyword_in(keyword, f"{before} {keyword.upper()}! {after}")


def test_opt_out_comes_before_any_branch() -> None:
    wait = ReplyWait(3600, (ReplyBranch("stop_branch", ("stop",)),))
    assert classify("please STOP", wait) == OPTED_OUT
    assert not keyword_in("yes", "yesterday")


def test_graph_retry_policy_and_a_wait_on_the_sms_node() -> None:
    definition = {
        "nodes": [
            {
                "id": "call",
                "node_type": "VOICE_CALL",
                "config": {
                    "agent_id": "call-1",
                    "retry_policy": {"NO_ANSWER": {"delay_hours": 4, "max_retries": 2}},
                },
            },
            {
                "id": "sms",
                "node_type": "SMS",
                "config": {
                    "agent_id": "text-1",
                    "message": "Missed you. Call back? {{lastReply}}",
                    "wait_for_reply": {
                        "timeout_days": 1,
                        "branches": [{"label": "yes", "regex": "^y(es)?$"}],
                    },
                },
            },
            {"id": "won", "node_type": "CONVERTED", "config": {}},
            {"id": "lost", "node_type": "DROPPED", "config": {}},
        ],
        "edges": [
            {"id": "e1", "from_node_id": "call", "to_node_id": "sms", "label": "DNP"},
            {"id": "e2", "from_node_id": "call", "to_node_id": "won"},
            {"id": "e3", "from_node_id": "sms", "to_node_id": "won", "label": "yes"},
            {"id": "e4", "from_node_id": "sms", "to_node_id": "lost", "label": "no_reply"},
            {"id": "e5", "from_node_id": "sms", "to_node_id": "lost"},
        ],
    }
    assert validate_for_activation(definition, agents=AGENTS, variable_keys=None) == []
    run = Run(compile_graph(definition))
    run.wake()
    for _ in range(2):
        run.report(Disposition.NO_ANSWER)
        assert run.state.node_id == "call"
        assert run.state.wake_at == run.now + timedelta(hours=4)
        run.wake()
    run.report(Disposition.NO_ANSWER)  # retries used up: DNP -> the text
    assert run.state.node_id == "sms"
    run.report(Disposition.ENDED)
    assert run.state.phase is Phase.AWAITING_REPLY
    run.feed(ReplyReceived("Y"))
    assert run.state.outcome == "converted"
    assert len([d for d in run.dispatches() if d.node_id == "call"]) == 3


def test_graph_retry_and_wait_configs_are_checked() -> None:
    definition = {
        "nodes": [
            {
                "id": "sms",
                "node_type": "SMS",
                "config": {
                    "agent_id": "text-1",
                    "message": "hi",
                    "retry_policy": {"NOPE": {}, "LINE_BUSY": {"max_retries": 0}},
                    "wait_for_reply": {
                        "timeout_minutes": 0.5,
                        "branches": [{"label": "replied", "keywords": ["x"]}],
                    },
                },
            },
        ],
        "edges": [],
    }
    problems = validate_for_activation(definition, agents=AGENTS, variable_keys=None)
    fields = {p.field for p in problems}
    assert "nodes[sms].config.retry_policy.NOPE" in fields
    assert "nodes[sms].config.retry_policy.LINE_BUSY" in fields  # no delay
    assert "nodes[sms].config.retry_policy.LINE_BUSY.max_retries" in fields
    assert "nodes[sms].config.wait_for_reply.timeout_minutes" in fields
    assert "nodes[sms].config.wait_for_reply.branches[0].label" in fields


@pytest.mark.parametrize("name", ["failed", "Completed", "DNP", "no_answer", "default"])
def test_a_branch_may_not_take_a_disposition_or_group_name_in_either_form(name: str) -> None:
    """A branch's edge matches like any edge: a Feather branch named ``failed`` used to catch
    a text that was not sent (COULD_NOT_CONNECT) instead of going on to the next step. Both
    forms read branches with one parser and refuse the same names."""
    step = {
        "type": "TEXT",
        "order": 1,
        "agentId": "t",
        "initialMessage": "hi",
        "waitForReply": {"timeoutSecs": 60, "branches": [{"name": name, "keywords": ["x"]}]},
    }
    with pytest.raises(ValidationFailed) as refused:
        normalize_linear({"steps": [step]}, {"t": Channel.TEXT}, iter(["s1"]))
    assert [p.field for p in refused.value.problems] == [
        "definition.steps[0].waitForReply.branches[0].name"
    ]
    graph = {
        "nodes": [
            {
                "id": "w",
                "node_type": "WAIT_FOR_REPLY",
                "config": {"timeout_hours": 1, "branches": [{"label": name, "keywords": ["x"]}]},
            }
        ],
        "edges": [],
    }
    problems = validate_for_activation(graph, agents={}, variable_keys=None, root="definition")
    assert any(
        p.field == "definition.nodes[w].config.branches[0].label" and "reserved" in p.message
        for p in problems
    )
