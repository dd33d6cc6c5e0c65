"""The one executable form of every workflow: nodes joined by ordered, labelled edges.

Rule 1: after a node finishes with an outcome, its outgoing edges are checked in order and the
first whose label matches is taken; an unlabelled edge always matches (the default).
Rule 2: an ACTION's outcome is its disposition; it also matches the DialNexa group labels
``COMPLETED`` / ``DNP`` / ``FAILED`` (see ``OUTCOME_GROUPS``). Matching ignores case.
Rule 3: reaching an END node, or finding no matching edge, finishes the execution.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from reachflow.domain.conditions import ConditionSet
from reachflow.domain.enums import OUTCOME_GROUPS as OUTCOME_GROUPS  # re-exported
from reachflow.domain.enums import Channel, Disposition


class NodeKind(StrEnum):
    ACTION = "ACTION"  # a CALL or TEXT step dispatched to an agent
    TIME = "TIME"  # wait
    CONDITIONAL = "CONDITIONAL"  # branch on the execution's own state
    APPLICATION = "APPLICATION"  # act on the execution's data or the outside world
    END = "END"  # terminal
    WAIT_FOR_REPLY = "WAIT_FOR_REPLY"  # hold until the contact texts back, or a timeout


class EndOutcome(StrEnum):
    COMPLETED = "completed"
    CONVERTED = "converted"
    DROPPED = "dropped"


SKIPPED = "SKIPPED"
NEXT = "next"
#: What a step that waits for a reply emits: any reply, no reply before the timeout, an
#: opt-out reply (STOP ...); a reply matching a branch emits the branch's label instead.
REPLIED = "replied"
NO_REPLY = "no_reply"
OPTED_OUT = "opted_out"
REPLY_OUTCOMES = (REPLIED, NO_REPLY, OPTED_OUT)


@dataclass(frozen=True, slots=True)
class ReplyBranch:
    """A reply matches when it contains one of ``keywords`` (whole words, case and accents
    ignored) or when ``pattern`` (a regular expression, case ignored) is found in it."""

    label: str
    keywords: tuple[str, ...] = ()
    pattern: str | None = None


@dataclass(frozen=True, slots=True)
class ReplyWait:
    """Hold the execution after a text (or at a ``WAIT_FOR_REPLY`` node) until the contact
    answers or ``timeout_secs`` pass; branches are tried in order, after the opt-out check."""

    timeout_secs: int
    branches: tuple[ReplyBranch, ...] = ()


@dataclass(frozen=True, slots=True)
class RetryRule:
    """When a step ends with ``disposition``: try it again after ``delay_secs`` (or, with
    ``use_callback_at``, at the time the contact named), at most ``max_retries`` times."""

    disposition: str
    delay_secs: int
    max_retries: int
    use_callback_at: bool = False


@dataclass(frozen=True, slots=True)
class ActionConfig:
    channel: Channel
    agent_id: str
    leave_voicemail: bool = False
    message: str | None = None
    needs_tcpa: bool = True
    delay_secs: int = 0
    guard: ConditionSet | None = None
    from_phone_number: str | None = None
    # What a Feather step execution shows: the step's own fields.
    step_id: str | None = None
    step_order: int = 0
    finish_on: tuple[Disposition, ...] = ()
    #: A text that waits for the contact's answer (``waitForReply``).
    reply_wait: ReplyWait | None = None
    #: What to do again after which outcome (``retryPolicy``).
    retries: tuple[RetryRule, ...] = ()


@dataclass(frozen=True, slots=True)
class TimeConfig:
    """Exactly one of: a fixed delay, a local time of day, or the next schedule opening."""

    delay_secs: int | None = None
    until_minute_of_day: int | None = None
    until_schedule_opens: bool = False


@dataclass(frozen=True, slots=True)
class ConditionalConfig:
    """``conditions`` gives outcome true/false; ``branch_field`` gives the field's value."""

    conditions: ConditionSet | None = None
    branch_field: str | None = None
    branches: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ApplicationConfig:
    action: str  # set_variable | merge_metadata | suppress | http
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EndConfig:
    outcome: EndOutcome = EndOutcome.COMPLETED


@dataclass(frozen=True, slots=True)
class ReplyConfig:
    """A ``WAIT_FOR_REPLY`` node: no dispatch, only the wait."""

    wait: ReplyWait


NodeConfig = (
    ActionConfig | TimeConfig | ConditionalConfig | ApplicationConfig | EndConfig | ReplyConfig
)


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    kind: NodeKind
    config: NodeConfig
    label: str = ""


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    label: str | None = None

    def matches(self, outcome: str) -> bool:
        if self.label is None or self.label == "":
            return True
        wanted = self.label.upper()
        if wanted == outcome.upper():
            return True
        return outcome in OUTCOME_GROUPS.get(wanted, frozenset())


@dataclass(frozen=True, slots=True)
class Graph:
    entry: str
    nodes: Mapping[str, Node]
    edges: tuple[Edge, ...]

    def node(self, node_id: str) -> Node:
        return self.nodes[node_id]

    def outgoing(self, node_id: str) -> list[Edge]:
        return [e for e in self.edges if e.source == node_id]

    def next_node(self, node_id: str, outcome: str) -> str | None:
        for edge in self.outgoing(node_id):
            if edge.matches(outcome):
                return edge.target
        return None

    def next_node_preferring(self, node_id: str, outcomes: tuple[str, ...]) -> str | None:
        """The first edge labelled with one of ``outcomes``, tried in order (a reply branch,
        then ``replied``); else the edge ``outcomes[0]`` matches as ``next_node`` finds it."""
        edges = self.outgoing(node_id)
        for outcome in outcomes:
            for edge in edges:
                if edge.label and edge.label.upper() == outcome.upper():
                    return edge.target
        return self.next_node(node_id, outcomes[0])

    def actions(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.kind is NodeKind.ACTION]
