"""Per-contact compliance records: the suppression list, consent, and every attempt made."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, RowMapping

from reachflow.domain.enums import Channel
from reachflow.store.driver_writes import DriverWrite, insert_write
from reachflow.store.tables import consents, contact_attempts, suppressions
from reachflow.store.types import after_key

#: A suppression's channel: one channel, or every channel.
ALL = "ALL"


@dataclass(frozen=True, slots=True)
class SuppressionRecord:
    id: str
    organization_id: str
    phone: str
    channel: str
    reason: str
    source: str
    execution_id: str | None
    created_at: datetime
    removed_at: datetime | None
    removed_reason: str | None

    @property
    def active(self) -> bool:
        return self.removed_at is None

    @property
    def channels(self) -> frozenset[Channel]:
        return frozenset(Channel) if self.channel == ALL else frozenset({Channel(self.channel)})


class Contacts:
    # -- suppression list ---------------------------------------------------------------

    def add_suppression(
        self,
        conn: Connection,
        *,
        suppression_id: str,
        organization_id: str,
        phone: str,
        channel: str,
        reason: str,
        source: str,
        now: datetime,
        execution_id: str | None = None,
    ) -> tuple[SuppressionRecord, bool]:
        """Add an entry; an active entry for the same number and channel is kept (False)."""
        existing = (
            conn.execute(
                sa.select(suppressions).where(
                    suppressions.c.organization_id == organization_id,
                    suppressions.c.phone == phone,
                    suppressions.c.channel == channel,
                    suppressions.c.removed_at.is_(None),
                )
            )
            .mappings()
            .first()
        )
        if existing is not None:
            return _suppression(existing), False
        conn.execute(
            suppressions.insert().values(
                id=suppression_id,
                organization_id=organization_id,
                phone=phone,
                channel=channel,
                reason=reason,
                source=source,
                execution_id=execution_id,
                created_at=now,
            )
        )
        record = self.get_suppression(conn, organization_id, suppression_id)
        assert record is not None
        return record, True

    def get_suppression(
        self, conn: Connection, organization_id: str, suppression_id: str
    ) -> SuppressionRecord | None:
        row = (
            conn.execute(
                sa.select(suppressions).where(
                    suppressions.c.organization_id == organization_id,
                    suppressions.c.id == suppression_id,
                )
            )
            .mappings()
            .first()
        )
        return _suppression(row) if row else None

    def remove_suppression(
        self,
        conn: Connection,
        organization_id: str,
        suppression_id: str,
        reason: str,
        now: datetime,
    ) -> None:
        conn.execute(
            suppressions.update()
            .where(
                suppressions.c.organization_id == organization_id,
                suppressions.c.id == suppression_id,
            )
            .values(removed_at=now, removed_reason=reason)
        )

    def list_suppressions(
        self,
        conn: Connection,
        organization_id: str,
        *,
        phone: str | None = None,
        include_removed: bool = False,
        limit: int = 100,
        after: tuple[datetime, str] | None = None,
    ) -> list[SuppressionRecord]:
        query = sa.select(suppressions).where(suppressions.c.organization_id == organization_id)
        if phone is not None:
            query = query.where(suppressions.c.phone == phone)
        if not include_removed:
            query = query.where(suppressions.c.removed_at.is_(None))
        if after is not None:
            query = query.where(after_key(suppressions.c.created_at, suppressions.c.id, after))
        query = query.order_by(suppressions.c.created_at, suppressions.c.id).limit(limit)
        return [_suppression(r) for r in conn.execute(query).mappings()]

    def suppressed_channels(
        self, conn: Connection, organization_id: str, phone: str
    ) -> dict[Channel, str]:
        """Each suppressed channel of this number, with the reason of its entry."""
        entries = self.list_suppressions(conn, organization_id, phone=phone)
        return suppressed_by_channel((r.channel, r.reason) for r in entries)

    def suppressed_everywhere(
        self, conn: Connection, organization_id: str, phone: str
    ) -> str | None:
        """The reason when the number is suppressed on every channel, else None."""
        return everywhere_reason(self.suppressed_channels(conn, organization_id, phone))

    def suppressed_everywhere_of(
        self, conn: Connection, organization_id: str, phones: Iterable[str]
    ) -> dict[str, str]:
        """Of these numbers, those suppressed on every channel, with a reason: one statement."""
        records = self.facts_of(conn, [(organization_id, p) for p in phones], since=None)
        out: dict[str, str] = {}
        for (_, phone), found in records.items():
            reason = everywhere_reason(suppressed_by_channel(found.suppressions))
            if reason is not None:
                out[phone] = reason
        return out

    # -- consent ----------------------------------------------------------------------

    def grant_consent(
        self,
        conn: Connection,
        *,
        consent_id: str,
        organization_id: str,
        phone: str,
        channel: Channel,
        source: str,
        now: datetime,
        execution_id: str | None = None,
    ) -> bool:
        if channel in self.consented_channels(conn, organization_id, phone):
            return False
        conn.execute(
            consents.insert().values(
                id=consent_id,
                organization_id=organization_id,
                phone=phone,
                channel=channel.value,
                source=source,
                execution_id=execution_id,
                granted_at=now,
            )
        )
        return True

    def grant_consents(self, conn: Connection, grants: Sequence[ConsentGrant]) -> None:
        """Grant many consents in one statement; a channel already consented is left alone."""
        if grants:
            _GRANT_IF_ABSENT.execute(
                conn,
                [
                    {
                        "id": g.consent_id,
                        "org": g.organization_id,
                        "phone": g.phone,
                        "channel": g.channel.value,
                        "source": g.source,
                        "execution_id": g.execution_id,
                        "granted_at": g.granted_at,
                    }
                    for g in grants
                ],
            )

    def revoke_consent(
        self,
        conn: Connection,
        organization_id: str,
        phone: str,
        channels: Iterable[Channel],
        reason: str,
        now: datetime,
    ) -> None:
        conn.execute(
            consents.update()
            .where(
                consents.c.organization_id == organization_id,
                consents.c.phone == phone,
                consents.c.channel.in_([c.value for c in channels]),
                consents.c.revoked_at.is_(None),
            )
            .values(revoked_at=now, revoked_reason=reason)
        )

    def consented_channels(
        self, conn: Connection, organization_id: str, phone: str
    ) -> frozenset[Channel]:
        rows = conn.execute(
            sa.select(consents.c.channel).where(
                consents.c.organization_id == organization_id,
                consents.c.phone == phone,
                consents.c.revoked_at.is_(None),
            )
        )
        return frozenset(Channel(r.channel) for r in rows)

    # -- attempts (what frequency caps count) -----------------------------------------

    def lock_contacts(self, conn: Connection, contacts: Iterable[tuple[str, str]]) -> None:
        """Serialize cap checks for these ``(organization_id, phone)`` contacts until the
        transaction ends: PostgreSQL advisory locks, one statement, taken in key order so two
        batches never deadlock. SQLite: BEGIN IMMEDIATE already holds the only write lock."""
        if conn.dialect.name != "postgresql":
            return
        keys = sorted({_contact_key(org, phone) for org, phone in contacts})
        if keys:
            conn.execute(_LOCK_MANY, {"keys": keys})

    def record_attempts(self, conn: Connection, attempts: Sequence[AttemptRow]) -> None:
        """Count attempts in one statement; a key already counted is left alone."""
        _INSERT_ATTEMPTS.execute(
            conn,
            [
                {
                    "organization_id": a.organization_id,
                    "phone": a.phone,
                    "channel": a.channel.value,
                    "execution_id": a.execution_id,
                    "idempotency_key": a.idempotency_key,
                    "at": a.at,
                }
                for a in attempts
            ],
        )

    def facts_of(
        self, conn: Connection, contacts: Iterable[tuple[str, str]], since: datetime | None
    ) -> dict[tuple[str, str], ContactRecords]:
        """Every contact's active suppressions, consents and attempts after ``since`` (None:
        none are read): three statements, whatever the number of contacts."""
        wanted = set(contacts)
        out = {pair: ContactRecords() for pair in wanted}
        if not wanted:
            return out
        params = {
            "orgs": sorted({org for org, _ in wanted}),
            "phones": sorted({phone for _, phone in wanted}),
        }
        active_suppressions, active_consents, attempts_since = _FACTS[conn.dialect.name]
        for r in conn.execute(active_suppressions, params):
            found = out.get((r.organization_id, r.phone))
            if found is not None:
                found.suppressions.append((r.channel, r.reason))
        for r in conn.execute(active_consents, params):
            found = out.get((r.organization_id, r.phone))
            if found is not None:
                found.consents.add(Channel(r.channel))
        if since is not None:
            for r in conn.execute(attempts_since, {**params, "since": since}):
                found = out.get((r.organization_id, r.phone))
                if found is not None:
                    found.attempts.append((r.at, r.idempotency_key))
        return out


@dataclass(frozen=True, slots=True)
class AttemptRow:
    organization_id: str
    phone: str
    channel: Channel
    idempotency_key: str
    at: datetime
    execution_id: str | None = None


@dataclass(frozen=True, slots=True)
class ConsentGrant:
    consent_id: str
    organization_id: str
    phone: str
    channel: Channel
    source: str
    granted_at: datetime
    execution_id: str | None = None


@dataclass(slots=True)
class ContactRecords:
    """One contact's rows as read for a batch: ``(channel, reason)`` of each active
    suppression (oldest first), consented channels, and ``(at, idempotency_key)`` attempts."""

    suppressions: list[tuple[str, str]] = field(default_factory=list)
    consents: set[Channel] = field(default_factory=set)
    attempts: list[tuple[datetime, str]] = field(default_factory=list)


def suppressed_by_channel(entries: Iterable[tuple[str, str]]) -> dict[Channel, str]:
    """``(channel, reason)`` suppression entries, oldest first, as each suppressed channel
    with the reason of its first entry (``ALL`` covers every channel)."""
    out: dict[Channel, str] = {}
    for channel, reason in entries:
        for each in tuple(Channel) if channel == ALL else (Channel(channel),):
            out.setdefault(each, reason)
    return out


def everywhere_reason(suppressed: dict[Channel, str]) -> str | None:
    """The reason when every channel is suppressed, else None."""
    if len(suppressed) < len(Channel):
        return None
    return next(iter(suppressed.values()))


def _contact_key(organization_id: str, phone: str) -> int:
    digest = hashlib.blake2b(f"{organization_id}:{phone}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _facts_statements(postgresql: bool) -> tuple[Any, Any, Any]:
    """The three reads of ``facts_of``. PostgreSQL takes the numbers as one array parameter
    (``= ANY``): an expanded ``IN`` of 200 parameters made it plan each read anew, at about
    100 ms a read; SQLite takes the expanded ``IN``."""

    def among(column: Any, name: str) -> Any:
        if postgresql:
            return column == sa.any_(sa.bindparam(name, type_=ARRAY(sa.String())))
        return column.in_(sa.bindparam(name, expanding=True))

    def contact(table: sa.Table) -> list[Any]:
        return [among(table.c.organization_id, "orgs"), among(table.c.phone, "phones")]

    return (
        sa.select(
            suppressions.c.organization_id,
            suppressions.c.phone,
            suppressions.c.channel,
            suppressions.c.reason,
        )
        .where(*contact(suppressions), suppressions.c.removed_at.is_(None))
        .order_by(suppressions.c.created_at, suppressions.c.id),
        sa.select(consents.c.organization_id, consents.c.phone, consents.c.channel).where(
            *contact(consents), consents.c.revoked_at.is_(None)
        ),
        sa.select(
            contact_attempts.c.organization_id,
            contact_attempts.c.phone,
            contact_attempts.c.at,
            contact_attempts.c.idempotency_key,
        ).where(
            *contact(contact_attempts),
            contact_attempts.c.at > sa.bindparam("since", type_=contact_attempts.c.at.type),
        ),
    )


_FACTS = {"postgresql": _facts_statements(True), "sqlite": _facts_statements(False)}
_INSERT_ATTEMPTS = insert_write(
    "contact_attempts",
    ["organization_id", "phone", "channel", "execution_id", "idempotency_key", "at"],
    " ON CONFLICT (idempotency_key) DO NOTHING",
)
_GRANT_IF_ABSENT = DriverWrite(
    "INSERT INTO consents (id, organization_id, phone, channel, source, execution_id, granted_at)"
    " SELECT :id, :org, :phone, :channel, :source, :execution_id, :granted_at"
    " WHERE NOT EXISTS (SELECT 1 FROM consents WHERE organization_id = :org AND phone = :phone"
    " AND channel = :channel AND revoked_at IS NULL)",
    postgresql="INSERT INTO consents"
    " (id, organization_id, phone, channel, source, execution_id, granted_at)"
    " SELECT :id, :org, :phone, :channel, :source, :execution_id,"
    " CAST(:granted_at AS timestamptz)"
    " WHERE NOT EXISTS (SELECT 1 FROM consents WHERE organization_id = :org AND phone = :phone"
    " AND channel = :channel AND revoked_at IS NULL)",
)
_LOCK_MANY = sa.text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k")


def _suppression(row: RowMapping) -> SuppressionRecord:
    return SuppressionRecord(
        id=row["id"],
        organization_id=row["organization_id"],
        phone=row["phone"],
        channel=row["channel"],
        reason=row["reason"],
        source=row["source"],
        execution_id=row["execution_id"],
        created_at=row["created_at"],
        removed_at=row["removed_at"],
        removed_reason=row["removed_reason"],
    )
