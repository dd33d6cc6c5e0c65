"""Seed 003's graph workflows, run by the engine under the virtual clock (SQLite and PostgreSQL).

Each use case scripts the simulator per phone number and checks the exact path a lead takes
(the node ids of its history, in order), the instant of every dispatch and how the lead ends.
The clock starts on Monday 9 March 2026 at 10:00 in New York (14:00 UTC); every phone is a
New York number, so calls go out between 08:00 and 21:00 local.
Unanswered calls ring for 30 s, answered ones last 60 s (the simulator's defaults): a call's
outcome, and so the next node, comes that long after its dispatch.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from reachflow.bootstrap import Services, bootstrap
from reachflow.runtime.clock import VirtualClock
from reachflow.settings import Settings
from tests.helpers import make_agent

PHONE_A = "+12125550123"
PHONE_B = "+12125550124"
RING = timedelta(seconds=30)
TALK = timedelta(seconds=60)
DAY = timedelta(days=1)

Edge = tuple[str, str, str | None]


def graph(nodes: list[dict[str, Any]], edges: list[Edge]) -> dict[str, Any]:
    """A graph definition; edges are ``(from, to, label)`` in priority order."""
    return {
        "nodes": nodes,
        "edges": [
            {"id": f"e{i}", "from_node_id": a, "to_node_id": b, "label": label}
            for i, (a, b, label) in enumerate(edges, start=1)
        ],
    }


def voice_call(node_id: str, agent_id: str) -> dict[str, Any]:
    return {"id": node_id, "node_type": "VOICE_CALL", "config": {"agent_id": agent_id}}


def node(node_id: str, node_type: str, **config: Any) -> dict[str, Any]:
    return {"id": node_id, "node_type": node_type, "config": config}


def start(
    services: Services, org: str, definition: dict[str, Any], *phones: str, active: bool = True
) -> tuple[str, dict[str, str]]:
    """Create the workflow (active or draft), enrol one lead per phone: (workflow, phone->lead)."""
    body: dict[str, Any] = {"title": "seed 003", "definition": definition}
    if active:
        body["status"] = "active"
    wf = services.graph_workflows.create(org, body).id
    services.leads.enroll(org, wf, [{"phone_number": p} for p in phones])
    return wf, lead_ids(services, org, wf)


def lead_ids(services: Services, org: str, wf: str) -> dict[str, str]:
    rows, _ = services.leads.list(org, wf, page=1, limit=100, status=None, current_node_id=None)
    return {r.primary_phone: r.id for r in rows}


def path(services: Services, org: str, wf: str, lead_id: str) -> list[str]:
    return [v["node_id"] for v in services.leads.history(org, wf, lead_id)["history"]]


def dispatches(
    services: Services, org: str, wf: str, lead_id: str
) -> list[tuple[str, str | None, datetime | None]]:
    """``(node id, agent id, dispatched at)`` of every step the lead's execution opened."""
    view = services.executions.get(org, wf, lead_id)
    return [(s.node_id, s.agent_id, s.started_at) for s in view.steps]


def ending(services: Services, org: str, wf: str, lead_id: str) -> tuple[Any, ...]:
    """``(status, outcome, disposition, completed at)`` of a lead."""
    record = services.leads.get(org, wf, lead_id)
    return record.status, record.engine.outcome, record.disposition, record.completed_at


# -- a. call, wait 2 days, call again if no answer, unresponsive after 3 attempts ---------------


def nurture(agent: str) -> dict[str, Any]:
    three_attempts = {
        "logic": "AND",
        "conditions": [{"field": "attempts.call", "operator": "greater_than", "value": 2}],
    }
    return graph(
        [
            voice_call("call", agent),
            node("check", "CONDITIONAL", conditions=three_attempts),
            node("wait", "TIME", delay_days=2),
            node("won", "CONVERTED"),
            node("unresponsive", "DROPPED"),
        ],
        [
            ("call", "won", "COMPLETED"),
            ("call", "check", None),
            ("check", "unresponsive", "true"),
            ("check", "wait", "false"),
            ("wait", "call", None),
        ],
    )


NURTURE_DROPPED_PATH = ["call", "check", "wait"] * 2 + ["call", "check", "unresponsive"]


