"""The public status fold (domain/public_sessions.py): the seed's enum, the legal moves, the one
mapping table to Feather statuses, and properties over any history."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from reachflow.domain import public_sessions as ps
from reachflow.domain.enums import ExecutionStatus
from reachflow.domain.public_sessions import (
    FEATHER_STATUS,
    TRANSITIONS,
    Fact,
    PublicStatus,
    present,
    public_status_of_run,
    status_changes,
)

T0 = datetime(2026, 3, 9, 14, 0, tzinfo=UTC)
SEED_ENUM = [
    "awaiting_payment",
    "payment_confirmed",
    "workflow_queued",
    "workflow_running",
    "workflow_waiting",
    "workflow_succeeded",
    "workflow_failed",
    "workflow_cancelled",
]
RUN_KINDS = [
    "started",
    "scheduled",
    "dispatched",
    "reported",
    "report_timeout",
    "dispatch_failed",
    "dispatch_waiting",
    "dispatch_held",
    "deferred",
    "waiting",
    "timer_fired",
    "transition",
    "branched",
    "skipped",
    "suppressed",
    "paused",
    "resumed",
    "application_started",
    "application_finished",
    "metadata_merged",
    "finished",
    "failed",
    "cancelled",
    "something_new",
]
SESSION_KINDS = [
    ps.SESSION_CREATED,
    ps.PAYMENT_CONFIRMED,
    ps.PAYMENT_FAILED,
    ps.PAYMENT_CANCELED,
    ps.PAYMENT_EXPIRED,
    ps.RUN_STARTED,
    ps.RUN_REFUSED,
    ps.RUN_DELETED,
]


def test_the_enum_is_the_seeds() -> None:
    assert [s.value for s in PublicStatus] == SEED_ENUM


def test_the_mapping_table_covers_every_status_and_agrees_with_the_runs() -> None:
    assert set(FEATHER_STATUS) == set(PublicStatus)
    assert set(TRANSITIONS) == set(PublicStatus)
    for feather in ExecutionStatus:
        public = public_status_of_run(feather)
        mapped = FEATHER_STATUS[public]
        assert mapped is not None
        assert feather in mapped, (feather, public)
    for status in (PublicStatus.AWAITING_PAYMENT, PublicStatus.PAYMENT_CONFIRMED):
        assert FEATHER_STATUS[status] is None  # no run yet
    for status in ps.TERMINAL:
        assert TRANSITIONS[status] == frozenset()


def _facts(kinds: list[tuple[str, int]], priced: bool) -> list[Fact]:
    created = {"status": "awaiting_payment" if priced else "workflow_queued"}
    if priced:
        created |= {"amount": 1500, "currency": "usd"}
    facts = [Fact("se_1", ps.SESSION_CREATED, T0, created)]
    for i, (kind, minutes) in enumerate(kinds):
        at = T0 + timedelta(minutes=i)
        data = {"at": (at + timedelta(minutes=minutes)).isoformat(), "until": at.isoformat()}
        facts.append(Fact(f"ev_{i}", kind, at, data))
    return facts


histories = st.lists(
    st.tuples(st.sampled_from(RUN_KINDS + SESSION_KINDS), st.integers(0, 5)), max_size=40
)


@settings(deadline=None)
@given(histories, st.booleans())
def test_every_change_is_a_legal_move(kinds: list[tuple[str, int]], priced: bool) -> None:
    changes = status_changes(_facts(kinds, priced))
    assert changes[0].status is (
        PublicStatus.AWAITING_PAYMENT if priced else PublicStatus.WORKFLOW_QUEUED
    )
    for before, after in itertools.pairwise(changes):
        assert after.status in TRANSITIONS[before.status], (before, after)
        assert after.status != before.status
        assert after.at >= before.at
    assert [c.sequence for c in changes] == list(range(1, len(changes) + 1))


@settings(deadline=None)
@given(histories, st.booleans())
def test_the_fold_is_deterministic_and_a_prefix_folds_to_a_prefix(
    kinds: list[tuple[str, int]], priced: bool
) -> None:
    facts = _facts(kinds, priced)
    whole = status_changes(facts)
    assert status_changes(facts) == whole
    for cut in range(len(facts) + 1):
        part = status_changes(facts[:cut])
        assert whole[: len(part)] == part


@settings(deadline=None)
@given(histories, st.booleans())
def test_nothing_moves_after_an_end(kinds: list[tuple[str, int]], priced: bool) -> None:
    changes = status_changes(_facts(kinds, priced))
    ends = [i for i, c in enumerate(changes) if c.status.is_terminal]
    assert not ends or ends[0] == len(changes) - 1


def test_a_free_run_moves_through_running_waiting_and_success() -> None:
    facts = _facts(
        [
            ("started", 0),
            ("scheduled", 0),
            ("dispatched", 0),
            ("reported", 0),
            ("scheduled", 60),
            ("timer_fired", 0),
            ("dispatched", 0),
            ("finished", 0),
        ],
        priced=False,
    )
    assert [c.status.value for c in status_changes(facts)] == [
        "workflow_queued",
        "workflow_running",
        "workflow_waiting",
        "workflow_running",
        "workflow_succeeded",
    ]


def test_a_pause_waits_and_a_resume_returns_to_where_it_was() -> None:
    running = _facts([("started", 0), ("dispatched", 0), ("paused", 0), ("resumed", 0)], False)
    assert [c.status.value for c in status_changes(running)][-2:] == [
        "workflow_waiting",
        "workflow_running",
    ]
    waiting = _facts([("started", 0), ("scheduled", 60), ("paused", 0), ("resumed", 0)], False)
    assert status_changes(waiting)[-1].status is PublicStatus.WORKFLOW_WAITING


def test_payment_moves_and_expiry() -> None:
    facts = _facts([], priced=True)
    assert "1500 USD" in status_changes(facts)[0].reason
    late = ps.expired(
        facts, unpaid=True, due_at=T0 + timedelta(hours=1), now=T0 + timedelta(hours=2), minutes=60
    )
    last = status_changes(late)[-1]
    assert (last.status, last.at) == (PublicStatus.WORKFLOW_CANCELLED, T0 + timedelta(hours=1))
    assert ps.expired(facts, unpaid=True, due_at=T0 + timedelta(hours=1), now=T0, minutes=60) == (
        facts
    )
    paid = [
        *facts,
        Fact("se_2", ps.PAYMENT_CONFIRMED, T0),
        Fact("se_3", ps.RUN_STARTED, T0, {"runId": "r"}),
    ]
    assert [c.status.value for c in status_changes(paid)] == [
        "awaiting_payment",
        "payment_confirmed",
        "workflow_queued",
    ]


def test_a_run_that_ended_without_its_events_still_ends_the_session() -> None:
    facts = _facts([("started", 0)], priced=False)
    ended = ps.reconciled(facts, ExecutionStatus.COMPLETED, run_gone=False, at=T0)
    assert status_changes(ended)[-1].status is PublicStatus.WORKFLOW_SUCCEEDED
    gone = ps.reconciled(facts, None, run_gone=True, at=T0)
    assert status_changes(gone)[-1].status is PublicStatus.WORKFLOW_CANCELLED
    done = _facts([("started", 0), ("finished", 0)], priced=False)
    assert ps.reconciled(done, ExecutionStatus.COMPLETED, run_gone=False, at=T0) == done


@settings(deadline=None)
@given(
    st.sampled_from(RUN_KINDS + SESSION_KINDS),
    st.dictionaries(
        st.sampled_from(["reason", "node", "disposition", "until", "status", "phone"]),
        st.text(max_size=30) | st.just("+12125550123 is on the suppression list"),
    ),
)
def test_a_client_never_sees_a_phone_number(kind: str, data: dict[str, str]) -> None:
    event = present(Fact("ev_1", kind, T0, data))
    if event is not None:
        assert "+12125550123" not in event.message
        assert event.level in ("info", "warning", "error")
    for change in status_changes([Fact("se_1", ps.SESSION_CREATED, T0), Fact("x", kind, T0, data)]):
        assert "+12125550123" not in change.reason
