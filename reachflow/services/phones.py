"""Phone numbers are validated and stored as E.164.

The messages name the problem, never the value (rows with the same problem group together in
a lead upload) and never the parsing library's own text.
"""

from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException

from reachflow.domain.errors import FieldError, ValidationFailed

HINT = "use E.164, such as +14155550123"
_PARSE_PROBLEMS = {
    NumberParseException.INVALID_COUNTRY_CODE: "has an unknown country code",
    NumberParseException.NOT_A_NUMBER: "is not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "is too short to be a phone number",
    NumberParseException.TOO_SHORT_NSN: "is too short to be a phone number",
    NumberParseException.TOO_LONG: "is too long to be a phone number",
}


def to_e164(raw: object, field: str, default_region: str = "US") -> str:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise ValidationFailed(FieldError(field, f"is required: a phone number ({HINT})"))
    if not isinstance(raw, str):
        raise ValidationFailed(FieldError(field, f"must be a string: a phone number ({HINT})"))
    try:
        number = phonenumbers.parse(raw, default_region)
    except NumberParseException as exc:
        problem = _PARSE_PROBLEMS.get(exc.error_type, "is not a phone number")
        raise ValidationFailed(FieldError(field, f"{problem} ({HINT})")) from None
    if not phonenumbers.is_valid_number(number):
        raise ValidationFailed(FieldError(field, f"is not a valid phone number ({HINT})"))
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
