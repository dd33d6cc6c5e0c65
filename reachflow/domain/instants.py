"""Instants from the outside world: ISO 8601 with an offset, inside the range we compute with.

Scheduling adds days, windows and look-back periods to an instant; an instant near year 1 or
9999 would overflow that arithmetic. Every instant a client sends is therefore read here and
must fall between ``EARLIEST`` and ``LATEST`` once converted to UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

from reachflow.domain.errors import ProblemCollector

EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 12, 31, 23, 59, 59, tzinfo=UTC)


class BadInstant(ValueError):
    """Why a text is not an instant we accept (the message names no field)."""


def parse_iso_instant(raw: str) -> datetime:
    """``raw`` as an aware UTC datetime, or ``BadInstant``."""
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadInstant(f"not an ISO 8601 date-time: {raw[:40]!r}") from exc
    if value.tzinfo is None:
        raise BadInstant("needs a time zone offset (for example 2026-03-12T10:00:00Z)")
    try:
        utc = value.astimezone(UTC)
    except OverflowError as exc:
        raise BadInstant(_RANGE) from exc
    if not EARLIEST <= utc <= LATEST:
        raise BadInstant(_RANGE)
    return utc


_RANGE = f"out of range: from {EARLIEST.date()} to {LATEST.date()} (UTC)"


def read_instant(raw: object, field: str, problems: ProblemCollector) -> datetime | None:
    """An optional instant from a request body: None when absent, else ``parse_iso_instant``;
    a bad one is a problem naming ``field``."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        problems.add(field, "must be an ISO 8601 date-time string")
        return None
    try:
        return parse_iso_instant(raw)
    except BadInstant as exc:
        problems.add(field, str(exc))
        return None
