"""The compliance shell: reads a contact's records and hands the pure core what it needs.

``ContactCompliance`` builds each execution's dispatch ``Gate`` from the workflow's schedules,
the contact's candidate zones and states, the packaged statute rules, the suppression list,
consent and the contact's recent attempts in every workflow. It also applies what a contact's
outcome or reply means (DNC, TEXT_CONSENT, STOP) and answers the explain endpoint.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection

from reachflow.domain.compliance import (
    ContactLocation,
    LocationData,
    NoEvidencePolicy,
    RuleSet,
    contact_constraints,
    explain,
    load_location_data,
    load_rules,
    locate_contact,
)
from reachflow.domain.compliance.policy import contact_caps
from reachflow.domain.compliance.reactions import ContactReaction
from reachflow.domain.decider import Lead
from reachflow.domain.enums import Channel
from reachflow.domain.gate import Cap, Constraint, Gate
from reachflow.runtime.gates import tcpa_schedule, workflow_constraints
from reachflow.store.contacts import ALL, ContactRecords
from reachflow.store.records import VersionRecord
from reachflow.store.store import Store

_CACHE_LIMIT = 20_000


@dataclass(frozen=True, slots=True)
class ContactFacts:
    """What the store knows of one contact at one instant."""

    suppressed: dict[Channel, str] = field(default_factory=dict)
    consent: frozenset[Channel] = frozenset()
    attempts: tuple[datetime, ...] = ()


class ContactCompliance:
    def __init__(
        self,
        store: Store,
        *,
        rules: RuleSet | None = None,
        location_data: LocationData | None = None,
        no_evidence: NoEvidencePolicy = NoEvidencePolicy.REFUSE,
        stop_revokes_all: bool = False,
        margin: timedelta = timedelta(0),
        horizon: timedelta = timedelta(days=14),
    ) -> None:
        self.store = store
        self.rules = rules or load_rules()
        self.location_data = location_data or load_location_data()
        self.no_evidence = no_evidence
        self.stop_revokes_all = stop_revokes_all
        self.margin = margin
        self.horizon = horizon
        self.lookback = max(
            (r.cap.window for r in self.rules.rules if r.cap is not None), default=timedelta(0)
        )
        self._locations: dict[tuple[str, str | None, str | None], ContactLocation] = {}
        self._windows: dict[tuple[Any, ...], tuple[tuple[Constraint, ...], tuple[str, ...]]] = {}
        self._schedules: dict[str, tuple[Constraint, ...]] = {}
        self._cap_memo: dict[tuple[Any, ...], tuple[Cap, ...]] = {}

    # -- reading -------------------------------------------------------------------------

    def locate(self, lead: Lead) -> ContactLocation:
        key = (lead.phone, lead.zipcode, lead.state)
        found = self._locations.get(key)
        if found is None:
            found = locate_contact(
                lead.phone,
                lead.zipcode,
                lead.state,
                policy=self.no_evidence,
                data=self.location_data,
            )
            _remember(self._locations, key, found)
        return found

    def facts(
        self,
        conn: Connection,
        organization_id: str,
        phone: str,
        now: datetime,
        *,
        excluding_key: str | None = None,
    ) -> ContactFacts:
        contact = (organization_id, phone)
        records = self.records_of(conn, [contact], now)[contact]
        return contact_facts(records, excluding_key=excluding_key)

    def records_of(
        self, conn: Connection, contacts: Iterable[tuple[str, str]], now: datetime
    ) -> dict[tuple[str, str], ContactRecords]:
        """The records of every ``(organization_id, phone)`` in a batch: three statements."""
        since = now - self.lookback if self.lookback > timedelta(0) else None
        return self.store.contacts.facts_of(conn, contacts, since)

    def gate(self, version: VersionRecord, lead: Lead, facts: ContactFacts, now: datetime) -> Gate:
        location = self.locate(lead)
        contact, refusals = self._contact_window(version, lead, location, facts.consent, now)
        return Gate(
            constraints=(*self._workflow_constraints(version), *contact),
            margin=self.margin,
            horizon=self.horizon,
            refusals=refusals,
            suppressed=dict(facts.suppressed),
            caps=self._caps(location.states, now, facts.consent),
            attempts=facts.attempts,
        )

    def _workflow_constraints(self, version: VersionRecord) -> tuple[Constraint, ...]:
        found = self._schedules.get(version.id)
        if found is None:
            found = workflow_constraints(version)
            _remember(self._schedules, version.id, found)
        return found

    def _caps(
        self, states: tuple[str, ...] | frozenset[str], now: datetime, consent: frozenset[Channel]
    ) -> tuple[Cap, ...]:
        key = (states, now.date(), consent)
        found = self._cap_memo.get(key)
        if found is None:
            found = contact_caps(self.rules, states, now, channel_consent=consent)
            _remember(self._cap_memo, key, found)
        return found

    def _contact_window(
        self,
        version: VersionRecord,
        lead: Lead,
        location: ContactLocation,
        consent: frozenset[Channel],
        now: datetime,
    ) -> tuple[tuple[Constraint, ...], tuple[str, ...]]:
        key = (version.id, lead.phone, lead.zipcode, lead.state, consent, now.date())
        cached = self._windows.get(key)
        if cached is None:
            cached = contact_constraints(
                self.rules,
                location,
                tcpa_schedule(version),
                consent,
                now,
                horizon_days=self.horizon.days + 2,
            )
            _remember(self._windows, key, cached)
        return cached

    def forget_version(self, version_id: str) -> None:
        """A draft's version was rewritten in place: drop the windows computed from it."""
        for key in [k for k in self._windows if k[0] == version_id]:
            del self._windows[key]
        self._schedules.pop(version_id, None)

    def explain(
        self,
        conn: Connection,
        organization_id: str,
        lead: Lead,
        channel: Channel,
        at: datetime,
        *,
        version: VersionRecord | None = None,
        needs_tcpa: bool = True,
    ) -> dict[str, Any]:
        facts = self.facts(conn, organization_id, lead.phone, at)
        answer = explain(
            self.rules,
            self.locate(lead),
            channel,
            at,
            tcpa_schedule=tcpa_schedule(version) if version else None,
            channel_consent=facts.consent,
            recent_attempts=facts.attempts,
            needs_tcpa=needs_tcpa,
            extra_constraints=workflow_constraints(version) if version else (),
            suppressed=facts.suppressed,
            margin=self.margin,
            horizon=self.horizon,
        )
        answer["consent"] = sorted(c.value for c in facts.consent)
        answer["recentAttempts"] = len(facts.attempts)
        return answer

    # -- writing -------------------------------------------------------------------------

    def react(
        self,
        conn: Connection,
        organization_id: str,
        phone: str,
        reaction: ContactReaction,
        now: datetime,
        *,
        execution_id: str | None = None,
        changes: list[tuple[str, str]] | None = None,
    ) -> bool:
        """Record what a contact's outcome or reply means. True when every channel is now
        suppressed (the caller cancels the number's active executions). ``changes`` collects
        what was new: ``("consented", channel)`` and ``("suppressed", ALL | channel)``."""
        contacts = self.store.contacts
        if reaction.revoke_consent:
            contacts.revoke_consent(
                conn, organization_id, phone, reaction.revoke_consent, reaction.reason, now
            )
        for channel in sorted(reaction.consent):
            granted = contacts.grant_consent(
                conn,
                consent_id=str(uuid.uuid4()),
                organization_id=organization_id,
                phone=phone,
                channel=channel,
                source=reaction.source,
                now=now,
                execution_id=execution_id,
            )
            if granted and changes is not None:
                changes.append(("consented", channel.value))
        if not reaction.suppress:
            return False
        every = reaction.suppress == frozenset(Channel)
        channels = [ALL] if every else sorted(c.value for c in reaction.suppress)
        for channel_name in channels:
            _, added = contacts.add_suppression(
                conn,
                suppression_id=str(uuid.uuid4()),
                organization_id=organization_id,
                phone=phone,
                channel=channel_name,
                reason=reaction.reason,
                source=reaction.source,
                now=now,
                execution_id=execution_id,
            )
            if added and changes is not None:
                changes.append(("suppressed", channel_name))
        return every


def contact_facts(records: ContactRecords, *, excluding_key: str | None = None) -> ContactFacts:
    """A contact's facts from its batch records; ``excluding_key`` leaves out the attempt of
    the dispatch being re-checked, so a re-send is not held by its own attempt."""
    suppressed: dict[Channel, str] = {}
    for channel, reason in records.suppressions:
        for each in tuple(Channel) if channel == ALL else (Channel(channel),):
            suppressed.setdefault(each, reason)
    return ContactFacts(
        suppressed=suppressed,
        consent=frozenset(records.consents),
        attempts=tuple(sorted(at for at, key in records.attempts if key != excluding_key)),
    )


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    """A bounded memo: emptied when full (cheap, and the working set refills it at once)."""
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[key] = value
