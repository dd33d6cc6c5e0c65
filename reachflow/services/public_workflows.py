"""A workflow's public settings (seed 004): ``publicExecute`` and ``price``, as a workflow body
gives them and as the workflows table keeps them."""

from __future__ import annotations

import re
from typing import Any

from reachflow.domain.errors import ProblemCollector

PUBLIC_FIELDS = frozenset({"publicExecute", "price"})
#: The largest price, in minor units (cents): ten billion of the currency.
MAX_AMOUNT = 1_000_000_000_000
_CURRENCY = re.compile(r"[A-Za-z]{3}")


def parse_public_settings(body: dict[str, Any], problems: ProblemCollector) -> dict[str, Any]:
    """The columns ``publicExecute`` and ``price`` set, for those the body gives:
    ``public_execute``, ``price_amount``, ``price_currency`` (``price: null``: free)."""
    out: dict[str, Any] = {}
    if "publicExecute" in body:
        value = body["publicExecute"]
        if not isinstance(value, bool):
            problems.add("publicExecute", "must be a boolean")
        else:
            out["public_execute"] = value
    if "price" in body:
        price = body["price"]
        if price is None:
            out["price_amount"] = out["price_currency"] = None
        elif not isinstance(price, dict):
            problems.add("price", "must be an object {amount, currency} or null")
        else:
            before = len(problems.problems)
            for key in price:
                if key not in ("amount", "currency"):
                    problems.add(f"price.{key}", "unknown field")
            amount, currency = price.get("amount"), price.get("currency")
            if isinstance(amount, bool) or not isinstance(amount, int):
                problems.add("price.amount", "is required: an integer in minor units (cents)")
            elif not 0 < amount <= MAX_AMOUNT:
                problems.add("price.amount", f"must be > 0 and <= {MAX_AMOUNT}")
            if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
                problems.add("price.currency", "is required: a three-letter ISO 4217 code")
            if len(problems.problems) == before:
                out["price_amount"] = amount
                out["price_currency"] = str(currency).lower()
    return out


def price_json(amount: int | None, currency: str | None) -> dict[str, Any] | None:
    if amount is None or currency is None:
        return None
    return {"amount": amount, "currency": currency}