def test_nurture_calls_three_times_two_days_apart_then_marks_unresponsive(
    services: Services, clock: VirtualClock
) -> None:
    org, _ = services.accounts.create_api_key("acme")
    agent = make_agent(
        services, org, "CALL", script={PHONE_A: ["NO_ANSWER"], PHONE_B: ["NO_ANSWER", "CALENDLY"]}
    )
    t0 = clock.now()
    wf, leads = start(services, org, nurture(agent), PHONE_A, PHONE_B)
    services.engine.run_until_idle(clock)

    silent, answers = leads[PHONE_A], leads[PHONE_B]
    # Each wait starts when the call's outcome is known: 30 s of ringing after the dispatch.
    second = t0 + RING + 2 * DAY  # Wednesday 10:00:30
    third = second + RING + 2 * DAY  # Friday 10:01:00
    assert second == t0 + 2 * DAY + timedelta(seconds=30)
    assert third == t0 + 4 * DAY + timedelta(seconds=60)
    assert path(services, org, wf, silent) == NURTURE_DROPPED_PATH
    assert dispatches(services, org, wf, silent) == [
        ("call", agent, t0),
        ("call", agent, second),
        ("call", agent, third),
    ]
    assert ending(services, org, wf, silent) == ("COMPLETED", "dropped", "NO_ANSWER", third + RING)
    assert services.leads.get(org, wf, silent).engine.visits == {
        "call": 3,
        "check": 3,
        "wait": 2,
        "unresponsive": 1,
    }
    history = services.leads.history(org, wf, silent)["history"]
    assert [v["status"] for v in history[:3]] == ["no_answer", "false", "next"]
    assert history[-2]["status"] == "true"
    assert [v["call_id"] is not None for v in history] == [v["node_id"] == "call" for v in history]

    # The other lead answers the second call: booked, converted, never called a third time.
    assert path(services, org, wf, answers) == ["call", "check", "wait", "call", "won"]
    assert dispatches(services, org, wf, answers) == [
        ("call", agent, t0),
        ("call", agent, second),
    ]
    assert ending(services, org, wf, answers) == (
        "COMPLETED",
        "converted",
        "CALENDLY",
        second + TALK,
    )
    assert services.simulator.calls_placed.total() == 5
    assert set(services.simulator.calls_placed.values()) == {1}


# -- b. try twice, then route to a different agent script ----------------------------------


def two_tries_then_other_script(first: str, other: str) -> dict[str, Any]:
    """Call with script A; on no answer wait a day and try once more; then script B."""
    tried_twice = {
        "conditions": [{"field": "attempts.try", "operator": "greater_than", "value": 1}]
    }
    return graph(
        [
            voice_call("try", first),
            node("tried", "CONDITIONAL", conditions=tried_twice),
            node("pause", "TIME", duration=1, unit="days"),
            voice_call("other", other),
            node("won", "CONVERTED"),
            node("lost", "DROPPED"),
        ],
        [
            ("try", "won", "COMPLETED"),
            ("try", "tried", "DNP"),
            ("try", "lost", None),
            ("tried", "other", "true"),
            ("tried", "pause", "false"),
            ("pause", "try", None),
            ("other", "won", "COMPLETED"),
            ("other", "lost", None),
        ],
    )


def test_after_two_unanswered_calls_a_different_agent_script_takes_over(
    services: Services, clock: VirtualClock
) -> None:
    org, _ = services.accounts.create_api_key("acme")
    script_a = make_agent(
        services, org, "CALL", script={PHONE_A: ["NO_ANSWER", "LINE_BUSY"], PHONE_B: ["NO_ANSWER"]}
    )
    script_b = make_agent(
        services, org, "CALL", script={PHONE_A: ["WARM_TRANSFER"], PHONE_B: ["VOICEMAIL_DETECTED"]}
    )
    t0 = clock.now()
    wf, leads = start(
        services, org, two_tries_then_other_script(script_a, script_b), PHONE_A, PHONE_B
    )
    services.engine.run_until_idle(clock)

    retry = t0 + RING + DAY  # Tuesday 10:00:30
    handover = retry + RING  # at once, on the second no-answer (LINE_BUSY is a DNP too)
    expected_path = ["try", "tried", "pause", "try", "tried", "other"]
    for phone in (PHONE_A, PHONE_B):
        lead_id = leads[phone]
        assert dispatches(services, org, wf, lead_id) == [
            ("try", script_a, t0),
            ("try", script_a, retry),
            ("other", script_b, handover),
        ], phone
    assert path(services, org, wf, leads[PHONE_A]) == [*expected_path, "won"]
    assert ending(services, org, wf, leads[PHONE_A]) == (
        "COMPLETED",
        "converted",
        "WARM_TRANSFER",
        handover + TALK,
    )
    assert path(services, org, wf, leads[PHONE_B]) == [*expected_path, "lost"]
    assert ending(services, org, wf, leads[PHONE_B]) == (
        "COMPLETED",
        "dropped",
        "VOICEMAIL_DETECTED",
        handover + RING,
    )


