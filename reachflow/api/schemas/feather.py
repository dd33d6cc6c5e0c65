"""Request bodies of the Feather surface (``/api/v1``), as the services read them.

Agents (``services/accounts.py``), workflows and their linear definition
(``services/workflows.py``, ``domain/definition.py``, ``domain/schedule.py``), executions
(``services/executions.py``) and the compliance endpoints (``services/contacts.py``).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Discriminator, Field, Tag, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError

from reachflow.api.schemas.common import (
    INT32_MAX,
    LEAD_ID_MAX,
    STATE_PATTERN,
    ZIP_PATTERN,
    Body,
    ChannelName,
    Conditions,
    DispositionName,
    ExecutionStatusName,
    Instant,
    Name,
    Number,
    PhoneText,
    TimeZoneName,
)
from reachflow.api.schemas.graph import GraphDefinition
from reachflow.api.schemas.public import Price
from reachflow.api.schemas.replies import RetryPolicy, WaitForReply
from reachflow.api.schemas.schedule import WeekSchedule
from reachflow.domain.definition import MAX_COUNT

#: A step's attempts are stored as nodes ``<id>``, ``<id>#2`` ... ``<id>#20`` (100 characters).
STEP_ID_MAX = 96

# -- agents -------------------------------------------------------------------------------

#: Who performs an agent's steps (``services.accounts.PROVIDERS``).
Provider = Literal["simulator", "webhook", "twilio", "retell"]

Weight = Annotated[Number, Field(ge=0)]
NonNegativeInt = Annotated[int, Field(ge=0, le=INT32_MAX)]


class SimulatorConfig(Body):
    """The simulator's settings; other keys are kept for other providers (``webhook``)."""

    model_config = {"extra": "allow"}

    defaultDisposition: DispositionName | None = None
    script: dict[str, Annotated[list[DispositionName], Field(min_length=1)]] | None = Field(
        default=None, description="Phone number -> the dispositions its calls get, in turn"
    )
    replies: dict[str, Annotated[list[str | None], Field(min_length=1)]] | None = Field(
        default=None, description="Phone number -> the texts it replies, in turn"
    )
    distribution: Annotated[dict[DispositionName, Weight], Field(min_length=1)] | None = Field(
        default=None, description="Disposition -> weight, for random outcomes"
    )
    callDurationSecs: NonNegativeInt | None = None
    ringDurationSecs: NonNegativeInt | None = None
    textDurationSecs: NonNegativeInt | None = None


class AgentCreate(Body):
    name: Name
    channel: ChannelName
    provider: Provider = "simulator"
    config: SimulatorConfig = Field(default_factory=SimulatorConfig)


class AgentUpdate(Body):
    """Only the fields given change. A channel change is refused while a workflow uses it."""

    name: Name = None
    channel: ChannelName = None
    provider: Provider = None
    config: SimulatorConfig = None


# -- the linear definition ----------------------------------------------------------------


class Step(Body):
    id: Annotated[str, Field(min_length=1, max_length=STEP_ID_MAX)] | None = Field(
        default=None, description="Generated when left out; unique within the definition"
    )
    type: ChannelName
    order: Annotated[int, Field(ge=1, le=INT32_MAX)] = Field(description="Unique, ascending")
    delayInSecs: Annotated[int, Field(ge=0, le=INT32_MAX)] = 0
    agentId: str = Field(min_length=1, description="An agent of this channel")
    leaveVoicemail: bool = False
    needsTCPACompliance: bool = True
    finishOn: list[DispositionName] = Field(default_factory=list)
    conditions: Conditions | None = None
    initialMessage: str | None = Field(default=None, description="A {{placeholder}} template")
    voicemailMessage: str | None = None
    count: Annotated[int, Field(ge=1, le=MAX_COUNT)] = 1
    waitForReply: WaitForReply | None = Field(
        default=None, description="TEXT steps: hold until the contact answers (docs/workflows.md)"
    )
    retryPolicy: RetryPolicy | None = Field(
        default=None, description="Disposition -> try again after a delay, or at callbackAt"
    )


class LinearDefinition(Body):
    """Feather's steps, run in ascending ``order``."""

    steps: list[Step] = Field(min_length=1)
    isInfinite: bool = False


def _definition_form(value: Any) -> str:
    return "graph" if isinstance(value, dict) and "nodes" in value else "linear"


