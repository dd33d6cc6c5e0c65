"""Request bodies of the DialNexa surface (``/v1/workflows``), as the services read them.

The graph definition follows ``domain/graph_definition`` (``parse.py`` for nodes and edges,
``configs.py`` for each node type's ``config``); workflow bodies follow
``services/graph_workflows.py``; lead rows follow ``services/leads.py``.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    RootModel,
    WithJsonSchema,
    create_model,
    model_validator,
)
from pydantic_core import PydanticCustomError

from reachflow.api.schemas.common import (
    CONDITION_FIELD_PATTERN,
    LEAD_ID_MAX,
    PATTERN_MESSAGES,
    STATE_PATTERN,
    ZIP_PATTERN,
    Body,
    Conditions,
    Name,
    Number,
    OpenBody,
    PhoneText,
    Scalar,
    TimeZoneName,
)
from reachflow.api.schemas.replies import GraphRetryPolicy, WaitForReplyConfig
from reachflow.api.schemas.schedule import WeekSchedule
from reachflow.domain.graph_definition import (
    DELAY_KEYS,
    DURATION_UNITS,
    HTTP_METHODS,
    MAX_DELAY_SECS,
    TIME_FORMS,
    NodeType,
)
from reachflow.services.leads import MAX_LEADS

ID_PATTERN = r"^[A-Za-z0-9_.:\-]{1,100}$"
ItemId = Annotated[str, Field(pattern=ID_PATTERN, description="1-100 letters, digits or _ . : -")]
PATTERN_MESSAGES[ID_PATTERN] = "must be 1-100 letters, digits or _ . : -"
NonBlank = Annotated[str, Field(pattern=r"\S")]
Template = Annotated[str, Field(pattern=r"\S", description="A {{placeholder}} template")]
Coordinate = Annotated[Number, Field(description="For a canvas")]


def _custom(kind: str, message: str, at: str | None = None) -> PydanticCustomError:
    return PydanticCustomError(kind, message, {"at": at} if at else None)


# -- node configs (domain/graph_definition/configs.py) -----------------------------------


class VoiceCallConfig(Body):
    agent_id: NonBlank | None = Field(default=None, description="A CALL agent; to activate")
    from_phone_number: NonBlank | None = None
    leave_voicemail: bool = False
    voicemail_message: Template | None = None
    needs_tcpa_compliance: bool = True
    retry_policy: GraphRetryPolicy | None = None


class SmsConfig(Body):
    agent_id: NonBlank | None = Field(default=None, description="A TEXT agent; to activate")
    message: Template | None = Field(default=None, description="Required to activate")
    needs_tcpa_compliance: bool = True
    wait_for_reply: WaitForReplyConfig | None = None
    retry_policy: GraphRetryPolicy | None = None


def _most(unit_secs: int) -> float:
    return MAX_DELAY_SECS / unit_secs


class TimeConfig(Body):
    """Exactly one wait: a delay, ``{duration, unit}``, ``until_time`` or
    ``until_schedule_opens`` (none at all is a draft). At most 366 days."""

    delay_minutes: Annotated[Number, Field(gt=0, le=_most(DELAY_KEYS["delay_minutes"]))] = None
    delay_hours: Annotated[Number, Field(gt=0, le=_most(DELAY_KEYS["delay_hours"]))] = None
    delay_days: Annotated[Number, Field(gt=0, le=_most(DELAY_KEYS["delay_days"]))] = None
    duration: Annotated[Number, Field(gt=0, le=_most(min(DURATION_UNITS.values())))] = None
    unit: Literal["minutes", "hours", "days"] = None
    until_time: Annotated[str, Field(pattern=r"^([01]?[0-9]|2[0-3]):[0-5][0-9]$")] = None
    until_schedule_opens: Literal[True] = None

    @model_validator(mode="after")
    def _one_wait(self) -> TimeConfig:
        forms = [key for key in TIME_FORMS if key in self.model_fields_set]
        if "unit" in self.model_fields_set and "duration" not in self.model_fields_set:
            raise _custom("duration_required", "is required with 'unit'", "duration")
        if len(forms) > 1:
            raise _custom("one_wait", f"give exactly one of {', '.join(TIME_FORMS)}")
        if forms == ["duration"]:
            if self.unit is None:
                raise _custom("unit_required", "must be minutes, hours or days", "unit")
            if self.duration * DURATION_UNITS[self.unit] > MAX_DELAY_SECS:
                raise _custom("too_long", "must be at most 366 days", "duration")
        return self


class ConditionalConfig(Body):
    """Either ``conditions`` (true/false) or ``condition_field`` with ``branches``."""

    conditions: Conditions | None = None
    condition_field: str = Field(default=None, pattern=CONDITION_FIELD_PATTERN)
    branches: list[Annotated[str, Field(pattern=r"\S")]] = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_test(self) -> ConditionalConfig:
        given = self.model_fields_set
        branching = bool({"condition_field", "branches"} & given)
        if branching and "conditions" in given:
            raise _custom(
                "one_test", "give either 'conditions' or 'condition_field' with 'branches'"
            )
        if branching and "condition_field" not in given:
            raise _custom("field_required", "is required with 'branches'", "condition_field")
        if branching and "branches" not in given:
            raise _custom("branches_required", "must be a non-empty list", "branches")
        seen: set[str] = set()
        for i, branch in enumerate(self.branches or []):
            if branch.upper() == "DEFAULT":
                raise _custom("reserved", "'default' is reserved", f"branches[{i}]")
            if branch.upper() in seen:
                raise _custom("duplicate", f"duplicate {branch!r}", f"branches[{i}]")
            seen.add(branch.upper())
        return self


class SetVariableAction(Body):
    action: Literal["set_variable"]
    key: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    value: Scalar


class MergeMetadataAction(Body):
    action: Literal["merge_metadata"]
    metadata: dict[str, Any]


class SuppressAction(Body):
    action: Literal["suppress"]
    channel: Literal["ALL", "CALL", "TEXT"] = "ALL"
    reason: NonBlank | None = None


class HttpAction(Body):
    """A signed request; a 2xx answer is ``success``."""

    action: Literal["http"]
    url: str = Field(pattern=r"^(?i:https?)://[^/?#\s]", examples=["https://example.com/hook"])
    method: Annotated[str, Field(pattern=rf"^(?i:{'|'.join(HTTP_METHODS)})$")] = "POST"
    secret: NonBlank | None = Field(default=None, description="Signs the body (HMAC)")
    body: dict[str, Any] | None = None


ApplicationConfig = Annotated[
    SetVariableAction | MergeMetadataAction | SuppressAction | HttpAction,
    Field(discriminator="action"),
]


class EndConfig(Body):
    """CONVERTED and DROPPED take no settings."""


# -- nodes and edges ---------------------------------------------------------------------


class _NodeBase(Body):
    key: ItemId = Field(
        default=None,
        description="Read as id when id is left out: the name edges and attempts.<id> use",
    )
    label: str | None = Field(default=None, description="Free text for people")
    position_x: Coordinate = 0
    position_y: Coordinate = 0

    @model_validator(mode="after")
    def _named_once(self) -> _NodeBase:
        given = self.model_fields_set
        if "key" in given and getattr(self, "id", None) is not None:
            raise _custom("id_and_key", "give id or key, not both", "key")
        return self


class _DefinitionNodeBase(_NodeBase):
    """A node inside a definition: edges name it, so it needs an ``id`` (or ``key``)."""

    @model_validator(mode="after")
    def _named(self) -> _DefinitionNodeBase:
        if getattr(self, "id", None) is None and self.key is None:
            raise _custom(
                "id_required",
                "is required: an id (or key) that edges and conditions name",
                "id",
            )
        return self


_CONFIGS: dict[NodeType, Any] = {
    NodeType.VOICE_CALL: VoiceCallConfig,
    NodeType.SMS: SmsConfig,
    NodeType.TIME: TimeConfig,
    NodeType.CONDITIONAL: ConditionalConfig,
    NodeType.APPLICATION: ApplicationConfig,
    NodeType.CONVERTED: EndConfig,
    NodeType.DROPPED: EndConfig,
    NodeType.WAIT_FOR_REPLY: WaitForReplyConfig,
}
_NAMES = {
    NodeType.VOICE_CALL: "VoiceCall",
    NodeType.SMS: "Sms",
    NodeType.TIME: "Time",
    NodeType.CONDITIONAL: "Conditional",
    NodeType.APPLICATION: "Application",
    NodeType.CONVERTED: "Converted",
    NodeType.DROPPED: "Dropped",
    NodeType.WAIT_FOR_REPLY: "WaitForReply",
}


def _node_union(suffix: str, base: type[_NodeBase]) -> Any:
    """One model per node type (its ``config`` shape), discriminated by ``node_type``."""
    members = [
        create_model(
            f"{_NAMES[t]}{suffix}",
            __base__=base,
            __module__=__name__,
            id=(ItemId | None, None),
            node_type=(Literal[t.value], ...),
            config=(_CONFIGS[t] | None, None),
        )
        for t in NodeType
    ]
    union: Any = members[0]
    for member in members[1:]:
        union = union | member
    return Annotated[union, Field(discriminator="node_type")]


#: A node of a definition (its ``id``, or ``key``, is required).
GraphNode = _node_union("Node", _DefinitionNodeBase)


class NodeCreate(RootModel[_node_union("NewNode", _NodeBase)]):
    """``POST .../nodes``: a node whose ``id`` (or ``key``) is generated when left out."""

    graph_form: ClassVar[str] = "node"


class GraphEdge(Body):
    id: ItemId = Field(default=None, description="Generated when left out")
    from_node_id: str = Field(min_length=1)
    to_node_id: str = Field(min_length=1)
    label: str | None = Field(
        default=None, description="The outcome it is for; left out or empty: every outcome"
    )


class EdgeCreate(Body):
    """``POST .../edges``: checked after the existing edges (the first match wins)."""

    id: ItemId = None
    from_node_id: str = Field(min_length=1)
    to_node_id: str = Field(min_length=1)
    label: str | None = None


class NodeUpdate(Body):
    """``PATCH .../nodes/{nodeId}``: ``config`` is replaced whole and checked against the
    node's type; ``id`` and ``node_type`` cannot change."""

    id: ItemId = None
    node_type: Literal[tuple(t.value for t in NodeType)] = None
    label: str | None = None
    position_x: Coordinate = None
    position_y: Coordinate = None
    config: dict[str, Any] | None = None


