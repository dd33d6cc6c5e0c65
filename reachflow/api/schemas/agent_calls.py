"""The body an agent posts when it reports a call it accepted (``docs/agents.md``)."""

from __future__ import annotations

from pydantic import Field

from reachflow.api.schemas.common import Body, DispositionName, Instant


class AgentCallFields(Body):
    """Seed 000's ``agentCall``."""

    id: str | None = Field(default=None, max_length=200, description="The agent's call id")
    status: str | None = Field(default=None, max_length=64, examples=["completed"])
    callStartedAt: Instant | None = None
    callEndedAt: Instant | None = None
    callDuration: int | None = Field(default=None, ge=0, le=86_400, description="Seconds")
    callEndedReason: DispositionName | None = None
    recordingUrl: str | None = Field(default=None, max_length=2048)
    summary: str | None = Field(default=None, max_length=20_000)


class AgentCallReport(Body):
    """The outcome of a call the agent accepted with 202."""

    disposition: DispositionName
    agentCall: AgentCallFields | None = None
    reply: str | None = Field(
        default=None, max_length=2000, description="For a text: the contact's reply"
    )
    callbackAt: Instant | None = Field(
        default=None,
        description="With CALL_AGAIN: when the contact asked to be called back (a step's "
        "retryPolicy with useCallbackAt places the next attempt then)",
    )
