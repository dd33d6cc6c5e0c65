"""decide(): driven by a tiny pure simulation loop with a manual clock.

The loop plays the shell: it performs each Dispatch by asking a fake agent for a disposition
and feeds it back as AgentReported a minute later; otherwise it advances ``now`` to
``state.wake_at`` and sends WakeUp.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from reachflow.domain.codec import state_from_json, state_to_json
from reachflow.domain.decider import (
    AgentReported,
    Cancelled,
    Context,
    Decision,
    Dispatch,
    DispatchFailed,
    DispatchHeld,
    Event,
    ExecutionState,
    Lead,
    MetadataMerged,
    Paused,
    Phase,
    Resumed,
    StepOpened,
    StepUpdated,
    WakeUp,
    decide,
    new_execution,
)
from reachflow.domain.definition import END_COMPLETE, compile_linear, normalize_linear
from reachflow.domain.enums import Channel, Disposition, ExecutionStatus, StepStatus
from reachflow.domain.errors import IllegalTransition
from reachflow.domain.gate import Constraint, Gate
from reachflow.domain.graph import Graph
from reachflow.domain.schedule import TimeRange, WeekSchedule
from tests.domain.strategies import ZONES, applicable, brute_allowed, instants, week_schedules

AGENTS = {"call-1": Channel.CALL, "text-1": Channel.TEXT}
NY = "America/New_York"
LEAD = Lead(phone="+14155550123", zipcode="94107", state="CA")
CALL_RECORD = {"callDuration": 42, "status": "ended"}


def graph_of(steps: list[dict[str, Any]], infinite: bool = False) -> Graph:
    ids = (f"s{i}" for i in count(1))
    return compile_linear(normalize_linear({"steps": steps, "isInfinite": infinite}, AGENTS, ids))


def context(graph: Graph, gate: Gate | None = None) -> Context:
    return Context(graph=graph, gate=gate or Gate(), lead=LEAD, timezone=NY)


def call(order: int = 1, **extra: Any) -> dict[str, Any]:
    return {"type": "CALL", "order": order, "agentId": "call-1", **extra}


def text(order: int = 2, **extra: Any) -> dict[str, Any]:
    return {"type": "TEXT", "order": order, "agentId": "text-1", **extra}


Outcome = Callable[[Dispatch, int], Disposition]


def always(d: Disposition) -> Outcome:
    return lambda _dispatch, _n: d


def in_turn(*ds: Disposition) -> Outcome:
    return lambda _dispatch, n: ds[min(n, len(ds) - 1)]


@dataclass
class Record:
    now: datetime
    before: ExecutionState
    event: Event
    decision: Decision


@dataclass
class Sim:
    """The shell, in miniature: performs dispatches with a fake agent, fires timers."""

    ctx: Context
    state: ExecutionState
    now: datetime
    outcome: Outcome = field(default_factory=lambda: always(Disposition.NO_ANSWER))
    report_after: timedelta = timedelta(minutes=1)
    records: list[Record] = field(default_factory=list)
    dispatches: list[tuple[datetime, Dispatch]] = field(default_factory=list)
    pending: list[AgentReported] = field(default_factory=list)

    @classmethod
    def start(cls, ctx: Context, now: datetime, outcome: Outcome | None = None, **kw: Any) -> Sim:
        state = new_execution("exec-1", now=now, **kw)
        return cls(ctx, state, now, outcome or always(Disposition.NO_ANSWER))

    def send(self, event: Event) -> Decision:
        decision = decide(self.ctx, self.state, event, self.now)
        self.records.append(Record(self.now, self.state, event, decision))
        self.state = decision.state
        for d in decision.dispatches:
            disposition = self.outcome(d, len(self.dispatches))
            self.dispatches.append((self.now, d))
            self.pending.append(AgentReported(d.step_execution_id, disposition, CALL_RECORD))
        return decision

    def step(self) -> Decision | None:
        """Deliver the next report, or fire the next timer; None when nothing is due."""
        if self.pending:
            self.now += self.report_after
            return self.send(self.pending.pop(0))
        if self.state.wake_at is not None and not self.state.is_finished:
            self.now = max(self.now, self.state.wake_at)
            return self.send(WakeUp())
        return None

    def run(self, max_events: int = 200) -> Sim:
        for _ in range(max_events):
            if self.state.is_finished or self.step() is None:
                return self
        raise AssertionError(f"not finished after {max_events} events: {self.state}")

    def run_until(self, predicate: Callable[[Sim], bool], max_events: int = 50) -> Sim:
        for _ in range(max_events):
            if predicate(self):
                return self
            assert self.step() is not None, "nothing left to do"
        raise AssertionError("predicate never held")

    @property
    def history(self) -> list[Any]:
        return [h for r in self.records for h in r.decision.history]

    @property
    def step_updates(self) -> list[StepUpdated]:
        return [s for r in self.records for s in r.decision.steps if isinstance(s, StepUpdated)]

    def kinds(self) -> list[str]:
        return [h.kind for h in self.history]


MONDAY = datetime(2026, 3, 9, 14, tzinfo=UTC)  # 10:00 EDT, the day after spring forward
WEEKDAYS_9_TO_17 = WeekSchedule(
    days=tuple((TimeRange(540, 1020),) if d < 5 else () for d in range(7))
)
MON_TUE_9_TO_17 = WeekSchedule(
    days=tuple((TimeRange(540, 1020),) if d < 2 else () for d in range(7))
)


def workflow_gate(schedule: WeekSchedule = WEEKDAYS_9_TO_17, zone: str = NY) -> Gate:
    return Gate((Constraint("workflowSchedule", "1", zone, schedule),))


SEED_002_STEPS = [
    call(1, delayInSecs=0, leaveVoicemail=True, finishOn=["CALENDLY", "NOT_INTERESTED", "DNC"]),
    text(
        2,
        delayInSecs=86400,
        initialMessage="Hi {{firstName}}, following up on our earlier outreach.",
        finishOn=["DNC"],
    ),
]


# -------------------------------------------------------------------------- scenarios


def test_seed_002_call_then_text_next_day() -> None:
    ctx = context(graph_of(SEED_002_STEPS), workflow_gate(MON_TUE_9_TO_17))
    sim = Sim.start(
        ctx,
        MONDAY,
        in_turn(Disposition.NO_ANSWER, Disposition.TEXT_CONSENT),
        variables={"firstName": "Taylor"},
    ).run()

    assert sim.state.status is ExecutionStatus.COMPLETED
    assert sim.state.phase is Phase.DONE
    assert sim.state.disposition is Disposition.TEXT_CONSENT
    assert sim.state.node_id == END_COMPLETE
    (t1, d1), (t2, d2) = sim.dispatches
    assert t1 == MONDAY
    assert (d1.channel, d1.agent_id, d1.leave_voicemail, d1.message) == (
        Channel.CALL,
        "call-1",
        True,
        None,
    )
    assert d1.phone == LEAD.phone
    assert t2 == MONDAY + timedelta(minutes=1, seconds=86400)
    assert d2.channel is Channel.TEXT
    assert d2.message == "Hi Taylor, following up on our earlier outreach."
    assert d2.idempotency_key == f"exec-1:{d2.step_execution_id}:1"
    assert sim.state.started_at == MONDAY
    assert sim.state.completed_at == t2 + timedelta(minutes=1)
    assert sim.state.actions == 2
    assert sim.state.last_call == CALL_RECORD
    assert sim.kinds()[0] == "started"
    assert sim.kinds()[-1] == "finished"
    statuses = [(u.status, u.disposition) for u in sim.step_updates]
    assert statuses == [
        (StepStatus.RUNNING, None),
        (StepStatus.COMPLETED, Disposition.NO_ANSWER),
        (StepStatus.RUNNING, None),
        (StepStatus.COMPLETED, Disposition.TEXT_CONSENT),
    ]


def test_seed_002_text_deferred_past_the_schedule() -> None:
    # Tuesday 16:30 EDT call; the text is due Wednesday 16:31, closed until Monday 09:00.
    tuesday = datetime(2026, 3, 10, 20, 30, tzinfo=UTC)
    ctx = context(graph_of(SEED_002_STEPS), workflow_gate(MON_TUE_9_TO_17))
    sim = Sim.start(ctx, tuesday, variables={"firstName": "Taylor"}).run()
    assert [t for t, _ in sim.dispatches] == [tuesday, datetime(2026, 3, 16, 13, tzinfo=UTC)]
    deferred = [h for h in sim.history if h.kind == "deferred"]
    assert len(deferred) == 1
    assert deferred[0].data["until"] == "2026-03-16T13:00:00+00:00"
    assert sim.state.disposition is Disposition.NO_ANSWER


@pytest.mark.parametrize("finish", [Disposition.CALENDLY, Disposition.NOT_INTERESTED])
def test_finish_on_ends_with_that_disposition(finish: Disposition) -> None:
    sim = Sim.start(context(graph_of(SEED_002_STEPS)), MONDAY, always(finish)).run()
    assert sim.state.status is ExecutionStatus.COMPLETED
    assert sim.state.disposition is finish
    assert len(sim.dispatches) == 1
    finished = sim.history[-1]
    assert finished.kind == "finished"
    assert finished.data["disposition"] == finish.value


def test_finish_on_in_a_later_step() -> None:
    sim = Sim.start(
        context(graph_of(SEED_002_STEPS)), MONDAY, in_turn(Disposition.NO_ANSWER, Disposition.DNC)
    ).run()
    assert sim.state.disposition is Disposition.DNC
    assert len(sim.dispatches) == 2


def test_skipped_step_is_skipped_without_waiting() -> None:
    vip_only = [{"field": "variables.vip", "operator": "equals", "value": True}]
    steps = [call(1, delayInSecs=3600, conditions=vip_only), text(2), call(3, count=2)]
    sim = Sim.start(context(graph_of(steps)), MONDAY, variables={"vip": False}).run()
    assert [d.channel for _, d in sim.dispatches] == [Channel.TEXT, Channel.CALL, Channel.CALL]
    assert sim.dispatches[0][0] == MONDAY  # step 1's delay was not waited
    skipped = [u for u in sim.step_updates if u.status is StepStatus.SKIPPED]
    assert len(skipped) == 1
    opened = [s for r in sim.records for s in r.decision.steps if isinstance(s, StepOpened)]
    assert opened[0].id == skipped[0].id
    assert opened[0].node_id == "s1"
    assert "skipped" in sim.kinds()
    assert sim.state.status is ExecutionStatus.COMPLETED

    vip = Sim.start(context(graph_of(steps)), MONDAY, variables={"vip": True}).run()
    assert vip.dispatches[0][1].channel is Channel.CALL
    assert vip.dispatches[0][0] == MONDAY + timedelta(seconds=3600)


def test_condition_on_the_last_disposition() -> None:
    only_if_busy = [{"field": "disposition", "operator": "equals", "value": "LINE_BUSY"}]
    steps = [call(1), text(2, conditions=only_if_busy), call(3, conditions=only_if_busy)]
    sim = Sim.start(context(graph_of(steps)), MONDAY, always(Disposition.NO_ANSWER)).run()
    assert len(sim.dispatches) == 1
    assert sim.state.disposition is Disposition.NO_ANSWER
    busy = Sim.start(context(graph_of(steps)), MONDAY, always(Disposition.LINE_BUSY)).run()
    assert len(busy.dispatches) == 3


def test_count_repeats_the_step() -> None:
    steps = [call(1, count=2, delayInSecs=600, finishOn=["DNC"]), text(2)]
    sim = Sim.start(context(graph_of(steps)), MONDAY).run()
    assert [d.node_id for _, d in sim.dispatches] == ["s1", "s1#2", "s2"]
    times = [t for t, _ in sim.dispatches]
    assert times[0] == MONDAY + timedelta(seconds=600)
    assert times[1] == times[0] + timedelta(minutes=1, seconds=600)
    assert times[2] == times[1] + timedelta(minutes=1)
    # A finishOn outcome on the first attempt ends it all.
    dnc = Sim.start(context(graph_of(steps)), MONDAY, always(Disposition.DNC)).run()
    assert [d.node_id for _, d in dnc.dispatches] == ["s1"]


def test_infinite_loops_until_finish_on() -> None:
    steps = [call(1, delayInSecs=3600, finishOn=["DNC"]), text(2, delayInSecs=0)]
    # Six unanswered attempts, then DNC: the TEXT step has no finishOn, so it loops to the call.
    outcomes = in_turn(*([Disposition.NO_ANSWER] * 6), Disposition.DNC)
    sim = Sim.start(context(graph_of(steps, infinite=True)), MONDAY, outcomes).run()
    assert [d.node_id for _, d in sim.dispatches] == ["s1", "s2"] * 3 + ["s1"]
    assert sim.state.status is ExecutionStatus.COMPLETED
    assert sim.state.disposition is Disposition.DNC
    times = [t for t, _ in sim.dispatches]
    assert times[2] == times[1] + timedelta(minutes=1, seconds=3600)  # the delay, every loop
    keys = [d.idempotency_key for _, d in sim.dispatches]
    assert len(keys) == len(set(keys)) == 7
    assert sim.state.visits["s1"] == 4
    assert sim.state.visits["s2"] == 3


def test_infinite_without_finish_on_keeps_going() -> None:
    steps = [call(1, delayInSecs=86400)]
    sim = Sim.start(context(graph_of(steps, infinite=True)), MONDAY)
    for _ in range(40):
        sim.step()
    assert sim.state.status is ExecutionStatus.RUNNING
    assert len(sim.dispatches) == 20
    day_and_report = timedelta(seconds=86400, minutes=1)
    assert sim.dispatches[-1][0] == MONDAY + 20 * day_and_report - timedelta(minutes=1)
    sim.send(Cancelled())
    assert sim.state.status is ExecutionStatus.CANCELLED


def test_workflow_schedule_defers_to_the_next_opening() -> None:
    saturday = datetime(2026, 3, 7, 15, tzinfo=UTC)  # before spring forward
    ctx = context(graph_of([call(1)]), workflow_gate())
    sim = Sim.start(ctx, saturday)
    first = sim.step()
    assert first is not None
    assert first.dispatches == ()
    assert sim.state.phase is Phase.DEFERRED
    monday_open = datetime(2026, 3, 9, 13, tzinfo=UTC)  # 09:00 EDT
    assert sim.state.wake_at == monday_open
    (deferred,) = [h for h in first.history if h.kind == "deferred"]
    assert deferred.data["reason"]
    assert "workflowSchedule@1" in deferred.data["reason"]
    assert deferred.data["rules"] == ["workflowSchedule@1"]
    assert deferred.data["zones"] == [NY]
    assert deferred.data["until"] == monday_open.isoformat()
    pending = [u for u in first.steps if isinstance(u, StepUpdated)]
    assert pending[-1].status is StepStatus.PENDING
    assert pending[-1].next_allowed_at == monday_open
    # A WakeUp before the time changes nothing.
    early = decide(ctx, sim.state, WakeUp(), monday_open - timedelta(seconds=1))
    assert early.state == sim.state
    assert early.dispatches == ()
    sim.run()
    assert [t for t, _ in sim.dispatches] == [monday_open]
    assert sim.state.status is ExecutionStatus.COMPLETED


def test_step_without_tcpa_ignores_the_contact_window() -> None:
    contact = Constraint(
        "tcpaSchedule",
        "1",
        "America/Los_Angeles",
        WEEKDAYS_9_TO_17,
        contact_window=True,
    )
    ctx = context(graph_of([call(1), text(2, needsTCPACompliance=False)]), Gate((contact,)))
    night = datetime(2026, 3, 10, 6, tzinfo=UTC)  # 23:00 PDT Monday
    sim = Sim.start(ctx, night).run()
    assert [t for t, _ in sim.dispatches] == [
        datetime(2026, 3, 10, 16, tzinfo=UTC),
        datetime(2026, 3, 10, 16, 1, tzinfo=UTC),
    ]


def test_pause_during_a_delay_keeps_the_remaining_delay() -> None:
    ctx = context(graph_of(SEED_002_STEPS))
    sim = Sim.start(ctx, MONDAY).run_until(lambda s: s.state.phase is Phase.DELAY)
    due = sim.state.wake_at
    assert due == MONDAY + timedelta(minutes=1, seconds=86400)
    sim.now += timedelta(hours=1)
    paused = sim.send(Paused())
    assert paused.dispatches == ()
    assert sim.state.status is ExecutionStatus.PAUSED
    assert sim.state.paused_from is ExecutionStatus.RUNNING
    assert sim.state.remaining_secs == 86400 - 3600
    assert sim.state.wake_at is None
    # Pausing twice changes nothing; a stray WakeUp while paused does nothing.
    assert sim.send(Paused()).state == sim.state
    sim.now = due + timedelta(days=3)
    stray = sim.send(WakeUp())
    assert stray.dispatches == ()
    assert stray.history == ()
    resumed = sim.send(Resumed())
    assert resumed.dispatches == ()
    assert sim.state.status is ExecutionStatus.RUNNING
    assert sim.state.remaining_secs is None
    assert sim.state.wake_at == sim.now + timedelta(seconds=86400 - 3600)
    resume_at = sim.now
    sim.run()
    assert sim.dispatches[-1][0] == resume_at + timedelta(seconds=86400 - 3600)
    assert sim.state.status is ExecutionStatus.COMPLETED
    assert [h.kind for h in sim.history if h.kind in ("paused", "resumed")] == [
        "paused",
        "resumed",
    ]


def test_pause_while_dispatched_lets_the_report_land() -> None:
    ctx = context(graph_of([call(1), text(2)]))
    sim = Sim.start(ctx, MONDAY)
    sim.step()
    assert sim.state.phase is Phase.DISPATCHED
    sim.send(Paused())
    report = sim.step()  # the report arrives while paused
    assert report is not None
    assert report.dispatches == ()
    assert sim.state.status is ExecutionStatus.PAUSED
    assert sim.state.disposition is Disposition.NO_ANSWER
    assert sim.state.phase is Phase.ENTER
    assert sim.state.node_id == "s2"
    completed = [u for u in report.steps if isinstance(u, StepUpdated)]
    assert completed[-1].status is StepStatus.COMPLETED
    # Nothing more to do until resumed; a WakeUp is ignored.
    assert sim.step() is None
    assert sim.send(WakeUp()).dispatches == ()
    sim.now += timedelta(hours=5)
    resumed = sim.send(Resumed())
    assert [d.node_id for d in resumed.dispatches] == ["s2"]
    sim.run()
    assert sim.state.status is ExecutionStatus.COMPLETED
    assert len(sim.dispatches) == 2
    assert sim.state.visits == {"s1": 1, "s2": 1, END_COMPLETE: 1}


def test_pause_while_deferred_and_before_start() -> None:
    saturday = datetime(2026, 3, 7, 15, tzinfo=UTC)
    ctx = context(graph_of([call(1)]), workflow_gate())
    sim = Sim.start(ctx, saturday, start_at=saturday + timedelta(hours=2))
    sim.send(Paused())
    assert sim.state.paused_from is ExecutionStatus.CREATED
    assert sim.state.remaining_secs == 7200
    sim.send(Resumed())
    assert sim.state.status is ExecutionStatus.CREATED
    sim.step()
    assert sim.state.phase is Phase.DEFERRED
    sim.send(Paused())
    assert sim.state.wake_at is None
    sim.now = datetime(2026, 3, 10, 15, tzinfo=UTC)  # Tuesday, open
    sim.send(Resumed())
    assert sim.state.wake_at == sim.now
    sim.run()
    assert [t for t, _ in sim.dispatches] == [datetime(2026, 3, 10, 15, tzinfo=UTC)]


def test_cancel() -> None:
    ctx = context(graph_of(SEED_002_STEPS))
    sim = Sim.start(ctx, MONDAY).run_until(lambda s: s.state.phase is Phase.DELAY)
    in_flight = sim.state.step_id
    assert in_flight is not None
    cancelled = sim.send(Cancelled("lead opted out"))
    assert sim.state.status is ExecutionStatus.CANCELLED
    assert sim.state.phase is Phase.DONE
    assert sim.state.wake_at is None
    assert sim.state.reason == "lead opted out"
    assert sim.state.completed_at == sim.now
    assert [(u.id, u.status) for u in cancelled.steps if isinstance(u, StepUpdated)] == [
        (in_flight, StepStatus.CANCELLED)
    ]
    assert cancelled.history[-1].data == {"reason": "lead opted out"}
    assert sim.step() is None
    assert sim.send(WakeUp()).dispatches == ()
    for late in (Cancelled(), Paused(), Resumed()):
        with pytest.raises(IllegalTransition):
            decide(ctx, sim.state, late, sim.now)


def test_resume_of_a_completed_execution_raises_and_changes_nothing() -> None:
    ctx = context(graph_of([call(1)]))
    sim = Sim.start(ctx, MONDAY).run()
    assert sim.state.status is ExecutionStatus.COMPLETED
    before = sim.state
    snapshot = state_to_json(before)
    with pytest.raises(IllegalTransition) as info:
        decide(ctx, before, Resumed(), sim.now)
    assert info.value.code == "ILLEGAL_TRANSITION"
    assert "COMPLETED" in info.value.message
    assert state_to_json(before) == snapshot
    # A late report for a finished execution is only history.
    late = decide(ctx, before, AgentReported("nope", Disposition.DNC), sim.now)
    assert late.state == before
    assert late.dispatches == ()
    assert [h.kind for h in late.history] == ["report_ignored"]


def test_replayed_report_dispatches_nothing_new() -> None:
    ctx = context(graph_of([call(1), text(2)]))
    sim = Sim.start(ctx, MONDAY)
    sim.step()
    report = sim.pending[0]
    sim.now += timedelta(minutes=1)
    first = sim.send(sim.pending.pop(0))
    assert len(first.dispatches) == 1
    again = decide(ctx, first.state, report, sim.now)
    assert again.dispatches == ()
    assert again.steps == ()
    assert again.state == first.state
    assert [h.kind for h in again.history] == ["report_ignored"]
    # A replayed WakeUp at the same instant is equally harmless.
    woke = decide(ctx, first.state, WakeUp(), sim.now)
    assert woke.dispatches == ()
    assert woke.state == first.state


def test_dispatch_failed_and_held() -> None:
    ctx = context(graph_of([call(1, finishOn=["COULD_NOT_CONNECT"])]))
    sim = Sim.start(ctx, MONDAY)
    sim.step()
    step_id = sim.state.step_id
    assert step_id is not None
    sim.pending.clear()
    held = sim.send(DispatchHeld(step_id, "window closed at dispatch time"))
    # Held then re-dispatched right away (no gate): a second attempt with a new key.
    assert [d.idempotency_key for d in held.dispatches] == [f"exec-1:{step_id}:2"]
    sim.pending.clear()
    sim.send(DispatchFailed("someone-else", "boom"))
    assert sim.state.phase is Phase.DISPATCHED
    failed = sim.send(DispatchFailed(step_id, "agent unreachable"))
    assert failed.dispatches == ()
    assert sim.state.status is ExecutionStatus.COMPLETED
    assert sim.state.disposition is Disposition.COULD_NOT_CONNECT


def test_report_timeout_counts_as_could_not_connect() -> None:
    ctx = context(graph_of([call(1), text(2)]))
    sim = Sim.start(ctx, MONDAY)
    sim.step()
    sim.pending.clear()  # the agent never answers
    sim.step()  # the report deadline fires
    assert "report_timeout" in sim.kinds()
    assert sim.state.disposition is Disposition.COULD_NOT_CONNECT
    assert sim.dispatches[-1][1].node_id == "s2"


def test_gate_never_open_fails_the_execution() -> None:
    closed = Gate((Constraint("workflowSchedule", "1", NY, WeekSchedule(days=((),) * 7)),))
    sim = Sim.start(context(graph_of([call(1)]), closed), MONDAY).run()
    assert sim.state.status is ExecutionStatus.FAILED
    assert sim.dispatches == []
    (deferred,) = [h for h in sim.history if h.kind == "deferred"]
    assert deferred.data["until"] is None
    assert deferred.data["reason"]
    assert sim.state.reason == deferred.data["reason"]


def test_metadata_merged_feeds_templates() -> None:
    ctx = context(graph_of([text(1, delayInSecs=60, initialMessage="Re: {{campaign}}")]))
    sim = Sim.start(ctx, MONDAY, metadata={"campaign": "old"})
    sim.step()
    sim.send(MetadataMerged({"campaign": "renewal-q2"}))
    sim.run()
    assert sim.dispatches[0][1].message == "Re: renewal-q2"


def test_codec_round_trip() -> None:
    ctx = context(graph_of(SEED_002_STEPS))
    sim = Sim.start(
        ctx, MONDAY, variables={"firstName": "Taylor", "n": 3}, metadata={"campaign": "x"}
    )
    sim.run_until(lambda s: s.state.phase is Phase.DELAY)
    sim.now += timedelta(minutes=30)
    sim.send(Paused())
    for state in (sim.state, *(r.before for r in sim.records)):
        raw = json.loads(json.dumps(state_to_json(state)))
        assert state_from_json(raw) == state
    sim.send(Resumed())
    sim.run()
    raw = json.loads(json.dumps(state_to_json(sim.state)))
    assert state_from_json(raw) == sim.state
    assert raw["status"] == "COMPLETED"
    assert raw["lastCall"] == CALL_RECORD


# ----------------------------------------------------------------------- properties

DISPOSITIONS = list(Disposition)


@st.composite
def linear_steps(draw: st.DrawFn) -> list[dict[str, Any]]:
    steps = []
    for i in range(draw(st.integers(1, 5))):
        channel = draw(st.sampled_from(list(Channel)))
        step: dict[str, Any] = {
            "id": f"step{i + 1}",
            "type": channel.value,
            "order": i + 1,
            "agentId": "call-1" if channel is Channel.CALL else "text-1",
            "delayInSecs": draw(
                st.one_of(st.sampled_from([0, 0, 60, 3600, 86400]), st.integers(0, 3 * 86400))
            ),
            "finishOn": draw(st.lists(st.sampled_from(DISPOSITIONS), max_size=4, unique=True)),
            "count": draw(st.integers(1, 3)),
            "needsTCPACompliance": draw(st.booleans()),
        }
        if draw(st.integers(0, 3)) == 0:
            step["conditions"] = [
                {
                    "field": "disposition",
                    "operator": draw(st.sampled_from(["equals", "not_equals"])),
                    "value": draw(st.sampled_from(DISPOSITIONS)).value,
                }
            ]
        steps.append(step)
    return steps


@st.composite
def windows(draw: st.DrawFn) -> Gate:
    workflow = Constraint(
        "workflowSchedule",
        "1",
        draw(st.sampled_from(ZONES)),
        draw(week_schedules(grid=60, max_ranges=2, never_closed=True)),
    )
    start = draw(st.integers(6, 10)) * 60
    end = draw(st.integers(18, 22)) * 60
    contact = Constraint(
        "tcpaSchedule",
        "2024-01",
        draw(st.sampled_from(ZONES)),
        WeekSchedule(days=((TimeRange(start, end),),) * 7),
        contact_window=True,
    )
    chosen = draw(st.sampled_from([(), (workflow,), (contact,), (workflow, contact)]))
    return Gate(chosen, margin=timedelta(minutes=draw(st.sampled_from([0, 5, 30]))))


def guard_holds(step: dict[str, Any], disposition: Disposition | None) -> bool:
    """The model's reading of a disposition condition (a missing value equals nothing)."""
    conditions = step.get("conditions")
    if not conditions:
        return True
    (c,) = conditions
    equal = disposition is not None and disposition.value == c["value"]
    return equal if c["operator"] == "equals" else not equal


