"""What the runtime asks of an agent, and what it gets back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from reachflow.domain.enums import Channel, Disposition


@dataclass(frozen=True, slots=True)
class DispatchRequest:
    idempotency_key: str
    organization_id: str
    execution_id: str
    step_execution_id: str
    agent_id: str
    agent_config: dict[str, Any]
    channel: Channel
    phone: str
    message: str | None
    leave_voicemail: bool
    variables: dict[str, Any]
    #: 1 for this agent's first dispatch in the execution, 2 for the next, ...
    sequence: int
    now: datetime
    forwarding_phone_number: str | None = None
    #: Our id for the call: the same on every retry of this step attempt.
    call_id: str = ""
    #: Where an agent that answers 202 posts its result later.
    callback_url: str | None = None


@dataclass(frozen=True, slots=True)
class AgentCall:
    """Feather's ``agentCall`` record."""

    id: str
    status: str
    call_started_at: datetime
    call_ended_at: datetime
    call_duration: int
    call_ended_reason: Disposition
    recording_url: str | None = None
    summary: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "callStartedAt": self.call_started_at.isoformat(),
            "callEndedAt": self.call_ended_at.isoformat(),
            "callDuration": self.call_duration,
            "callEndedReason": self.call_ended_reason.value,
            "recordingUrl": self.recording_url,
            "summary": self.summary,
        }


@dataclass(frozen=True, slots=True)
class AgentResult:
    disposition: Disposition
    call: AgentCall
    reported_at: datetime
    #: An inbound text the contact sent in answer (STOP and its kin opt the number out).
    reply: str | None = None
    #: When the contact asked to be called back (with ``CALL_AGAIN``), if the agent heard it.
    callback_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DispatchReceipt:
    """``result`` is set when the agent knows the outcome at once (the simulator); otherwise
    the outcome arrives later through the agent-result callback."""

    provider_call_id: str
    result: AgentResult | None = None


class AgentError(Exception):
    """The agent could not take the request. ``transient`` ones are retried with the same key."""

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


class Agent(Protocol):
    def dispatch(self, request: DispatchRequest) -> DispatchReceipt: ...


@runtime_checkable
class BatchAgent(Protocol):
    """An agent that takes many requests in one call (the simulator, a bulk SMS API). Each
    request still gets its own receipt or its own ``AgentError``."""

    def dispatch(self, request: DispatchRequest) -> DispatchReceipt: ...

    def dispatch_many(
        self, requests: Sequence[DispatchRequest]
    ) -> list[DispatchReceipt | AgentError]: ...


def receipt_to_json(receipt: DispatchReceipt) -> dict[str, Any]:
    result = receipt.result
    return {
        "providerCallId": receipt.provider_call_id,
        "result": None
        if result is None
        else {
            "disposition": result.disposition.value,
            "call": result.call.to_json(),
            "reportedAt": result.reported_at.isoformat(),
            "reply": result.reply,
            "callbackAt": result.callback_at.isoformat() if result.callback_at else None,
            "extra": dict(result.extra),
        },
    }


def receipt_from_json(data: dict[str, Any]) -> DispatchReceipt:
    result = data.get("result")
    if result is None:
        return DispatchReceipt(provider_call_id=str(data["providerCallId"]))
    call = result["call"]
    return DispatchReceipt(
        provider_call_id=str(data["providerCallId"]),
        result=AgentResult(
            disposition=Disposition(result["disposition"]),
            call=AgentCall(
                id=call["id"],
                status=call["status"],
                call_started_at=datetime.fromisoformat(call["callStartedAt"]),
                call_ended_at=datetime.fromisoformat(call["callEndedAt"]),
                call_duration=int(call["callDuration"]),
                call_ended_reason=Disposition(call["callEndedReason"]),
                recording_url=call.get("recordingUrl"),
                summary=call.get("summary"),
            ),
            reported_at=datetime.fromisoformat(result["reportedAt"]),
            reply=result.get("reply"),
            callback_at=datetime.fromisoformat(result["callbackAt"])
            if result.get("callbackAt")
            else None,
            extra=dict(result.get("extra") or {}),
        ),
    )