# -- c. interested -> booking agent; not interested -> closed --------------------------------


def qualify_then_book(qualifier: str, booker: str) -> dict[str, Any]:
    return graph(
        [
            voice_call("qualify", qualifier),
            node(
                "triage",
                "CONDITIONAL",
                condition_field="disposition",
                branches=["WARM_TRANSFER", "CALENDLY", "NOT_INTERESTED"],
            ),
            voice_call("book", booker),
            node("booked", "CONVERTED"),
            node("closed", "DROPPED"),
        ],
        [
            ("qualify", "triage", "COMPLETED"),
            ("qualify", "closed", None),
            ("triage", "book", "WARM_TRANSFER"),
            ("triage", "book", "CALENDLY"),
            ("triage", "closed", "NOT_INTERESTED"),
            ("triage", "closed", "default"),
            ("book", "booked", "CALENDLY"),
            ("book", "closed", None),
        ],
    )


def test_interested_leads_go_to_the_booking_agent_and_the_rest_are_closed(
    services: Services, clock: VirtualClock
) -> None:
    org, _ = services.accounts.create_api_key("acme")
    qualifier = make_agent(
        services, org, "CALL", script={PHONE_A: ["WARM_TRANSFER"], PHONE_B: ["NOT_INTERESTED"]}
    )
    booker = make_agent(services, org, "CALL", defaultDisposition="CALENDLY")
    t0 = clock.now()
    wf, leads = start(services, org, qualify_then_book(qualifier, booker), PHONE_A, PHONE_B)
    services.engine.run_until_idle(clock)

    interested, not_interested = leads[PHONE_A], leads[PHONE_B]
    assert path(services, org, wf, interested) == ["qualify", "triage", "book", "booked"]
    assert dispatches(services, org, wf, interested) == [
        ("qualify", qualifier, t0),
        ("book", booker, t0 + TALK),
    ]
    assert ending(services, org, wf, interested) == (
        "COMPLETED",
        "converted",
        "CALENDLY",
        t0 + 2 * TALK,
    )
    history = services.leads.history(org, wf, interested)["history"]
    assert history[1]["status"] == "warm_transfer"

    assert path(services, org, wf, not_interested) == ["qualify", "triage", "closed"]
    assert dispatches(services, org, wf, not_interested) == [("qualify", qualifier, t0)]
    assert ending(services, org, wf, not_interested) == (
        "COMPLETED",
        "dropped",
        "NOT_INTERESTED",
        t0 + TALK,
    )
    assert services.simulator.calls_placed.total() == 3


# -- lifecycle ------------------------------------------------------------------------------


def test_leads_enrolled_in_a_draft_start_at_activation(
    services: Services, clock: VirtualClock
) -> None:
    org, _ = services.accounts.create_api_key("acme")
    qualifier = make_agent(services, org, "CALL", defaultDisposition="NOT_INTERESTED")
    booker = make_agent(services, org, "CALL")
    t0 = clock.now()
    wf, leads = start(services, org, qualify_then_book(qualifier, booker), PHONE_A, active=False)
    lead_id = leads[PHONE_A]

    services.engine.run_until_idle(clock, until=t0 + timedelta(hours=3))
    assert services.simulator.calls_placed.total() == 0
    waiting = services.leads.get(org, wf, lead_id)
    assert (waiting.status, waiting.started_at, waiting.engine.wake_at) == ("CREATED", None, None)
    assert path(services, org, wf, lead_id) == []

    activated_at = clock.now()
    assert activated_at == t0 + timedelta(hours=3)
    services.graph_workflows.activate(org, wf)
    services.engine.run_until_idle(clock)
    assert dispatches(services, org, wf, lead_id) == [("qualify", qualifier, activated_at)]
    assert path(services, org, wf, lead_id) == ["qualify", "triage", "closed"]
    history = services.leads.history(org, wf, lead_id)["history"]
    assert history[0]["entered_at"] == activated_at
    assert ending(services, org, wf, lead_id) == (
        "COMPLETED",
        "dropped",
        "NOT_INTERESTED",
        activated_at + TALK,
    )


