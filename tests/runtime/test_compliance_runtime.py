"""Compliance in the running engine, under the virtual clock, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from reachflow.bootstrap import Services
from reachflow.domain.errors import Suppressed
from reachflow.runtime.clock import VirtualClock
from tests.helpers import lead, make_agent

LA_PHONE = "+14155550123"  # San Francisco: America/Los_Angeles, CA
FL_PHONE = "+13055550123"  # Miami: America/New_York, FL (8-20, 3 per 24 h)


def steps(*items: dict[str, Any]) -> dict[str, Any]:
    return {"steps": [{"order": i + 1, **s} for i, s in enumerate(items)]}


def workflow(services: Services, org: str, definition: dict[str, Any], name: str = "w") -> str:
    body = {"name": name, "timezone": "America/New_York", "definition": definition}
    return services.workflows.create(org, body).id


def events(services: Services, org: str, wf: str, ex: str, kind: str) -> list[Any]:
    return [e for e in services.executions.events(org, wf, ex) if e.kind == kind]


def test_a_lead_created_at_22_30_local_is_first_called_at_the_next_legal_opening(
    services: Services, clock: VirtualClock
) -> None:
    org, _ = services.accounts.create_api_key("acme")
    call = make_agent(services, org, "CALL", defaultDisposition="CALENDLY")
    wf = workflow(services, org, steps({"type": "CALL", "agentId": call}))
    clock.advance_to(datetime(2026, 3, 10, 5, 30, tzinfo=UTC))  # Monday 22:30 in California
    ex = services.executions.create(org, wf, lead(LA_PHONE))
    services.engine.run_until_idle(clock, until=clock.now() + timedelta(hours=1))

    waiting = services.executions.get(org, wf, ex.record.id)
    opening = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)  # Tuesday 08:00 in California
    assert waiting.steps[0].status == "PENDING"
    assert waiting.steps[0].next_allowed_at == opening
    assert services.simulator.calls_placed.total() == 0
    [deferred] = events(services, org, wf, ex.record.id, "deferred")
    assert deferred.data["until"] == opening.isoformat()
    assert deferred.data["zones"] == ["America/Los_Angeles"]
    assert set(deferred.data["rules"]) == {"tcpaSchedule@default", "US-FED-64.1200c1-hours@1"}

    services.engine.run_until_idle(clock)
    done = services.executions.get(org, wf, ex.record.id)
    assert done.steps[0].started_at == opening
    assert done.record.status == "COMPLETED"


def test_florida_closes_at_20_00_local_not_21_00(services: Services, clock: VirtualClock) -> None:
    org, _ = services.accounts.create_api_key("acme")
    call = make_agent(services, org, "CALL", defaultDisposition="CALENDLY")
    wf = workflow(services, org, steps({"type": "CALL", "agentId": call}))
    clock.advance_to(datetime(2026, 3, 10, 0, 5, tzinfo=UTC))  # Monday 20:05 in Miami
    ex = services.executions.create(org, wf, lead(FL_PHONE, zipcode="33101"))
    services.engine.run_until_idle(clock)
    view = services.executions.get(org, wf, ex.record.id)
    assert view.steps[0].started_at == datetime(2026, 3, 10, 12, 0, tzinfo=UTC)  # 08:00 EDT
    [deferred] = events(services, org, wf, ex.record.id, "deferred")
    assert "US-FL-501.616-hours-cap@1" in deferred.data["rules"]


def test_the_florida_cap_counts_attempts_across_workflows(
    services: Services, clock: VirtualClock
) -> None:
    org, _ = services.accounts.create_api_key("acme")
    call = make_agent(services, org, "CALL", defaultDisposition="NO_ANSWER", ringDurationSecs=30)
    two_calls = steps({"type": "CALL", "agentId": call}, {"type": "CALL", "agentId": call})
    first, second = workflow(services, org, two_calls, "a"), workflow(services, org, two_calls, "b")
    t0 = clock.now()  # Monday 10:00 in Miami
    a = services.executions.create(org, first, lead(FL_PHONE, "a", zipcode="33101"))
    b = services.executions.create(org, second, lead(FL_PHONE, "b", zipcode="33101"))
    services.engine.run_until_idle(clock)

    started = sorted(
        s.started_at
        for ex, wf in ((a, first), (b, second))
        for s in services.executions.get(org, wf, ex.record.id).steps
        if s.started_at is not None
    )
    assert len(started) == 4
    assert started[:3] == [t0, t0, t0 + timedelta(seconds=30)]
    assert started[3] == t0 + timedelta(hours=24)  # the oldest attempt leaves the window
    for i, at in enumerate(started):
        assert sum(1 for other in started if at - timedelta(hours=24) < other <= at) <= 3, i
    held = [
        e
        for ex, wf in ((a, first), (b, second))
        for e in events(services, org, wf, ex.record.id, "deferred")
    ]
    assert any("US-FL-501.616-hours-cap@1" in e.data["rules"] for e in held)
    assert services.simulator.calls_placed.total() == 4
    assert max(services.simulator.calls_placed.values()) == 1


def test_dnc_suppresses_the_number_cancels_its_executions_and_refuses_new_ones(
    services: Services, clock: VirtualClock
) -> None:
    org, _ = services.accounts.create_api_key("acme")
    dnc = make_agent(services, org, "CALL", defaultDisposition="DNC")
    other = make_agent(services, org, "CALL", defaultDisposition="NO_ANSWER")
    first = workflow(services, org, steps({"type": "CALL", "agentId": dnc}), "dnc")
    later = workflow(
        services,
        org,
        steps({"type": "CALL", "agentId": other, "delayInSecs": 7200}),
        "later",
    )
    waiting = services.executions.create(org, later, lead(LA_PHONE, "w"))
    ex = services.executions.create(org, first, lead(LA_PHONE, "x"))
    services.engine.run_until_idle(clock)

    assert services.executions.get(org, first, ex.record.id).record.disposition == "DNC"
    cancelled = services.executions.get(org, later, waiting.record.id)
    assert cancelled.record.status == "CANCELLED"
    [why] = events(services, org, later, waiting.record.id, "cancelled")
    assert "DNC" in why.data["reason"]
    assert services.simulator.calls_placed.total() == 1
    check = services.contacts.check(org, LA_PHONE)
    assert check["channels"] == ["CALL", "TEXT"]
    assert check["entries"][0].source == "disposition"

    with pytest.raises(Suppressed) as refused:
        services.executions.create(org, later, lead(LA_PHONE, "again"))
    assert refused.value.field == "primaryPhone"
    rows = services.executions.create_bulk(
        org, later, [lead(LA_PHONE, "bulk"), lead("+12125550100", "fine")]
    )
    assert [r.success for r in rows] == [False, True]
    assert "suppression list" in str(rows[0].error)

    # Removal is audited, and the number may be reached again.
    entry = check["entries"][0]
    removed = services.contacts.unsuppress(org, entry.id, "customer asked to be called")
    assert removed.removed_reason == "customer asked to be called"
    assert services.contacts.check(org, LA_PHONE)["suppressed"] is False
    services.executions.create(org, later, lead(LA_PHONE, "again"))
    audit, _ = services.contacts.list_suppressions(
        org, phone=LA_PHONE, include_removed=True, limit=10, cursor=None
    )
    assert [r.active for r in audit] == [False]


def test_a_stop_reply_suppresses_texts_only_even_for_steps_without_tcpa(
    services: Services, clock: VirtualClock
) -> None:
    org, _ = services.accounts.create_api_key("acme")
    text = make_agent(
        services, org, "TEXT", defaultDisposition="ENDED", replies={LA_PHONE: ["Stop please"]}
    )
    call = make_agent(services, org, "CALL", defaultDisposition="NOT_INTERESTED")
    wf = workflow(
        services,
        org,
        steps(
            {"type": "TEXT", "agentId": text, "initialMessage": "Hello"},
            {
                "type": "TEXT",
                "agentId": text,
                "initialMessage": "Hello again",
                "delayInSecs": 3600,
                "needsTCPACompliance": False,
            },
            {"type": "CALL", "agentId": call, "delayInSecs": 3600},
        ),
    )
    ex = services.executions.create(org, wf, lead(LA_PHONE))
    services.engine.run_until_idle(clock)
    view = services.executions.get(org, wf, ex.record.id)
    assert [(s.type, s.status) for s in view.steps] == [
        ("TEXT", "COMPLETED"),
        ("TEXT", "SKIPPED"),
        ("CALL", "COMPLETED"),
    ]
    [skipped] = events(services, org, wf, ex.record.id, "suppressed")
    assert "opt-out reply" in skipped.data["reason"]
    check = services.contacts.check(org, LA_PHONE)
    assert check["channels"] == ["TEXT"]
    assert check["entries"][0].source == "inbound_text"
    assert services.simulator.calls_placed.total() == 2


def test_text_consent_is_recorded(services: Services, clock: VirtualClock) -> None:
    org, _ = services.accounts.create_api_key("acme")
    call = make_agent(services, org, "CALL", defaultDisposition="TEXT_CONSENT")
    wf = workflow(services, org, steps({"type": "CALL", "agentId": call}))
    services.executions.create(org, wf, lead(LA_PHONE))
    assert services.contacts.check(org, LA_PHONE)["consent"] == []
    services.engine.run_until_idle(clock)
    assert services.contacts.check(org, LA_PHONE)["consent"] == ["TEXT"]


def test_a_contact_with_no_location_evidence_is_refused_with_the_reason(
    services: Services, clock: VirtualClock
) -> None:
    org, _ = services.accounts.create_api_key("acme")
    call = make_agent(services, org, "CALL", defaultDisposition="CALENDLY")
    wf = workflow(services, org, steps({"type": "CALL", "agentId": call}))
    ex = services.executions.create(org, wf, lead("+18005550123"))  # toll-free: no location
    services.engine.run_until_idle(clock)
    view = services.executions.get(org, wf, ex.record.id)
    assert view.record.status == "FAILED"
    assert services.simulator.calls_placed.total() == 0
    [failed] = events(services, org, wf, ex.record.id, "failed")
    assert "no evidence" in failed.data["reason"]


def test_a_drafts_schedule_edited_in_place_is_not_read_from_a_stale_window(
    services: Services, clock: VirtualClock
) -> None:
    org, _ = services.accounts.create_api_key("acme")
    call = make_agent(services, org, "CALL", defaultDisposition="CALENDLY")
    definition = {
        "nodes": [
            {"id": "call", "node_type": "VOICE_CALL", "config": {"agent_id": call}},
            {"id": "won", "node_type": "CONVERTED"},
        ],
        "edges": [{"id": "e", "from_node_id": "call", "to_node_id": "won"}],
    }
    wf = services.graph_workflows.create(org, {"title": "t", "definition": definition}).id
    services.leads.enroll(org, wf, [{"phone_number": "+12125550123"}])
    [first], _ = services.leads.list(org, wf, page=1, limit=5, status=None, current_node_id=None)
    services.leads.remove(org, wf, first.id)  # computes this contact's window on version 1
    noon = {"startHour": 12, "startMinute": 0, "endHour": 13, "endMinute": 0}
    weekdays = {d: {"enabled": True, "timeRanges": [noon]} for d in ("monday", "tuesday")}
    assert services.graph_workflows.update(org, wf, {"tcpa_schedule": weekdays}).version == 1
    services.leads.enroll(org, wf, [{"phone_number": "+12125550123"}])
    services.graph_workflows.activate(org, wf)
    services.engine.run_until_idle(clock)
    [lead], _ = services.leads.list(
        org, wf, page=1, limit=5, status="completed", current_node_id=None
    )
    steps = services.executions.get(org, wf, lead.id).steps
    assert steps[0].started_at == datetime(2026, 3, 9, 16, 0, tzinfo=UTC)  # 12:00 in New York