#: A linear ``{steps}`` or a graph ``{nodes, edges}`` definition (``docs/workflows.md``).
Definition = Annotated[
    Annotated[LinearDefinition, Tag("linear")] | Annotated[GraphDefinition, Tag("graph")],
    Discriminator(_definition_form),
]


# -- workflows ----------------------------------------------------------------------------

LEGACY_FIELDS = {
    "startHour": "legacy field: use workflowSchedule with timeRanges",
    "endHour": "legacy field: use workflowSchedule with timeRanges",
}


class WorkflowCreate(Body):
    legacy_fields: ClassVar[dict[str, str]] = LEGACY_FIELDS
    graph_form: ClassVar[str] = "definition"

    name: Name
    description: str | None = None
    active: bool = Field(default=True, description="Executions start only while it is true")
    timezone: TimeZoneName = "America/New_York"
    workflowSchedule: WeekSchedule | None = None
    tcpaSchedule: WeekSchedule | None = None
    definition: Definition
    publicExecute: bool = Field(
        default=False,
        description="Outsiders may start it: POST /v1/public/workflows/{id}/executions",
    )
    price: Price | None = Field(default=None, description="A public execution waits for payment")


class WorkflowUpdate(Body):
    """A change of ``timezone``, a schedule or ``definition`` makes a new version."""

    legacy_fields: ClassVar[dict[str, str]] = LEGACY_FIELDS
    graph_form: ClassVar[str] = "definition"

    name: Name = None
    description: str | None = None
    active: bool = None
    timezone: TimeZoneName = None
    workflowSchedule: WeekSchedule | None = None
    tcpaSchedule: WeekSchedule | None = None
    definition: Definition = None
    publicExecute: bool = None
    price: Price | None = Field(default=None, description="null: free")


# -- executions ---------------------------------------------------------------------------


class ExecutionCreate(Body):
    """Seed 000's body, plus ``priorityDate`` and ``startAt``."""

    customerLeadId: str = Field(min_length=1, max_length=LEAD_ID_MAX, pattern=r"\S")
    primaryPhone: PhoneText
    zipcode: str | None = Field(default=None, pattern=ZIP_PATTERN, examples=["94107"])
    state: str | None = Field(
        default=None, pattern=STATE_PATTERN, description="A US state or territory code"
    )
    forwardingPhoneNumber: PhoneText | None = None
    variables: dict[str, Any] | None = Field(default=None, description="{{placeholder}} values")
    metadata: dict[str, Any] | None = None
    priorityDate: Instant | None = None
    startAt: Instant | None = Field(default=None, description="Do not start before this instant")
    attempt: int | None = Field(default=None, description="Accepted for compatibility; ignored")


class ExecutionBulkCreate(Body):
    """Each lead is checked on its own: a bad one is reported in its row, the rest start."""

    leads: list[
        Annotated[Any, WithJsonSchema({"$ref": "#/components/schemas/ExecutionCreate"})]
    ] = Field(min_length=1, description="At most REACHFLOW_BULK_LIMIT (1,000) leads")


class ExecutionUpdate(Body):
    """Pause, resume or cancel; ``metadata`` is merged. Both apply together or not at all.
    The status the execution already has changes nothing; another status only the engine
    sets (CREATED, COMPLETED, FAILED) is a 409."""

    status: ExecutionStatusName | None = None
    metadata: dict[str, Any] = None


class CancelTarget(Body):
    """Cancel the active executions of a phone number, of a customer lead id, or both."""

    phoneNumber: PhoneText | None = None
    customerLeadId: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _some_target(self) -> CancelTarget:
        if self.phoneNumber is None and self.customerLeadId is None:
            raise PydanticCustomError(
                "target_required", "give phoneNumber or customerLeadId", {"at": "phoneNumber"}
            )
        return self


# -- compliance ---------------------------------------------------------------------------


class SuppressionCreate(Body):
    phoneNumber: PhoneText
    channel: Literal["ALL", "CALL", "TEXT"] = "ALL"
    reason: str = Field(default="added by request", min_length=1, pattern=r"\S")


class ConsentCreate(Body):
    phoneNumber: PhoneText
    channel: ChannelName = "TEXT"


class InboundText(Body):
    """A contact's reply, forwarded by a text agent; an opt-out word suppresses texts."""

    phoneNumber: PhoneText
    body: str = Field(description="The text of the reply")