def call_wait_call(first: str, second: str, days: int = 2) -> dict[str, Any]:
    return graph(
        [
            voice_call("first", first),
            node("wait", "TIME", delay_days=days),
            voice_call("second", second),
            node("won", "CONVERTED"),
            node("lost", "DROPPED"),
        ],
        [
            ("first", "wait", None),
            ("wait", "second", None),
            ("second", "won", "COMPLETED"),
            ("second", "lost", None),
        ],
    )


def test_workflow_pause_keeps_the_rest_of_a_wait_and_resume_continues_it(
    services: Services, clock: VirtualClock
) -> None:
    org, _ = services.accounts.create_api_key("acme")
    agent = make_agent(services, org, "CALL", script={PHONE_A: ["NO_ANSWER", "CALENDLY"]})
    other = make_agent(services, org, "CALL", defaultDisposition="NOT_INTERESTED")
    t0 = clock.now()
    wf, leads = start(services, org, call_wait_call(agent, agent), PHONE_A)
    lead_id = leads[PHONE_A]

    wait_started = t0 + RING
    services.engine.run_until_idle(clock, until=wait_started + DAY)  # one day into the two
    services.graph_workflows.pause(org, wf)
    paused = services.leads.get(org, wf, lead_id)
    assert paused.status == "PAUSED"
    assert paused.engine.remaining_secs == DAY.total_seconds()
    assert paused.engine.wake_at is None

    # A lead enrolled while paused waits too, through an edit of the graph; nothing is
    # dispatched for three days.
    services.leads.enroll(org, wf, [{"phone_number": PHONE_B}])
    late = lead_ids(services, org, wf)[PHONE_B]
    services.graph_workflows.update_node(org, wf, "second", {"config": {"agent_id": other}})
    services.engine.run_until_idle(clock, until=clock.now() + 3 * DAY)
    assert services.simulator.calls_placed.total() == 1
    assert services.leads.get(org, wf, late).status == "CREATED"

    resumed_at = clock.now()
    assert resumed_at == wait_started + 4 * DAY  # Friday 10:00:30
    services.graph_workflows.resume(org, wf)
    services.engine.run_until_idle(clock)

    second_call = resumed_at + DAY  # Saturday 10:00:30: the day that was left
    assert dispatches(services, org, wf, lead_id) == [
        ("first", agent, t0),
        ("second", agent, second_call),
    ]
    assert path(services, org, wf, lead_id) == ["first", "wait", "second", "won"]
    history = services.leads.history(org, wf, lead_id)["history"]
    assert (history[1]["entered_at"], history[1]["exited_at"]) == (wait_started, second_call)
    assert ending(services, org, wf, lead_id) == (
        "COMPLETED",
        "converted",
        "CALENDLY",
        second_call + TALK,
    )
    # The lead enrolled while paused starts at the resume, on the version current then (the
    # edit made during the pause). Its wait ends on Sunday 10:01 New York, before 13:00: the
    # call is deferred to 13:00 local (17:00 UTC).
    assert services.leads.get(org, wf, late).version_id != paused.version_id
    sunday_13_ny = datetime(2026, 3, 15, 17, 0, tzinfo=UTC)
    assert resumed_at + RING + 2 * DAY < sunday_13_ny
    assert dispatches(services, org, wf, late) == [
        ("first", agent, resumed_at),
        ("second", other, sunday_13_ny),
    ]
    [deferred] = [e for e in services.executions.events(org, wf, late) if e.kind == "deferred"]
    assert deferred.at == resumed_at + RING + 2 * DAY
    assert deferred.data["until"] == sunday_13_ny.isoformat()
    assert ending(services, org, wf, late) == (
        "COMPLETED",
        "converted",
        "NOT_INTERESTED",
        sunday_13_ny + TALK,
    )