class GraphDefinition(Body):
    """``{nodes, edges, entry_node_id}``; the entry defaults to the first node."""

    nodes: list[GraphNode]
    edges: list[GraphEdge] | None = None
    entry_node_id: str | None = None


def _graph_only(value: Any) -> Any:
    if not (isinstance(value, dict) and "nodes" in value):
        raise _custom("not_a_graph", "must be a graph: {nodes, edges}")
    return value


DialNexaDefinition = Annotated[GraphDefinition, BeforeValidator(_graph_only)]


# -- graph workflows (services/graph_workflows.py) -------------------------------------------


class GraphWorkflowCreate(Body):
    """``title`` (or ``name``) is required; a new workflow is a draft unless ``active``."""

    graph_form: ClassVar[str] = "definition"

    title: Name = None
    name: Name = Field(default=None, description="Read as title")
    description: str | None = None
    status: Literal["draft", "active", "running"] = "draft"
    timezone: TimeZoneName = "America/New_York"
    workflow_schedule: WeekSchedule | None = None
    tcpa_schedule: WeekSchedule | None = None
    definition: DialNexaDefinition = None

    @model_validator(mode="after")
    def _titled(self) -> GraphWorkflowCreate:
        if not {"title", "name"} & self.model_fields_set:
            raise _custom("title_required", "is required", "title")
        return self


