"""Where is the contact: ZIP, phone prefix, declared state, overrides and the no-evidence policy."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
import zipcodes
from hypothesis import given, settings
from hypothesis import strategies as st

from reachflow.domain.compliance import (
    ContactLocation,
    NoEvidencePolicy,
    load_location_data,
    locate_contact,
)
from reachflow.domain.compliance.location import parse_location_data
from reachflow.domain.errors import ValidationFailed

DATA = load_location_data()
ZIP_RECORDS = zipcodes.list_all()  # type: ignore[no-untyped-call]
ALL_ZIPS = [z["zip_code"] for z in ZIP_RECORDS]


def test_split_area_code_850_resolves_to_the_exchange() -> None:
    pensacola = locate_contact("+18504321234")
    tallahassee = locate_contact("+18502221234")
    assert pensacola.zones == ("America/Chicago",)
    assert tallahassee.zones == ("America/New_York",)
    assert pensacola.states == tallahassee.states == ("FL",)
    assert "Pensacola" in pensacola.evidence[0]


@pytest.mark.parametrize(
    ("phone", "zones", "state"),
    [
        ("+13645551234", ("America/Chicago", "America/New_York"), "KY"),
        ("+14485551234", ("America/Chicago", "America/New_York"), "FL"),
        ("+19305551234", ("America/Chicago", "America/New_York"), "IN"),
        ("+14585551234", ("America/Boise", "America/Los_Angeles"), "OR"),
        ("+16894441234", ("America/New_York",), "FL"),
    ],
)
def test_overlay_area_codes_use_the_override_table(
    phone: str, zones: tuple[str, ...], state: str
) -> None:
    location = locate_contact(phone)
    assert location.zones == zones
    assert location.states == (state,)
    assert "override" in location.evidence[0]


@pytest.mark.parametrize(
    ("zipcode", "zones", "state"),
    [
        ("89883", ("America/Denver",), "NV"),
        ("99634", ("America/Anchorage",), "AK"),
        ("86045", ("America/Denver", "America/Phoenix"), "AZ"),
        ("32501-1234", ("America/Chicago",), "FL"),
        ("10001", ("America/New_York",), "NY"),
    ],
)
def test_zip_codes_and_zip_overrides(zipcode: str, zones: tuple[str, ...], state: str) -> None:
    location = locate_contact(None, zipcode)
    assert (location.zones, location.states) == (zones, (state,))


def test_zip_and_area_code_that_disagree_give_both_zones_and_states() -> None:
    location = locate_contact("+14155550100", "10001")
    assert location.zones == ("America/Los_Angeles", "America/New_York")
    assert location.states == ("CA", "NY")
    assert len(location.evidence) == 2


def test_declared_state_adds_its_zones_only_when_not_already_placed() -> None:
    placed = locate_contact("+13055550100", "33101", "FL")
    assert placed.zones == ("America/New_York",)
    elsewhere = locate_contact(None, "10001", "Florida")
    assert elsewhere.zones == ("America/Chicago", "America/New_York")
    assert elsewhere.states == ("FL", "NY")
    only_state = locate_contact(None, None, "tx")
    assert only_state.zones == ("America/Chicago", "America/Denver")


@pytest.mark.parametrize(
    ("phone", "zipcode", "state"),
    [
        (None, None, None),
        ("", "", ""),
        ("not a phone", "abcde", "Atlantis"),
        ("+18005551234", None, None),  # toll-free: no location
        ("+12025550", "123", None),  # too short / not a ZIP
        (None, "09001", "AE"),  # military ZIP: no time zone
        (None, "00000", None),  # unknown ZIP
    ],
)
def test_no_evidence_refuses_or_assumes_anywhere(
    phone: str | None, zipcode: str | None, state: str | None
) -> None:
    refused = locate_contact(phone, zipcode, state)
    assert not refused.known
    assert refused.evidence[-1] == "no location evidence: policy REFUSE"
    anywhere = locate_contact(phone, zipcode, state, policy=NoEvidencePolicy.ALL_US_ZONES)
    assert set(anywhere.zones) == set(DATA.us_zones)
    assert {"FL", "TX", "RI", "AK", "HI", "DC"} <= set(anywhere.states)
    assert "PR" not in anywhere.states


def test_territories_and_non_us_numbers() -> None:
    assert locate_contact("+17875550100").states == ("PR",)
    assert locate_contact("+17875550100").zones == ("America/Puerto_Rico",)
    montreal = locate_contact("+15145550100")
    assert montreal.zones == ("America/Toronto",)
    assert montreal.states == ()


def test_location_data_is_consistent() -> None:
    for zones in (DATA.us_zones, *DATA.state_zones.values()):
        for zone in zones:
            ZoneInfo(zone)
    for prefix, override in DATA.phone_overrides.items():
        assert prefix.isdigit()
        assert override.state is not None
        assert override.state in DATA.state_zones
        assert set(override.zones) <= set(DATA.state_zones[override.state])
    assert DATA.state_code("Washington State") == "WA"


def test_every_zip_zone_is_valid_and_listed_for_its_state() -> None:
    """The whole zipcodes data set, after overrides, agrees with ``state_zones``."""
    unlisted = set()
    for record in ZIP_RECORDS:
        override = DATA.zip_overrides.get(record["zip_code"])
        zones = override.zones if override else (record["timezone"],)
        if record["state"] in {"AA", "AE", "AP"}:  # military: no zone, handled as no evidence
            assert zones == ("",)
            continue
        for zone in zones:
            ZoneInfo(zone)
        if record["state"] in DATA.state_zones:
            if not set(zones) <= set(DATA.state_zones[record["state"]]):
                unlisted.add((record["zip_code"], record["state"], zones))
        else:  # freely associated states: zones kept, no state rules
            assert record["state"] in {"FM", "MH", "PW"}
    assert not unlisted


@settings(max_examples=60, deadline=None)
@given(
    npa=st.integers(200, 999),
    rest=st.integers(0, 9_999_999),
    zipcode=st.sampled_from(ALL_ZIPS),
    state=st.sampled_from([None, "FL", "Texas", "ZZ", "ak"]),
)
def test_any_input_gives_a_location_with_loadable_zones(
    npa: int, rest: int, zipcode: str, state: str | None
) -> None:
    location = locate_contact(f"+1{npa}{rest:07d}", zipcode, state)
    assert isinstance(location, ContactLocation)
    assert list(location.zones) == sorted(set(location.zones))
    for zone in location.zones:
        ZoneInfo(zone)
    assert location.evidence


def test_bad_location_data_is_rejected_with_paths() -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_location_data(
            {
                "version": "",
                "us_zones": ["Mars/Olympus"],
                "state_zones": {"FL": ["America/New_York"]},
                "state_names": {"Texas": "TX"},
                "phone_overrides": {"364": {"zones": ["America/Chicago"], "state": "KY"}},
                "zip_overrides": {"1": {"zones": [], "note": "x"}},
            }
        )
    fields = {e.field for e in caught.value.errors}
    assert {
        "version",
        "us_zones[0]",
        "state_names.Texas",
        "phone_overrides.364.state",
        "phone_overrides.364.note",
        "zip_overrides.1.zones",
    } <= fields
