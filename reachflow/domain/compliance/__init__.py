"""Compliance core: where the contact is, which calling rules bind, and what they allow.

Pure: no I/O (beyond reading the packaged data files), no clock, no database.

- ``location``: ``locate_contact(phone, zipcode, state, policy=...) -> ContactLocation``
- ``rules``: ``load_rules() -> RuleSet`` from ``data/rules.yaml`` (versioned, cited data)
- ``policy``: ``contact_constraints(...)`` for the dispatch gate, ``cap_allows(...)`` for the
  rolling frequency caps, ``explain(...)`` for the compliance-window endpoint

See ``docs/compliance.md`` for how to read, extend and audit the rules.
"""

from reachflow.domain.compliance.location import (
    ContactLocation,
    LocationData,
    NoEvidencePolicy,
    load_location_data,
    locate_contact,
)
from reachflow.domain.compliance.policy import (
    NO_LOCATION,
    TCPA_SCHEDULE_RULE,
    CapDecision,
    On,
    cap_allows,
    contact_constraints,
    explain,
    next_allowed,
)
from reachflow.domain.compliance.rules import (
    Confidence,
    FrequencyCap,
    HolidaySpec,
    Rule,
    RuleSet,
    load_rules,
    parse_rules,
)

__all__ = [
    "NO_LOCATION",
    "TCPA_SCHEDULE_RULE",
    "CapDecision",
    "Confidence",
    "ContactLocation",
    "FrequencyCap",
    "HolidaySpec",
    "LocationData",
    "NoEvidencePolicy",
    "On",
    "Rule",
    "RuleSet",
    "cap_allows",
    "contact_constraints",
    "explain",
    "load_location_data",
    "load_rules",
    "locate_contact",
    "next_allowed",
    "parse_rules",
]
