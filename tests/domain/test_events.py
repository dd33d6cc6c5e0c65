"""Outbound events read off decisions, and the delivery policy: examples and properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from reachflow.domain.decider import History, StepUpdated
from reachflow.domain.enums import Disposition, StepStatus
from reachflow.domain.events import (
    EVENT_TYPES,
    STEP_COMPLETED,
    DeliveryPolicy,
    events_of,
    matches,
    transient_status,
)

T0 = datetime(2026, 3, 9, 14, 0, tzinfo=UTC)
KINDS = [
    "started",
    "scheduled",
    "deferred",
    "dispatched",
    "reported",
    "dispatch_failed",
    "report_timeout",
    "skipped",
    "suppressed",
    "replied",
    "no_reply",
    "paused",
    "resumed",
    "cancelled",
    "finished",
    "failed",
    "transition",
    "branched",
    "report_ignored",
    "metadata_merged",
    "retry_scheduled",
    "dispatch_held",
]
histories = st.lists(
    st.builds(
        History,
        kind=st.sampled_from(KINDS),
        at=st.integers(0, 10**6).map(lambda s: T0 + timedelta(seconds=s)),
        data=st.fixed_dictionaries(
            {},
            optional={
                "stepExecutionId": st.sampled_from(["s1", "s2"]),
                "node": st.text(max_size=5),
                "status": st.sampled_from(["COMPLETED", "FAILED", "CANCELLED"]),
                "reason": st.text(max_size=10),
                "secret": st.text(max_size=3),
            },
        ),
    ),
    max_size=30,
)


@given(histories)
def test_events_are_known_types_in_history_order(history: list[History]) -> None:
    events = events_of(history)
    assert all(e.type in EVENT_TYPES for e in events)
    assert len(events) <= len(history)
    # Each event is the image of one entry, in order: the instants follow the history's.
    positions = iter(range(len(history)))
    for event in events:
        assert any(history[i].at == event.at for i in positions)
    assert all("secret" not in e.data for e in events)  # only the documented fields


def test_a_step_completion_carries_the_step_update() -> None:
    history = [
        History("reported", T0, {"stepExecutionId": "s1", "disposition": "NO_ANSWER"}),
        History("transition", T0, {"source": "a", "target": "b"}),
        History("finished", T0, {"status": "COMPLETED", "outcome": "completed"}),
    ]
    update = StepUpdated(
        "s1",
        StepStatus.COMPLETED,
        T0,
        completed_at=T0,
        disposition=Disposition.NO_ANSWER,
        agent_call={"id": "c1"},
    )
    first, last = events_of(history, [update])
    assert first.type == STEP_COMPLETED
    assert first.data == {
        "stepExecutionId": "s1",
        "disposition": "NO_ANSWER",
        "stepStatus": "COMPLETED",
        "endedBy": "reported",
        "agentCall": {"id": "c1"},
    }
    assert last.type == "execution.completed"


def test_subscriptions_match_their_types_or_everything() -> None:
    assert matches(["*"], "contact.suppressed")
    assert matches(["execution.completed"], "execution.completed")
    assert not matches(["execution.completed"], "execution.failed")


policies = st.builds(
    DeliveryPolicy,
    first_backoff=st.integers(1, 60).map(lambda s: timedelta(seconds=s)),
    max_backoff=st.integers(60, 7200).map(lambda s: timedelta(seconds=s)),
    jitter=st.floats(0, 1),
    horizon=st.integers(60, 7 * 86400).map(lambda s: timedelta(seconds=s)),
)


@given(policies, st.integers(1, 200), st.floats(0, 1, exclude_max=True))
def test_backoff_grows_and_stays_bounded(policy: DeliveryPolicy, n: int, draw: float) -> None:
    wait = policy.backoff(n, draw)
    assert policy.first_backoff <= wait <= policy.max_backoff * (1 + policy.jitter)
    assert policy.backoff(n + 1, draw) >= wait or policy.first_backoff > policy.max_backoff


@given(policies, st.floats(0, 1, exclude_max=True))
def test_a_failing_delivery_is_given_up_within_its_horizon(
    policy: DeliveryPolicy, draw: float
) -> None:
    first = now = T0
    attempts = 1
    while (at := policy.next_attempt(first, attempts, now, draw)) is not None:
        assert at > now
        assert at - first <= policy.horizon
        now, attempts = at, attempts + 1
        assert attempts < 100_000
    assert now - first <= policy.horizon


@given(st.integers(0, 100), st.integers(0, 10**6))
def test_disabling_needs_both_the_count_and_the_age(failures: int, age: int) -> None:
    policy = DeliveryPolicy(disable_after_failures=20, disable_after=timedelta(hours=24))
    since = T0
    now = T0 + timedelta(seconds=age)
    assert policy.should_disable(failures, since, now) == (failures >= 20 and age >= 86400)
    assert not policy.should_disable(failures, None, now)


def test_what_is_retried() -> None:
    assert transient_status(None)
    assert transient_status(500)
    assert transient_status(429)
    assert transient_status(404)
    assert not transient_status(410)
    assert not transient_status(200)