def test_editing_an_active_graph_makes_a_version_and_running_leads_keep_theirs(
    services: Services, clock: VirtualClock
) -> None:
    org, _ = services.accounts.create_api_key("acme")
    old_agent = make_agent(services, org, "CALL", defaultDisposition="NO_ANSWER")
    new_agent = make_agent(services, org, "CALL", defaultDisposition="CALENDLY")
    t0 = clock.now()
    wf, leads = start(services, org, call_wait_call(old_agent, old_agent, days=1), PHONE_A)
    running = leads[PHONE_A]
    services.engine.run_until_idle(clock, until=t0 + timedelta(hours=1))
    assert services.leads.get(org, wf, running).node_id == "wait"
    before = services.graph_workflows.versions(org, wf)

    services.graph_workflows.update_node(org, wf, "second", {"config": {"agent_id": new_agent}})
    services.graph_workflows.add_node(
        org, wf, {"id": "note", "node_type": "TIME", "config": {"delay_hours": 1}}
    )
    edited_at = clock.now()
    services.leads.enroll(org, wf, [{"phone_number": PHONE_B}])
    fresh = lead_ids(services, org, wf)[PHONE_B]
    services.engine.run_until_idle(clock)

    after = services.graph_workflows.versions(org, wf)
    assert [v.version for v, _ in before] == [1]
    assert [v.version for v, _ in after] == [1, 2, 3]
    assert services.graph_workflows.node(org, wf, "second")["config"] == {"agent_id": new_agent}

    old_view = services.executions.get(org, wf, running)
    assert old_view.record.version_id == before[0][0].id
    assert [n["id"] for n in old_view.definition["nodes"]] == [
        "first",
        "wait",
        "second",
        "won",
        "lost",
    ]
    assert old_view.definition["nodes"][2]["config"] == {"agent_id": old_agent}
    assert dispatches(services, org, wf, running) == [
        ("first", old_agent, t0),
        ("second", old_agent, t0 + RING + DAY),
    ]
    assert path(services, org, wf, running) == ["first", "wait", "second", "lost"]
    assert ending(services, org, wf, running)[:3] == ("COMPLETED", "dropped", "NO_ANSWER")

    new_view = services.executions.get(org, wf, fresh)
    assert new_view.record.version_id == after[-1][0].id
    assert new_view.definition["nodes"][2]["config"] == {"agent_id": new_agent}
    assert dispatches(services, org, wf, fresh) == [
        ("first", old_agent, edited_at),
        ("second", new_agent, edited_at + RING + DAY),
    ]
    assert path(services, org, wf, fresh) == ["first", "wait", "second", "won"]


def test_attempt_counters_per_node_survive_a_restart(db_url: str, clock: VirtualClock) -> None:
    first = bootstrap(Settings(database_url=db_url), clock=clock, migrate=False)
    org, _ = first.accounts.create_api_key("acme")
    agent = make_agent(first, org, "CALL", script={PHONE_A: ["NO_ANSWER"]})
    t0 = clock.now()
    wf, leads = start(first, org, nurture(agent), PHONE_A)
    lead_id = leads[PHONE_A]
    # Two calls, and into the second two-day wait; then the process stops.
    first.engine.run_until_idle(clock, until=t0 + 3 * DAY)
    mid = first.leads.get(org, wf, lead_id)
    assert (mid.node_id, dict(mid.engine.visits)) == ("wait", {"call": 2, "check": 2, "wait": 2})
    placed_before = first.simulator.calls_placed.copy()
    first.close()

    second = bootstrap(Settings(database_url=db_url), clock=clock, migrate=False)
    second.engine.run_until_idle(clock)
    third = t0 + 4 * DAY + 2 * RING
    # The third call reads attempts.call == 3 from the persisted counters: unresponsive.
    assert path(second, org, wf, lead_id) == NURTURE_DROPPED_PATH
    assert [at for _, _, at in dispatches(second, org, wf, lead_id)] == [
        t0,
        t0 + 2 * DAY + RING,
        third,
    ]
    assert ending(second, org, wf, lead_id) == ("COMPLETED", "dropped", "NO_ANSWER", third + RING)
    assert dict(second.leads.get(org, wf, lead_id).engine.visits)["call"] == 3
    placed = placed_before + second.simulator.calls_placed
    assert placed.total() == 3
    assert set(placed.values()) == {1}
    second.close()
