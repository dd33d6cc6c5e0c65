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

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
