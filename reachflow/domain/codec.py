"""ExecutionState to and from plain JSON, for storage and for Temporal payloads."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from reachflow.domain.decider import ExecutionState, Phase
from reachflow.domain.enums import Disposition, ExecutionStatus


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _dt(value: object) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def state_to_json(state: ExecutionState) -> dict[str, Any]:
    return {
        "executionId": state.execution_id,
        "status": state.status.value,
        "phase": state.phase.value,
        "nodeId": state.node_id,
        "wakeAt": _iso(state.wake_at),
        "remainingSecs": state.remaining_secs,
        "pausedFrom": state.paused_from.value if state.paused_from else None,
        "stepId": state.step_id,
        "dispatchAttempt": state.dispatch_attempt,
        "visits": dict(state.visits),
        "actions": state.actions,
        "agentDispatches": dict(state.agent_dispatches),
        "disposition": state.disposition.value if state.disposition else None,
        "lastCall": dict(state.last_call) if state.last_call is not None else None,
        "variables": dict(state.variables),
        "metadata": dict(state.metadata),
        "startedAt": _iso(state.started_at),
        "completedAt": _iso(state.completed_at),
        "outcome": state.outcome,
        "reason": state.reason,
        "lastReply": state.last_reply,
        "retries": dict(state.retries),
    }


def state_from_json(raw: dict[str, Any]) -> ExecutionState:
    return ExecutionState(
        execution_id=raw["executionId"],
        status=ExecutionStatus(raw["status"]),
        phase=Phase(raw["phase"]),
        node_id=raw.get("nodeId"),
        wake_at=_dt(raw.get("wakeAt")),
        remaining_secs=raw.get("remainingSecs"),
        paused_from=ExecutionStatus(raw["pausedFrom"]) if raw.get("pausedFrom") else None,
        step_id=raw.get("stepId"),
        dispatch_attempt=int(raw.get("dispatchAttempt", 0)),
        visits={str(k): int(v) for k, v in (raw.get("visits") or {}).items()},
        actions=int(raw.get("actions", 0)),
        agent_dispatches={str(k): int(v) for k, v in (raw.get("agentDispatches") or {}).items()},
        disposition=Disposition(raw["disposition"]) if raw.get("disposition") else None,
        last_call=raw.get("lastCall"),
        variables=raw.get("variables") or {},
        metadata=raw.get("metadata") or {},
        started_at=_dt(raw.get("startedAt")),
        completed_at=_dt(raw.get("completedAt")),
        outcome=raw.get("outcome"),
        reason=raw.get("reason"),
        last_reply=raw.get("lastReply"),
        retries={str(k): int(v) for k, v in (raw.get("retries") or {}).items()},
    )
