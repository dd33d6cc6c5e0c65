"""Phone numbers are validated and stored as E.164."""

from __future__ import annotations

import phonenumbers

from reachflow.domain.errors import FieldError, ValidationFailed


def to_e164(raw: object, field: str, default_region: str = "US") -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationFailed(FieldError(field, "is required: a phone number in E.164"))
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException as exc:
        raise ValidationFailed(FieldError(field, f"not a phone number: {exc}")) from exc
    if not phonenumbers.is_valid_number(number):
        raise ValidationFailed(FieldError(field, f"{raw!r} is not a valid phone number"))
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
