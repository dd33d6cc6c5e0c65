"""JSON for the JSON columns: orjson where it can, the standard library where it cannot.

orjson is several times faster, and the engine reads and writes JSON on every decision. It
refuses what the standard library accepts (integers beyond 64 bits, lone surrogates, NaN); for
those values the standard library's output is kept, so nothing that stored before fails now.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS


def dumps(value: Any) -> str:
    try:
        return orjson.dumps(value, option=_OPTIONS).decode()
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(value)


def loads(text: str | bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
