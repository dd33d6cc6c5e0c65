"""What a contact's own words and outcomes do to their suppression and consent records.

Pure: the runtime applies the returned ``ContactReaction`` in the transaction that records the
report. Sources: FCC 24-24 (§ 64.1200(a)(10)) makes a reply of ``stop, quit, end, revoke,
opt out, cancel, unsubscribe`` a revocation per se, and free text with such words is presumed
to revoke; we honour it at once rather than within the 10 business days allowed.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from reachflow.domain.enums import Channel, Disposition

#: Reply words that revoke consent per se (FCC 24-24), plus common variants we also honour.
OPT_OUT_WORDS: tuple[str, ...] = (
    "STOP",
    "QUIT",
    "END",
    "REVOKE",
    "OPT OUT",
    "OPTOUT",
    "CANCEL",
    "UNSUBSCRIBE",
    "STOPALL",
    "NO MAS",
)
_OPT_OUT = re.compile(
    r"\b(" + "|".join(w.replace(" ", r"[\s\-_]*") for w in OPT_OUT_WORDS) + r")\b", re.IGNORECASE
)
#: Dispositions that put the number on the suppression list for every channel.
SUPPRESSING_DISPOSITIONS = frozenset({Disposition.DNC, Disposition.FRAUD})
ALL_CHANNELS = frozenset(Channel)


@dataclass(frozen=True, slots=True)
class ContactReaction:
    suppress: frozenset[Channel] = frozenset()
    consent: frozenset[Channel] = frozenset()
    revoke_consent: frozenset[Channel] = frozenset()
    reason: str = ""
    source: str = ""


def is_opt_out(text: str) -> bool:
    """Does this inbound text revoke consent? Case, accents and punctuation are ignored."""
    plain = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in plain if not unicodedata.combining(ch))
    return _OPT_OUT.search(plain) is not None


def react_to_inbound_text(text: str, *, stop_revokes_all: bool = False) -> ContactReaction | None:
    """An opt-out reply suppresses texts (every channel with ``stop_revokes_all``)."""
    if not is_opt_out(text):
        return None
    channels = ALL_CHANNELS if stop_revokes_all else frozenset({Channel.TEXT})
    return ContactReaction(
        suppress=channels,
        revoke_consent=channels,
        reason=f"opt-out reply: {text.strip()[:80]!r}",
        source="inbound_text",
    )


def react_to_report(
    channel: Channel,
    disposition: Disposition,
    reply: str | None = None,
    *,
    stop_revokes_all: bool = False,
) -> ContactReaction | None:
    """DNC/FRAUD suppress every channel; TEXT_CONSENT records text consent; STOP replies opt out."""
    if disposition in SUPPRESSING_DISPOSITIONS:
        return ContactReaction(
            suppress=ALL_CHANNELS,
            revoke_consent=ALL_CHANNELS,
            reason=f"disposition {disposition.value} on a {channel.value}",
            source="disposition",
        )
    if reply:
        opted_out = react_to_inbound_text(reply, stop_revokes_all=stop_revokes_all)
        if opted_out is not None:
            return opted_out
    if disposition is Disposition.TEXT_CONSENT:
        return ContactReaction(
            consent=frozenset({Channel.TEXT}),
            reason=f"disposition TEXT_CONSENT on a {channel.value}",
            source="disposition",
        )
    return None
