"""The public execution surface (seed 004, ``/v1/public``): request bodies, and the
``{code, data, message, requestId}`` envelope its answers use, errors included.

Also ``Price``, a workflow's price (``publicExecute`` and ``price`` in a workflow body).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from reachflow.api.schemas.common import Body
from reachflow.services.public_workflows import MAX_AMOUNT

KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
PUBLIC_STATUSES = Literal[
    "awaiting_payment",
    "payment_confirmed",
    "workflow_queued",
    "workflow_running",
    "workflow_waiting",
    "workflow_succeeded",
    "workflow_failed",
    "workflow_cancelled",
]


class Price(Body):
    """What a public execution of the workflow costs: it waits for payment first."""

    amount: int = Field(gt=0, le=MAX_AMOUNT, description="In minor units (cents): 1500 = 15.00")
    currency: str = Field(pattern=r"^[A-Za-z]{3}$", description="ISO 4217, such as usd")


class PublicExecutionCreate(Body):
    """Seed 004's body. ``requestPayload`` is the contact, as a Feather execution takes it
    (``primaryPhone`` required; ``customerLeadId`` defaults to ``sourceEntityId``)."""

    sourceSystem: str = Field(min_length=1, max_length=200, pattern=r"\S")
    sourceEntityType: str = Field(min_length=1, max_length=200, pattern=r"\S")
    sourceEntityId: str | None = Field(default=None, max_length=200)
    externalRef: str | None = Field(default=None, max_length=200)
    idempotencyKey: str | None = Field(
        default=None,
        pattern=KEY_PATTERN,
        description="The same key with the same body answers the same execution",
    )
    requestPayload: dict[str, Any] | None = Field(
        default=None,
        description="The contact: primaryPhone, customerLeadId, zipcode, state, variables, ...",
    )
    clientSafeMetadata: dict[str, Any] | None = Field(
        default=None, description="Shown to whoever holds the client token"
    )


class PaymentWebhook(BaseModel):
    """A payment system's word on a priced session (Standard Webhooks signed). Other fields
    are allowed and ignored."""

    model_config = ConfigDict(strict=True, extra="allow")

    checkoutSessionId: str | None = Field(default=None, min_length=1, max_length=64)
    executionId: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:\-]{1,100}$")
    orderId: str | None = Field(default=None, min_length=1, max_length=200)
    paymentStatus: Literal["paid", "failed", "canceled"]
    amount: int | None = Field(default=None, ge=0, description="If given, must be the price")
    currency: str | None = Field(default=None, pattern=r"^[A-Za-z]{3}$")


# -- answers --------------------------------------------------------------------------------


class Envelope(BaseModel):
    code: int = Field(description="The HTTP status, repeated")
    message: str = Field(description="success, or what went wrong")
    requestId: str | None = Field(description="The request's X-Request-Id")


class PublicErrorData(BaseModel):
    model_config = ConfigDict(extra="allow")

    error: str = Field(description="VALIDATION_ERROR, NOT_FOUND, FORBIDDEN, CONFLICT, ...")
    field: str | None = Field(default=None, description="The first offending field, if any")
    errors: list[dict[str, Any]] = Field(default_factory=list, description="Every problem")


class PublicError(Envelope):
    """Every error of the public surface."""

    data: PublicErrorData | None


class PublicExecution(BaseModel):
    """Every field seed 004 lists."""

    checkoutSessionId: str | None
    clientSafeMetadata: dict[str, Any]
    createdAt: str
    externalRef: str | None
    finishedAt: str | None
    id: str
    idempotencyKey: str | None
    initiatedById: str
    initiatedByType: str
    orderId: str | None
    organizationId: str
    paymentStatus: str
    requestPayload: dict[str, Any]
    responsePayload: dict[str, Any] | None
    runId: str | None
    sourceEntityId: str | None
    sourceEntityType: str
    sourceSystem: str
    startedAt: str | None
    status: PUBLIC_STATUSES
    statusReason: str
    updatedAt: str
    workflowId: str


class PublicExecutionStarted(BaseModel):
    clientToken: str = Field(description="Reads this execution only; shown once")
    execution: PublicExecution


class PublicExecutionCreated(Envelope):
    data: PublicExecutionStarted


class PublicEvent(BaseModel):
    createdAt: str
    eventType: str
    id: str
    level: Literal["info", "warning", "error"]
    message: str
    nodeId: str | None
    runId: str | None
    title: str


class ClientExecution(BaseModel):
    """What a client token shows: never the payloads, the organization or the contact."""

    checkoutSessionId: str | None
    clientSafeMetadata: dict[str, Any]
    createdAt: str
    events: list[PublicEvent]
    finishedAt: str | None
    id: str
    message: str = Field(description="The status reason")
    orderId: str | None
    paymentStatus: str
    runId: str | None
    startedAt: str | None
    status: PUBLIC_STATUSES
    statusReason: str
    updatedAt: str
    workflowId: str


class ClientExecutionRead(Envelope):
    data: ClientExecution


class PaymentResult(BaseModel):
    applied: bool = Field(description="False: a repeat of something already taken")
    execution: ClientExecution


class PaymentAnswer(Envelope):
    data: PaymentResult
