"""Where is the contact? Candidate time zones and states from every piece of evidence.

Evidence, strongest first (TCPA-RESEARCH.md §3):

1. the address ZIP, through ``zipcodes`` (state and IANA zone; offline);
2. the phone number's area code or exchange (NPA-NXX), through ``phonenumbers`` (zones from its
   prefix data, which resolves split area codes to the rate center; the state from its
   geocoder); this is where the number came from, not where the person is;
3. the execution's declared ``state``, which adds every zone of that state unless a ZIP or the
   phone already places the contact inside that state.

Candidates are a *union*: the gate later intersects the windows of every zone and applies the
rules of every state, so more evidence only ever narrows the calling window. Known faults in both
packages are corrected by ``data/location.yaml``. With no evidence at all, ``NoEvidencePolicy``
decides: refuse, or assume anywhere in the US (every US zone, every state's rules).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
import yaml
import zipcodes
from phonenumbers import PhoneNumberType, geocoder
from phonenumbers import timezone as phone_timezone

from reachflow.domain.errors import ProblemCollector

_PACKAGE = "reachflow.domain.compliance"
_ZIP = re.compile(r"^(\d{5})(?:-\d{4})?$")
_CITY_STATE = re.compile(r", ([A-Z]{2})$")
#: More zones than this for one number means a non-geographic number (toll-free, 500, ...).
_MAX_PHONE_ZONES = 8
_NON_GEOGRAPHIC = frozenset(
    {
        PhoneNumberType.TOLL_FREE,
        PhoneNumberType.PREMIUM_RATE,
        PhoneNumberType.SHARED_COST,
        PhoneNumberType.PERSONAL_NUMBER,
        PhoneNumberType.UAN,
        PhoneNumberType.VOICEMAIL,
        PhoneNumberType.PAGER,
    }
)
_TERRITORIES = frozenset({"PR", "VI", "GU", "MP", "AS"})


class NoEvidencePolicy(StrEnum):
    """What to do when neither ZIP, phone nor state says where the contact is."""

    REFUSE = "REFUSE"  # do not contact (the gate refuses with the reason)
    ALL_US_ZONES = "ALL_US_ZONES"  # anywhere in the US: every US zone and every state's rules


@dataclass(frozen=True, slots=True)
class ContactLocation:
    """Candidate zones and states (sorted, deduplicated) and why each is there."""

    zones: tuple[str, ...]
    states: tuple[str, ...]
    evidence: tuple[str, ...]

    @property
    def known(self) -> bool:
        """False when there is no zone at all: the contact must not be contacted."""
        return bool(self.zones)


@dataclass(frozen=True, slots=True)
class Override:
    zones: tuple[str, ...]
    state: str | None
    note: str


@dataclass(frozen=True, slots=True)
class LocationData:
    """The checked-in tables of ``data/location.yaml``."""

    version: str
    us_zones: tuple[str, ...]
    state_zones: Mapping[str, tuple[str, ...]]
    state_names: Mapping[str, str]
    phone_overrides: Mapping[str, Override]
    zip_overrides: Mapping[str, Override]

    def state_code(self, text: str) -> str | None:
        """'FL', 'fl' or 'Florida' -> 'FL'; None for anything that is not a US state/territory."""
        cleaned = text.strip()
        if cleaned.upper() in self.state_zones:
            return cleaned.upper()
        by_name = {name.casefold(): code for name, code in self.state_names.items()}
        return by_name.get(cleaned.casefold())


@dataclass(frozen=True, slots=True)
class _Finding:
    zones: frozenset[str]
    state: str | None
    note: str


def locate_contact(
    phone: str | None,
    zipcode: str | None = None,
    state: str | None = None,
    *,
    policy: NoEvidencePolicy = NoEvidencePolicy.REFUSE,
    data: LocationData | None = None,
) -> ContactLocation:
    """Every candidate zone and state of a contact (phone in E.164, US ZIP, state code or name)."""
    tables = data or load_location_data()
    findings = [
        f for f in (_from_zip(zipcode, tables), _from_phone(phone, tables)) if f is not None
    ]
    notes = [f.note for f in findings]
    zones = {z for f in findings for z in f.zones}
    placed = {f.state for f in findings if f.zones and f.state}
    states = {f.state for f in findings if f.state}
    if state is not None and state.strip():
        code = tables.state_code(state)
        if code is None:
            notes.append(f"state {state!r}: not a US state or territory, ignored")
        elif code in placed:
            states.add(code)
            notes.append(f"state {code}: already placed by ZIP or phone")
        else:
            states.add(code)
            zones.update(tables.state_zones[code])
            notes.append(f"state {code}: every zone of the state {_list(tables.state_zones[code])}")
    if zones:
        return ContactLocation(tuple(sorted(zones)), tuple(sorted(states)), tuple(notes))
    if policy is NoEvidencePolicy.ALL_US_ZONES:
        notes.append(
            "no location evidence: policy ALL_US_ZONES assumes anywhere in the US "
            f"(zones {_list(tables.us_zones)}, every state's rules)"
        )
        all_states = {code for code in tables.state_zones if code not in _TERRITORIES}
        return ContactLocation(
            tuple(sorted(tables.us_zones)), tuple(sorted(all_states)), tuple(notes)
        )
    notes.append("no location evidence: policy REFUSE")
    return ContactLocation((), tuple(sorted(states)), tuple(notes))


def _from_zip(zipcode: str | None, tables: LocationData) -> _Finding | None:
    if zipcode is None or not zipcode.strip():
        return None
    match = _ZIP.match(zipcode.strip())
    if match is None:
        return _Finding(frozenset(), None, f"zip {zipcode!r}: not a US ZIP code, ignored")
    zip5 = match.group(1)
    records = _zip_records(zip5)
    if not records:
        return _Finding(frozenset(), None, f"zip {zip5}: unknown to zipcodes, ignored")
    record = records[0]
    raw_state = str(record.get("state", ""))
    state = raw_state if raw_state in tables.state_zones else None
    place = f"{record.get('city', '')}, {raw_state}"
    override = tables.zip_overrides.get(zip5)
    if override is not None:
        zones = frozenset(override.zones)
        return _Finding(
            zones, state, f"zip {zip5} ({place}) -> {_list(zones)} (override: {override.note})"
        )
    zone = str(record.get("timezone") or "")
    if not _valid_zone(zone):
        note = f"zip {zip5} ({place}): no usable time zone ({zone or 'none'})"
        return _Finding(frozenset(), state, note)
    return _Finding(frozenset({zone}), state, f"zip {zip5} ({place}) -> {zone} (zipcodes)")


def _zip_records(zip5: str) -> list[dict[str, Any]]:
    # zipcodes' public wrapper is untyped; its compiled core is stubbed with this signature.
    found: list[dict[str, Any]] = zipcodes.matching(zip5)  # type: ignore[no-untyped-call]
    return found


def _from_phone(phone: str | None, tables: LocationData) -> _Finding | None:
    if phone is None or not phone.strip():
        return None
    try:
        number = phonenumbers.parse(phone, "US")
    except phonenumbers.NumberParseException:
        return _Finding(frozenset(), None, f"phone {phone!r}: not a phone number, ignored")
    if not phonenumbers.is_valid_number(number):
        return _Finding(frozenset(), None, f"phone {phone!r}: not a valid number, ignored")
    national = str(number.national_number)
    label = f"phone +{number.country_code} {national[:3]}-{national[3:6]}"
    if phonenumbers.number_type(number) in _NON_GEOGRAPHIC:
        return _Finding(frozenset(), None, f"{label}: non-geographic number, no location")
    region = phonenumbers.region_code_for_number(number)
    description = geocoder.description_for_number(number, "en")
    state = _phone_state(region, description, tables) if number.country_code == 1 else None
    override = (
        _longest_override(national, tables.phone_overrides) if number.country_code == 1 else None
    )
    if override is not None:
        state = override.state or state
        zones = frozenset(override.zones)
        note = f"{label} ({description or region}) -> {_list(zones)} (override: {override.note})"
        return _Finding(zones, state, note)
    zones = frozenset(z for z in phone_timezone.time_zones_for_number(number) if _valid_zone(z))
    if not zones or len(zones) > _MAX_PHONE_ZONES:
        return _Finding(frozenset(), state, f"{label}: no single area, no location from the number")
    note = f"{label} ({description or region}) -> {_list(zones)} (phonenumbers prefix data)"
    return _Finding(zones, state, note)


def _phone_state(region: str | None, description: str, tables: LocationData) -> str | None:
    if region in _TERRITORIES:
        return region
    if region != "US":
        return None
    match = _CITY_STATE.search(description)
    if match is not None and match.group(1) in tables.state_zones:
        return match.group(1)
    return tables.state_code(description) if description else None


def _longest_override(national: str, overrides: Mapping[str, Override]) -> Override | None:
    for length in range(len(national), 0, -1):
        hit = overrides.get(national[:length])
        if hit is not None:
            return hit
    return None


@cache
def _valid_zone(name: str) -> bool:
    if not name:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _list(zones: frozenset[str] | tuple[str, ...]) -> str:
    return "{" + ", ".join(sorted(zones)) + "}"


# -------------------------------------------------------------------------------- loading


def load_location_data() -> LocationData:
    """The tables shipped in ``data/location.yaml``, validated (``ValidationFailed`` if not)."""
    return _load_packaged()


@cache
def _load_packaged() -> LocationData:
    text = (resources.files(_PACKAGE) / "data" / "location.yaml").read_text("utf-8")
    return parse_location_data(yaml.safe_load(text))


def parse_location_data(raw: object) -> LocationData:
    problems = ProblemCollector()
    doc: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    if not isinstance(raw, Mapping):
        problems.add("location.yaml", "must be a mapping")
    version = doc.get("version")
    if not isinstance(version, str) or not version:
        problems.add("version", "must be a non-empty string")
    us_zones = _zones(doc.get("us_zones"), "us_zones", problems)
    state_zones = {
        str(code): _zones(zones, f"state_zones.{code}", problems)
        for code, zones in _mapping(doc.get("state_zones"), "state_zones", problems).items()
    }
    names = {
        str(name): str(code)
        for name, code in _mapping(doc.get("state_names"), "state_names", problems).items()
    }
    for name, code in names.items():
        if code not in state_zones:
            problems.add(f"state_names.{name}", f"{code!r} has no state_zones entry")
    tables = {
        key: {
            str(prefix): _override(item, f"{key}.{prefix}", state_zones, problems)
            for prefix, item in _mapping(doc.get(key), key, problems).items()
        }
        for key in ("phone_overrides", "zip_overrides")
    }
    problems.raise_if_any()
    return LocationData(
        version=str(version),
        us_zones=us_zones,
        state_zones=state_zones,
        state_names=names,
        phone_overrides=tables["phone_overrides"],
        zip_overrides=tables["zip_overrides"],
    )


def _mapping(value: object, path: str, problems: ProblemCollector) -> Mapping[Any, Any]:
    if not isinstance(value, Mapping) or not value:
        problems.add(path, "must be a non-empty mapping")
        return {}
    return value


def _zones(value: object, path: str, problems: ProblemCollector) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        problems.add(path, "must be a non-empty list of IANA zones")
        return ()
    for i, zone in enumerate(value):
        if not isinstance(zone, str) or not _valid_zone(zone):
            problems.add(f"{path}[{i}]", f"unknown time zone {zone!r}")
    return tuple(str(z) for z in value)


def _override(
    value: object, path: str, state_zones: Mapping[str, tuple[str, ...]], problems: ProblemCollector
) -> Override:
    item: Mapping[str, Any] = value if isinstance(value, Mapping) else {}
    if not isinstance(value, Mapping) or not set(value) <= {"zones", "state", "note"}:
        problems.add(path, "must be {zones, state, note}")
    state = item.get("state")
    if state is not None and state not in state_zones:
        problems.add(f"{path}.state", f"unknown state {state!r}")
    note = item.get("note")
    if not isinstance(note, str) or not note:
        problems.add(f"{path}.note", "say why the override exists")
    zones = _zones(item.get("zones"), f"{path}.zones", problems)
    return Override(zones=zones, state=None if state is None else str(state), note=str(note))
