"""The seeds' enumerations, as StrEnums holding the wire strings."""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    CALL = "CALL"
    TEXT = "TEXT"


class ExecutionStatus(StrEnum):
    CREATED = "CREATED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    PAUSED = "PAUSED"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED}
)


class StepStatus(StrEnum):
    """Status of one step execution. Feather shows only PENDING; the rest mirror it."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    CANCELLED = "CANCELLED"


class Disposition(StrEnum):
    COULD_NOT_CONNECT = "COULD_NOT_CONNECT"
    NO_ANSWER = "NO_ANSWER"
    LEFT_VOICEMAIL = "LEFT_VOICEMAIL"
    VOICEMAIL_DETECTED = "VOICEMAIL_DETECTED"
    SILENCE_TIMEOUT = "SILENCE_TIMEOUT"
    BAD_NUMBER = "BAD_NUMBER"
    NOT_INTERESTED = "NOT_INTERESTED"
    WARM_TRANSFER = "WARM_TRANSFER"
    CALENDLY = "CALENDLY"
    DNC = "DNC"
    ENDED = "ENDED"
    FRAUD = "FRAUD"
    LINE_BUSY = "LINE_BUSY"
    TEXT_CONSENT = "TEXT_CONSENT"
    CALL_AGAIN = "CALL_AGAIN"


#: Dispositions of a call nobody picked up; `leaveVoicemail` turns them into LEFT_VOICEMAIL.
UNANSWERED = frozenset({Disposition.NO_ANSWER, Disposition.VOICEMAIL_DETECTED})

#: DialNexa's outcome groups: the labels a call's outcome also answers to (``DNP`` = did not
#: pick up). ``DISPATCH_FAILED`` is the outcome of a dispatch the agent refused.
OUTCOME_GROUPS: dict[str, frozenset[str]] = {
    "DNP": frozenset(
        {
            Disposition.NO_ANSWER,
            Disposition.LINE_BUSY,
            Disposition.VOICEMAIL_DETECTED,
            Disposition.LEFT_VOICEMAIL,
            Disposition.SILENCE_TIMEOUT,
        }
    ),
    "FAILED": frozenset({Disposition.COULD_NOT_CONNECT, Disposition.BAD_NUMBER, "DISPATCH_FAILED"}),
    "COMPLETED": frozenset(
        {
            Disposition.NOT_INTERESTED,
            Disposition.WARM_TRANSFER,
            Disposition.CALENDLY,
            Disposition.DNC,
            Disposition.ENDED,
            Disposition.FRAUD,
            Disposition.TEXT_CONSENT,
            Disposition.CALL_AGAIN,
        }
    ),
}


def outcome_group(outcome: str | None) -> str | None:
    """The group (``COMPLETED``, ``DNP``, ``FAILED``) an outcome belongs to, if any."""
    if outcome is None:
        return None
    for group, members in OUTCOME_GROUPS.items():
        if outcome in members:
            return group
    return None


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