class GraphWorkflowUpdate(Body):
    """Title, description, schedules and the graph; ``status`` is a 409 (use the verbs)."""

    graph_form: ClassVar[str] = "definition"

    title: Name = None
    name: Name = Field(default=None, description="Read as title")
    description: str | None = None
    status: Annotated[
        Any,
        WithJsonSchema(
            {
                "description": "Refused with 409: status changes through activate, pause, "
                "resume and cancel"
            }
        ),
    ] = None
    timezone: TimeZoneName = None
    workflow_schedule: WeekSchedule | None = None
    tcpa_schedule: WeekSchedule | None = None
    definition: DialNexaDefinition = None


# -- leads (services/leads.py) ---------------------------------------------------------------


class LeadRow(OpenBody):
    """One lead: every other key becomes a variable for templates and conditions."""

    phone_number: PhoneText
    customer_lead_id: Annotated[str, Field(max_length=LEAD_ID_MAX)] | int | None = Field(
        default=None, description="Your id for the lead"
    )
    zipcode: str | None = Field(default=None, pattern=ZIP_PATTERN)
    state: str | None = Field(default=None, pattern=STATE_PATTERN)
    metadata: dict[str, Any] = Field(default_factory=dict)


class LeadUpload(Body):
    """``{"leads": [...]}``; a bare list of leads or one lead object are read the same."""

    leads: list[LeadRow] = Field(min_length=1, max_length=MAX_LEADS)


class LeadCsv(BaseModel):
    """A CSV upload: a ``phone_number`` column is required; ``customer_lead_id``,
    ``zipcode`` and ``state`` are read too, and every other column becomes a variable."""

    file: bytes = Field(json_schema_extra={"format": "binary"})
