"""What the conformance suites share: the seed's documented fields as specs, a checker that
names every mismatch (type, enum, nullability, presence), placeholder replacement, and the
check that an example copied here is still the seed's text.

A spec maps a field name to ``F(kind, ...)``: ``kind`` is ``uuid``, ``string``, ``integer``,
``number``, ``boolean``, ``object``, ``array`` or ``any``; ``nullable`` allows null; ``enum``
lists the wire strings; ``fields`` is the spec of an object (or of each item of an array of
objects), ``each`` the type of each item of an array of scalars.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SEEDS = Path(__file__).resolve().parents[3] / "shared" / "seeds"

#: The seeds' enums (seed 000 for Feather; seed 003 for DialNexa's workflow status).
EXECUTION_STATUS = ("CREATED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "PAUSED")
DISPOSITIONS = (
    "COULD_NOT_CONNECT",
    "NO_ANSWER",
    "LEFT_VOICEMAIL",
    "VOICEMAIL_DETECTED",
    "SILENCE_TIMEOUT",
    "BAD_NUMBER",
    "NOT_INTERESTED",
    "WARM_TRANSFER",
    "CALENDLY",
    "DNC",
    "ENDED",
    "FRAUD",
    "LINE_BUSY",
    "TEXT_CONSENT",
    "CALL_AGAIN",
)
#: Seed 000 shows only PENDING; the rest are ours (docs/workflows.md, "Execution lifecycle").
STEP_STATUS = ("PENDING", "RUNNING", "COMPLETED", "FAILED", "SKIPPED", "CANCELLED")
STEP_TYPES = ("CALL", "TEXT")
WORKFLOW_STATUS = ("draft", "active", "running", "paused", "completed", "cancelled")
#: DialNexa's lead list statuses (API-RESEARCH 2.5, the API list page's vocabulary).
LEAD_STATUS = ("pending", "in_progress", "completed", "removed", "failed")
NODE_TYPES = ("VOICE_CALL", "TIME", "CONDITIONAL", "APPLICATION", "CONVERTED", "DROPPED", "SMS")

_ISO_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


@dataclass(frozen=True)
class F:
    kind: str
    nullable: bool = False
    enum: tuple[str, ...] | None = None
    fields: dict[str, F] | None = None
    #: For an array of scalars: what each item is.
    each: F | None = None
    #: For strings that are instants: ISO 8601 in UTC with ``Z`` (our one serializer).
    instant: bool = False
    #: May be left out (a step's ``initialMessage``); checked when present.
    optional: bool = False


def instant(nullable: bool = False) -> F:
    return F("string", nullable=nullable, instant=True)


@dataclass
class Report:
    """Mismatches found, and how many documented fields were checked."""

    problems: list[str] = field(default_factory=list)
    checked: set[str] = field(default_factory=set)

    def assert_clean(self) -> None:
        assert not self.problems, "\n".join(self.problems)


def conform(value: Any, spec: dict[str, F], report: Report, path: str = "") -> Report:
    """Check that ``value`` (an object) has every field of ``spec``, each of its type."""
    if not isinstance(value, dict):
        report.problems.append(f"{path or 'body'}: expected an object, got {value!r}")
        return report
    for name, want in spec.items():
        where = f"{path}.{name}" if path else name
        report.checked.add(_generic(where))
        if name not in value:
            if not want.optional:
                report.problems.append(f"{where}: missing")
            continue
        _one(value[name], want, report, where)
    return report


def _one(value: Any, want: F, report: Report, where: str) -> None:
    if value is None:
        if not want.nullable:
            report.problems.append(f"{where}: null, but the seed documents a {want.kind}")
        return
    ok = {
        "uuid": lambda v: isinstance(v, str) and _is_uuid(v),
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "any": lambda v: True,
    }[want.kind](value)
    if not ok:
        report.problems.append(f"{where}: {value!r} is not a {want.kind}")
        return
    if want.enum is not None and value not in want.enum:
        report.problems.append(f"{where}: {value!r} is not one of {', '.join(want.enum)}")
    if want.instant and not _ISO_INSTANT.match(value):
        report.problems.append(f"{where}: {value!r} is not an ISO 8601 UTC instant (Z)")
    if want.fields is not None and want.kind == "object":
        conform(value, want.fields, report, where)
    if want.fields is not None and want.kind == "array":
        for i, item in enumerate(value):
            conform(item, want.fields, report, f"{where}[{i}]")
    if want.each is not None and want.kind == "array":
        for i, item in enumerate(value):
            _one(item, want.each, report, f"{where}[{i}]")


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _generic(path: str) -> str:
    return re.sub(r"\[\d+\]", "[]", path)


def fields_in(spec: dict[str, F], path: str = "") -> list[str]:
    """Every documented field path of a spec (arrays as ``[]``): the suite's figures."""
    out: list[str] = []
    for name, want in spec.items():
        where = f"{path}.{name}" if path else name
        out.append(where)
        if want.fields is not None:
            inner = f"{where}[]" if want.kind == "array" else where
            out.extend(fields_in(want.fields, inner))
    return out


def placeholders(value: Any, values: dict[str, Any]) -> Any:
    """``value`` with each seed placeholder (``"<string>"``, ``"CALL_AGENT_ID"`` ...) replaced
    by ``values[<the key that holds it>]`` or else ``values[<the placeholder>]``; nothing else
    changes. A placeholder without a value is an error: the replay would not be verbatim."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if is_placeholder(item):
                wanted = values.get(key, values.get(item))
                if wanted is None:
                    raise KeyError(f"no value for the placeholder {item!r} at {key!r}")
                out[key] = wanted
            else:
                out[key] = placeholders(item, values)
        return out
    if isinstance(value, list):
        return [placeholders(item, values) for item in value]
    return value


def is_placeholder(item: Any) -> bool:
    return isinstance(item, str) and (
        (item.startswith("<") and item.endswith(">")) or item.endswith("_AGENT_ID")
    )


def seed_text(number: str) -> str | None:
    found = sorted(SEEDS.glob(f"{number}_*.txt"))
    return found[0].read_text() if found else None


def squeezed(text: str) -> str:
    """Text without whitespace: an example copied here matches the seed however indented."""
    return re.sub(r"\s+", "", text)
