"""What every request model shares: the strict base, the error body, and the field types the
services read the same way everywhere (instants, names, dispositions, conditions).

The models validate in strict mode, as the services do: a string is not an integer, ``true``
is not a number, ``5.0`` is not an integer. Enums accept their wire strings only.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from reachflow.domain.conditions import AGENT_CALL_FIELDS, KNOWN_FIELDS_HINT, Operator
from reachflow.domain.enums import Channel, Disposition, ExecutionStatus
from reachflow.domain.instants import parse_iso_instant
from reachflow.services.executions import US_STATES

#: What a string that does not match a pattern is told (the default: ``must match <pattern>``).
PATTERN_MESSAGES: dict[str, str] = {r"\S": "must not be blank"}

#: Longest stored name (agents, workflows) and customer lead id: the columns hold 200.
NAME_MAX = 200
LEAD_ID_MAX = 200
#: Positions and step orders are stored as 32-bit integers.
INT32_MAX = 2_147_483_647


class Body(BaseModel):
    """A request body: strict types, unknown fields refused (``unknown field``)."""

    model_config = ConfigDict(strict=True, extra="forbid", populate_by_name=False)


class OpenBody(BaseModel):
    """A request body that keeps unknown fields (they become data, such as lead variables)."""

    model_config = ConfigDict(strict=True, extra="allow")


# -- the error body ----------------------------------------------------------------------


class ErrorItem(BaseModel):
    """One problem. Graph problems also carry a machine ``code`` (``docs/workflows.md``)."""

    model_config = ConfigDict(extra="allow")

    field: str | None = Field(description="The field path, such as leads[0].primaryPhone")
    message: str
    code: str | None = Field(default=None, description="Graph problems: the problem's code")


class ErrorBody(BaseModel):
    """Every 4xx (and an unexpected 5xx) answers this body."""

    model_config = ConfigDict(extra="allow")

    status: int = Field(description="The HTTP status, repeated")
    message: str
    code: str = Field(description="VALIDATION_ERROR, NOT_FOUND, CONFLICT, UNAUTHORIZED, ...")
    success: bool = Field(default=False, description="Always false")
    field: str | None = Field(default=None, description="The first offending field, if any")
    errors: list[ErrorItem] = Field(default_factory=list, description="Every problem found")
    requestId: str | None = Field(default=None, description="The request's X-Request-Id")


# -- shared field types ------------------------------------------------------------------


def _lax(values: tuple[str, ...]) -> Any:
    """A ``Literal`` of wire strings (strict-mode friendly, unlike an Enum in strict mode)."""
    return Literal[values]


ChannelName: TypeAlias = _lax(tuple(c.value for c in Channel))
DispositionName: TypeAlias = _lax(tuple(d.value for d in Disposition))
ExecutionStatusName: TypeAlias = _lax(tuple(s.value for s in ExecutionStatus))

#: A non-empty name (surrounding spaces are trimmed when stored).
Name = Annotated[
    str,
    Field(min_length=1, max_length=NAME_MAX, pattern=r"\S", description="A non-empty name"),
]


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {value!r}; use an IANA name such as America/New_York"
        ) from exc
    return value


TimeZoneName = Annotated[
    str,
    Field(min_length=1, max_length=64, examples=["America/New_York"]),
    AfterValidator(_zone),
]


def _instant(value: str) -> str:
    """What ``services.executions.parse_instant`` reads (``domain.instants``)."""
    parse_iso_instant(value)  # BadInstant is a ValueError: pydantic reports its message
    return value


Instant = Annotated[
    str,
    Field(
        max_length=64,
        json_schema_extra={"format": "date-time"},
        examples=["2026-03-12T10:00:00Z"],
    ),
    AfterValidator(_instant),
]

PhoneText = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        description="Any format the phonenumbers library parses (US by default); stored as E.164",
        examples=["+14155550123"],
    ),
]

#: A JSON number, integer or not (strict: ``true`` is not a number), finite.
Number = Annotated[float, Field(allow_inf_nan=False)]


def _scalar(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        raise PydanticCustomError("scalar", "must be a string, number or boolean")
    return value


#: A condition's or a variable's value: a string, number, boolean or null.
Scalar = Annotated[
    Any,
    AfterValidator(_scalar),
    WithJsonSchema(
        {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}, {"type": "null"}]}
    ),
]

# -- conditions (domain/conditions.py) ---------------------------------------------------

_AGENT_CALL = "|".join(sorted(AGENT_CALL_FIELDS))
#: ``conditions.field_is_known`` without node ids: the fields a condition may read.
CONDITION_FIELD_PATTERN = (
    r"^(disposition|lastDisposition|attempts|phone|zipcode|state|call_status"
    rf"|(variables|metadata|attempts)\..+|agentCall\.({_AGENT_CALL}))$"
)
PATTERN_MESSAGES[CONDITION_FIELD_PATTERN] = f"unknown field; {KNOWN_FIELDS_HINT}"
OperatorName: TypeAlias = _lax(tuple(o.value for o in Operator))


class Condition(Body):
    """``{field, operator, value}``; ``value`` is required except for ``exists``."""

    field: str = Field(pattern=CONDITION_FIELD_PATTERN, examples=["variables.segment"])
    operator: OperatorName
    value: Scalar = None

    @model_validator(mode="after")
    def _value_given(self) -> Condition:
        if self.operator != Operator.EXISTS.value and "value" not in self.model_fields_set:
            raise PydanticCustomError(
                "value_required",
                "operator {operator} needs a value",
                {"operator": self.operator, "at": "value"},
            )
        return self


class ConditionGroup(Body):
    """Conditions joined by ``logic`` (``AND`` or ``OR``, any case; default ``AND``)."""

    logic: Annotated[str, Field(pattern=r"^(?i:and|or)$")] = "AND"
    conditions: list[Condition] = Field(default_factory=list)


def _condition_shape(value: Any) -> str | None:
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "group"
    return None


#: A guard: a list of conditions joined by AND, ``{logic, conditions}``, or null/[] for none.
Conditions = Annotated[
    Annotated[list[Condition], Tag("list")] | Annotated[ConditionGroup, Tag("group")],
    Discriminator(
        _condition_shape,
        custom_error_type="invalid_conditions",
        custom_error_message="must be a list of {field, operator, value} or {logic, conditions}",
    ),
]


# -- contacts (services/executions.py parse_location) ------------------------------------

#: A 5-digit ZIP or ZIP+4 (the first five digits are stored).
ZIP_PATTERN = r"^[0-9]{5}(-[0-9]{4})?$"
#: A two-letter US state or territory code, any case.
STATE_PATTERN = r"^(?i:" + "|".join(sorted(US_STATES)) + r")$"
PATTERN_MESSAGES[ZIP_PATTERN] = "must be a 5-digit US ZIP code (or ZIP+4)"
PATTERN_MESSAGES[STATE_PATTERN] = "must be a two-letter US state code"
