"""Bodies for waiting for a reply and retry policies, in both API forms
(``docs/workflows.md``, "Waiting for a reply" and "Retry policies"). The services check them
again, deeper (``domain/definition.py``, ``domain/graph_definition/replies.py``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from reachflow.api.schemas.common import Body, DispositionName

#: A branch's name: a letter, then letters, digits or _ (not a reserved outcome).
BranchName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,39}$")]
Keywords = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=100)]],
    Field(min_length=1, max_length=50, description="Whole words or phrases; case ignored"),
]
Regex = Annotated[str, Field(min_length=1, max_length=200, description="Searched, case ignored")]
#: Where a reply outcome leads (Feather form).
Target = Annotated[
    str, Field(min_length=1, max_length=96, description='"finish", "next" or a step id')
]
MAX_TIMEOUT = 30 * 86400


# -- Feather (steps) -------------------------------------------------------------------------


class ReplyBranch(Body):
    """Exactly one of ``keywords``, ``regex`` or ``optOut: true``."""

    name: BranchName | None = None
    keywords: Keywords | None = None
    regex: Regex | None = None
    optOut: Literal[True] | None = None
    then: Target | None = None


class WaitForReply(Body):
    """A TEXT step that holds until the contact answers or ``timeoutSecs`` pass."""

    timeoutSecs: int = Field(ge=60, le=MAX_TIMEOUT)
    branches: list[ReplyBranch] = Field(default_factory=list, max_length=20)
    onReply: Target | None = Field(default=None, description='A reply no branch takes: "finish"')
    onNoReply: Target | None = Field(default=None, description='No reply: "next"')


class RetryRule(Body):
    delaySecs: int | None = Field(default=None, ge=0, le=MAX_TIMEOUT)
    maxRetries: int = Field(default=1, ge=1, le=10)
    useCallbackAt: bool = Field(
        default=False, description="CALL_AGAIN: at the time the contact named (callbackAt)"
    )


RetryPolicy = dict[DispositionName, RetryRule]


# -- DialNexa (graph nodes) ------------------------------------------------------------------

Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class GraphReplyBranch(Body):
    label: BranchName
    keywords: Keywords | None = None
    regex: Regex | None = None


class WaitForReplyConfig(Body):
    """A WAIT_FOR_REPLY node's config, or an SMS node's ``wait_for_reply``: one timeout."""

    timeout_minutes: Positive | None = None
    timeout_hours: Positive | None = None
    timeout_days: Positive | None = None
    branches: list[GraphReplyBranch] = Field(default_factory=list, max_length=20)


class GraphRetryRule(Body):
    delay_minutes: NonNegative | None = None
    delay_hours: NonNegative | None = None
    delay_days: NonNegative | None = None
    max_retries: int = Field(default=1, ge=1, le=10)
    use_callback_at: bool = False


GraphRetryPolicy = dict[DispositionName, GraphRetryRule]
