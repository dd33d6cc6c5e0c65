"""The one error tree. Only ``api/errors.py`` knows which HTTP status each maps to.

::

    ReachflowError
    ├── ValidationFailed      bad input; names the field path (``definition.steps[2].delayInSecs``)
    ├── NotFound              no such resource in this organization
    ├── Conflict              the resource exists but the request does not fit its state
    │   └── IllegalTransition a status change that makes no sense (resume a completed execution)
    ├── Unauthorized          missing, unknown or revoked API key
    ├── Forbidden             a valid key whose scope does not reach this (``/metrics`` needs admin)
    └── Refused               a rule forbids it (suppressed number, inactive workflow)
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    message: str


class ReachflowError(Exception):
    code = "ERROR"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    @property
    def errors(self) -> list[FieldError]:
        return [FieldError(self.field, self.message)] if self.field else []


class ValidationFailed(ReachflowError):
    code = "VALIDATION_ERROR"

    def __init__(self, problems: list[FieldError] | FieldError) -> None:
        items = problems if isinstance(problems, list) else [problems]
        if not items:
            raise ValueError("ValidationFailed needs at least one problem")
        first = items[0]
        text = "; ".join(f"{p.field}: {p.message}" for p in items)
        super().__init__(text, field=first.field)
        self.problems = items

    @property
    def errors(self) -> list[FieldError]:
        return list(self.problems)


class NotFound(ReachflowError):
    code = "NOT_FOUND"


class Conflict(ReachflowError):
    code = "CONFLICT"


class IllegalTransition(Conflict):
    code = "ILLEGAL_TRANSITION"


class Unauthorized(ReachflowError):
    code = "UNAUTHORIZED"


class Forbidden(ReachflowError):
    """The key is valid but its scope does not allow this."""

    code = "FORBIDDEN"


class Refused(ReachflowError):
    code = "REFUSED"


class Suppressed(Refused):
    """The number is on the organization's suppression list for every channel."""

    code = "SUPPRESSED"


@dataclass(slots=True)
class ProblemCollector:
    """Gathers every problem of a document before raising, so a user fixes them all at once."""

    problems: list[FieldError] = field(default_factory=list)

    def add(self, path: str, message: str) -> None:
        self.problems.append(FieldError(path, message))

    def raise_if_any(self) -> None:
        if self.problems:
            raise ValidationFailed(self.problems)
