"""The embedded runtime under a virtual clock, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reachflow.bootstrap import Services
from reachflow.domain.errors import IllegalTransition
from reachflow.runtime.clock import VirtualClock
from tests.helpers import WEEKDAYS_9_TO_17, lead, make_agent, seed_002_workflow


def _kinds(services: Services, org: str, wf: str, ex: str) -> list[str]:
    return [e.kind for e in services.executions.events(org, wf, ex)]


def test_seed_002_two_step_runs_across_its_one_day_delay(
    services: Services, clock: VirtualClock
) -> None:
    org, _ = services.accounts.create_api_key("acme")
    call = make_agent(services, org, "CALL", defaultDisposition="NO_ANSWER", ringDurationSecs=30)
    text = make_agent(services, org, "TEXT", defaultDisposition="TEXT_CONSENT", textDurationSecs=5)
    wf = services.workflows.create(org, seed_002_workflow(call, text))
    start = clock.now()
    ex = services.executions.create(org, wf.id, lead(variables={"firstName": "Taylor"}))

    services.engine.run_until_idle(clock)

    view = services.executions.get(org, wf.id, ex.record.id)
    assert view.record.status == "COMPLETED"
    assert view.record.disposition == "TEXT_CONSENT"
    call_step, text_step = view.steps
    # The call goes out at once (Monday 10:00 New York is open), leaves a voicemail.
    assert call_step.started_at == start
    assert call_step.disposition == "LEFT_VOICEMAIL"
    assert call_step.agent_call is not None
    assert call_step.agent_call["callDuration"] == 50
    # The text waits 86,400 s after the call's outcome: Tuesday 10:00:50 New York, inside hours.
    assert text_step.started_at == start + timedelta(seconds=50) + timedelta(days=1)
    assert text_step.status == "COMPLETED"
    assert view.record.completed_at == text_step.started_at + timedelta(seconds=5)
    assert _kinds(services, org, wf.id, ex.record.id) == [
        "started",
        "scheduled",
        "dispatched",
        "reported",
        "transition",
        "scheduled",
        "dispatched",
        "reported",
        "transition",
        "finished",
    ]


def test_finish_on_ends_the_execution_with_that_disposition(
    services: Services, clock: VirtualClock
) -> None:
    org, _ = services.accounts.create_api_key("acme")
    call = make_agent(services, org, "CALL", defaultDisposition="CALENDLY")
    text = make_agent(services, org, "TEXT")
    wf = services.workflows.create(org, seed_002_workflow(call, text))
    ex = services.executions.create(org, wf.id, lead())
    services.engine.run_until_idle(clock)
    view = services.executions.get(org, wf.id, ex.record.id)
    assert (view.record.status, view.record.disposition) == ("COMPLETED", "CALENDLY")
    assert [s.type for s in view.steps] == ["CALL"]


def test_step_outside_the_workflow_schedule_waits_for_the_next_opening(
    services: Services, clock: VirtualClock
) -> None:
    org, _ = services.accounts.create_api_key("acme")
    call = make_agent(services, org, "CALL", defaultDisposition="CALENDLY")
    body = seed_002_workflow(call, make_agent(services, org, "TEXT"))
    body["workflowSchedule"] = WEEKDAYS_9_TO_17
    wf = services.workflows.create(org, body)
    clock.advance_to(datetime(2026, 3, 13, 22, 30, tzinfo=UTC))  # Friday 18:30 New York
    ex = services.executions.create(org, wf.id, lead())
    services.engine.run_until_idle(clock)
    view = services.executions.get(org, wf.id, ex.record.id)
    # Next opening: Monday 16 March 09:00 EDT = 13:00 UTC.
    assert view.steps[0].started_at == datetime(2026, 3, 16, 13, 0, tzinfo=UTC)
    deferred = [
        e for e in services.executions.events(org, wf.id, ex.record.id) if e.kind == "deferred"
    ]
    assert len(deferred) == 1
    assert deferred[0].data["until"] == "2026-03-16T13:00:00+00:00"
    assert "workflowSchedule" in deferred[0].data["reason"]


def test_pause_keeps_the_remaining_delay_and_resume_continues_with_it(
    services: Services, clock: VirtualClock
) -> None:
    org, _ = services.accounts.create_api_key("acme")
    call = make_agent(services, org, "CALL", defaultDisposition="NO_ANSWER", ringDurationSecs=0)
    text = make_agent(services, org, "TEXT", defaultDisposition="ENDED")
    body = seed_002_workflow(call, text)
    body.pop("workflowSchedule")
    body["definition"]["steps"][0]["leaveVoicemail"] = False
    wf = services.workflows.create(org, body)
    ex = services.executions.create(org, wf.id, lead())
    t0 = clock.now()
    services.engine.run_until_idle(clock, until=t0 + timedelta(hours=6))
    services.executions.update(org, wf.id, ex.record.id, {"status": "PAUSED"})
    services.engine.run_until_idle(clock, until=t0 + timedelta(days=3))
    paused = services.executions.get(org, wf.id, ex.record.id)
    assert paused.record.status == "PAUSED"
    assert len(paused.steps) == 2
    assert paused.steps[1].status == "PENDING"
    services.executions.update(org, wf.id, ex.record.id, {"status": "RUNNING"})
    resumed_at = clock.now()
    services.engine.run_until_idle(clock)
    view = services.executions.get(org, wf.id, ex.record.id)
    # 18 hours of the 24-hour delay were left at the pause: the delay ends at 04:00 New York
    # time, outside the contact's calling window, so the text waits for 08:00 local.
    delay_end = resumed_at + timedelta(hours=18)
    deferred = [
        e for e in services.executions.events(org, wf.id, ex.record.id) if e.kind == "deferred"
    ]
    assert [e.at for e in deferred] == [delay_end]
    assert set(deferred[0].data["rules"]) == {"tcpaSchedule@default", "US-FED-64.1200c1-hours@1"}
    assert deferred[0].data["zones"] == ["America/New_York"]
    assert view.steps[1].started_at == datetime(2026, 3, 13, 12, 0, tzinfo=UTC)
    assert view.record.status == "COMPLETED"


def test_cancel_then_resume_is_an_illegal_transition(
    services: Services, clock: VirtualClock
) -> None:
    org, _ = services.accounts.create_api_key("acme")
    call = make_agent(services, org, "CALL")
    wf = services.workflows.create(org, seed_002_workflow(call, make_agent(services, org, "TEXT")))
    ex = services.executions.create(org, wf.id, lead())
    services.executions.cancel(org, wf.id, ex.record.id)
    with pytest.raises(IllegalTransition):
        services.executions.update(org, wf.id, ex.record.id, {"status": "RUNNING"})
    services.engine.run_until_idle(clock)
    view = services.executions.get(org, wf.id, ex.record.id)
    assert view.record.status == "CANCELLED"
    assert services.simulator.calls_placed.total() == 0


def test_running_executions_keep_their_definition_version(
    services: Services, clock: VirtualClock
) -> None:
    org, _ = services.accounts.create_api_key("acme")
    call = make_agent(services, org, "CALL", defaultDisposition="NO_ANSWER")
    text = make_agent(services, org, "TEXT", defaultDisposition="ENDED")
    wf = services.workflows.create(org, seed_002_workflow(call, text))
    ex = services.executions.create(org, wf.id, lead())
    services.engine.run_until_idle(clock, until=clock.now() + timedelta(hours=1))
    one_step = {"steps": [{"type": "CALL", "order": 1, "agentId": call}]}
    updated = services.workflows.update(org, wf.id, {"definition": one_step})
    assert updated.version == 2
    services.engine.run_until_idle(clock)
    view = services.executions.get(org, wf.id, ex.record.id)
    assert len(view.definition["steps"]) == 2
    assert [s.type for s in view.steps] == ["CALL", "TEXT"]


def test_simulator_script_per_phone_number(services: Services, clock: VirtualClock) -> None:
    org, _ = services.accounts.create_api_key("acme")
    call = make_agent(
        services,
        org,
        "CALL",
        script={"+12125550123": ["NO_ANSWER", "WARM_TRANSFER"]},
        defaultDisposition="DNC",
    )
    body = {
        "name": "retry",
        "timezone": "America/New_York",
        "definition": {
            "steps": [
                {
                    "type": "CALL",
                    "order": 1,
                    "agentId": call,
                    "count": 3,
                    "delayInSecs": 3600,
                    "finishOn": ["WARM_TRANSFER"],
                },
            ]
        },
    }
    wf = services.workflows.create(org, body)
    scripted = services.executions.create(org, wf.id, lead())
    other = services.executions.create(org, wf.id, lead("+12125550199", "other"))
    services.engine.run_until_idle(clock)
    a = services.executions.get(org, wf.id, scripted.record.id)
    b = services.executions.get(org, wf.id, other.record.id)
    assert [s.disposition for s in a.steps] == ["NO_ANSWER", "WARM_TRANSFER"]
    assert a.record.disposition == "WARM_TRANSFER"
    # DNC puts the number on the suppression list and cancels its execution at once.
    assert [(s.disposition, s.status) for s in b.steps] == [
        ("DNC", "COMPLETED"),
        (None, "CANCELLED"),
    ]
    assert b.record.status == "CANCELLED"
    cancelled = [
        e for e in services.executions.events(org, wf.id, b.record.id) if e.kind == "cancelled"
    ]
    assert "DNC" in cancelled[0].data["reason"]


def test_skipped_step_when_conditions_do_not_hold(services: Services, clock: VirtualClock) -> None:
    org, _ = services.accounts.create_api_key("acme")
    call = make_agent(services, org, "CALL", defaultDisposition="NO_ANSWER")
    text = make_agent(services, org, "TEXT", defaultDisposition="ENDED")
    body = seed_002_workflow(call, text)
    body["definition"]["steps"][1]["conditions"] = [
        {"field": "variables.tier", "operator": "equals", "value": "gold"}
    ]
    wf = services.workflows.create(org, body)
    ex = services.executions.create(org, wf.id, lead(variables={"tier": "silver"}))
    services.engine.run_until_idle(clock)
    view = services.executions.get(org, wf.id, ex.record.id)
    assert [s.status for s in view.steps] == ["COMPLETED", "SKIPPED"]
    assert view.record.status == "COMPLETED"
    assert view.record.disposition == "LEFT_VOICEMAIL"