def expected_run(
    steps: Sequence[dict[str, Any]], outcomes: Sequence[Disposition]
) -> tuple[list[str], Disposition | None]:
    """The seeds' linear rules, stated directly: which attempts run, and the final disposition."""
    nodes: list[str] = []
    disposition: Disposition | None = None
    for step in steps:
        if not guard_holds(step, disposition):
            continue
        for attempt in range(1, step["count"] + 1):
            disposition = outcomes[len(nodes) % len(outcomes)]
            nodes.append(step["id"] if attempt == 1 else f"{step['id']}#{attempt}")
            if disposition.value in step["finishOn"]:
                return nodes, disposition
    return nodes, disposition


@settings(max_examples=300, deadline=None)
@given(
    steps=linear_steps(),
    gate=windows(),
    start=instants(step_minutes=1),
    outcomes=st.lists(st.sampled_from(DISPOSITIONS), min_size=1, max_size=8),
    pause=st.none() | st.tuples(st.integers(0, 12), st.integers(0, 4 * 24 * 60)),
    replay=st.booleans(),
)
def test_decider_invariants(
    steps: list[dict[str, Any]],
    gate: Gate,
    start: datetime,
    outcomes: list[Disposition],
    pause: tuple[int, int] | None,
    replay: bool,
) -> None:
    graph = compile_linear(normalize_linear({"steps": steps}, AGENTS, iter(())))
    ctx = context(graph, gate)
    sim = Sim.start(ctx, start, lambda _d, n: outcomes[n % len(outcomes)])

    events = 0
    while not sim.state.is_finished and events < 300:
        if pause is not None and events == pause[0]:
            # (d) while paused, nothing is dispatched: reports land, timers are ignored.
            sim.send(Paused())
            assert sim.state.status is ExecutionStatus.PAUSED
            while sim.pending:
                sim.now += sim.report_after
                assert sim.send(sim.pending.pop(0)).dispatches == ()
            sim.now += timedelta(minutes=pause[1])
            assert sim.send(WakeUp()).dispatches == ()
            if not sim.state.is_finished:
                sim.send(Resumed())
            events += 4
            continue
        decision = sim.step()
        assert decision is not None, f"stuck: {sim.state}"
        events += 1
        last = sim.records[-1]
        if replay and isinstance(last.event, AgentReported):
            # (c) a replayed report changes nothing and dispatches nothing.
            again = decide(ctx, sim.state, last.event, sim.now)
            assert again.dispatches == ()
            assert again.state == sim.state
        # The state survives the codec at every step.
        assert state_from_json(json.loads(json.dumps(state_to_json(sim.state)))) == sim.state

    # (b) bounded: every execution finishes.
    assert sim.state.is_finished, f"not finished after {events} events"

    for record in sim.records:
        # (a) no Dispatch where the gate (and the wall-clock model) disallows it.
        for d in record.decision.dispatches:
            node = graph.node(d.node_id).config
            needs_tcpa = getattr(node, "needs_tcpa", True)
            assert gate.check(record.now, d.channel, needs_tcpa).allowed
            cs = applicable(gate, d.channel, needs_tcpa)
            assert brute_allowed(cs, gate.margin, record.now), (record.now, d)
        # (d) a paused or finished execution dispatches nothing (Resumed may).
        if record.before.is_finished or (
            record.before.status is ExecutionStatus.PAUSED and not isinstance(record.event, Resumed)
        ):
            assert record.decision.dispatches == ()
        # (e) every deferral carries a reason.
        for h in record.decision.history:
            if h.kind == "deferred":
                assert isinstance(h.data["reason"], str)
                assert h.data["reason"]
                assert h.data["rules"]

    # Promptness: without a pause, each step goes out at the first allowed instant after it is due.
    if pause is None:
        due = {
            s.id: s.scheduled_at
            for r in sim.records
            for s in r.decision.steps
            if isinstance(s, StepOpened)
        }
        for at, d in sim.dispatches:
            config = graph.node(d.node_id).config
            needs_tcpa = getattr(config, "needs_tcpa", True)
            scheduled = due[d.step_execution_id]
            assert gate.check(scheduled, d.channel, needs_tcpa).at == at
            if at > scheduled:
                cs = applicable(gate, d.channel, needs_tcpa)
                before = max(scheduled, at - timedelta(minutes=1))
                assert not brute_allowed(cs, gate.margin, before)

    # (c) idempotency keys are unique across the run.
    keys = [d.idempotency_key for _, d in sim.dispatches]
    assert len(keys) == len(set(keys))

    event(f"status={sim.state.status.value}")
    event(f"dispatches={min(len(sim.dispatches), 6)}")
    event(f"deferred={'deferred' in sim.kinds()}")
    if sim.state.status is ExecutionStatus.FAILED:
        # Only when the windows never meet within the gate's horizon.
        never = [h for h in sim.history if h.kind == "deferred" and h.data["until"] is None]
        assert never
        assert sim.state.reason == never[-1].data["reason"]
        return
    # (b) completed with the disposition the seeds' rules imply.
    assert sim.state.status is ExecutionStatus.COMPLETED
    nodes, disposition = expected_run(steps, outcomes)
    assert [d.node_id for _, d in sim.dispatches] == nodes
    assert sim.state.disposition == disposition
    reported = [r.event for r in sim.records if isinstance(r.event, AgentReported)]
    if reported:
        assert reported[-1].disposition == disposition
