"""``{{variable}}`` placeholders in messages: syntax check, referenced names, rendering."""

from __future__ import annotations

import re
from collections.abc import Mapping

#: Names every template may use besides the lead's variables and metadata: the contact's last
#: reply to a step that waited for one.
LAST_REPLY = "lastReply"
BUILTIN_NAMES = frozenset({LAST_REPLY})

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*\}\}")


class TemplateSyntaxError(ValueError):
    pass


def placeholder_names(text: str) -> list[str]:
    """Names referenced by ``text``; raises ``TemplateSyntaxError`` on malformed braces."""
    stripped = _PLACEHOLDER.sub("", text)
    if "{{" in stripped or "}}" in stripped:
        bad = stripped[stripped.find("{{") :] if "{{" in stripped else stripped
        raise TemplateSyntaxError(
            f"malformed placeholder near {bad[:30]!r}; use {{{{name}}}} with a letter or _ first"
        )
    return [m.group(1) for m in _PLACEHOLDER.finditer(text)]


def render(
    text: str,
    variables: Mapping[str, object],
    metadata: Mapping[str, object],
    builtins: Mapping[str, object] | None = None,
) -> str:
    """Fill placeholders from ``builtins`` (``lastReply``), then variables, then metadata;
    ``metadata.x`` / ``variables.x`` pick one.

    A name with no value renders as an empty string, so a missing first name never leaks braces.
    """
    own = builtins or {}

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        root, _, rest = name.partition(".")
        if rest and root in ("variables", "metadata"):
            source = variables if root == "variables" else metadata
            found = source.get(rest)
        elif name in own:
            found = own[name]
        else:
            found = variables.get(name, metadata.get(name))
        return "" if found is None else str(found)

    return _PLACEHOLDER.sub(value, text)
