"""What replies and outcomes do to suppression and consent (FCC 24-24 opt-out words)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reachflow.domain.compliance.reactions import (
    OPT_OUT_WORDS,
    is_opt_out,
    react_to_inbound_text,
    react_to_report,
)
from reachflow.domain.enums import Channel, Disposition


@pytest.mark.parametrize(
    "text",
    [
        "STOP",
        "stop",
        "Stop.",
        " quit ",
        "END",
        "revoke",
        "Opt out",
        "opt-out",
        "OPTOUT",
        "Cancel",
        "unsubscribe",
        "Please stop texting me",
        "No más",
        "STOPALL",
    ],
)
def test_opt_out_words_revoke(text: str) -> None:
    assert is_opt_out(text)


@pytest.mark.parametrize(
    "text",
    ["", "Sounds good", "weekend works", "ended up busy", "unstoppable", "cancellation fee?"],
)
def test_other_words_do_not(text: str) -> None:
    assert not is_opt_out(text)


@given(
    word=st.sampled_from(OPT_OUT_WORDS),
    before=st.sampled_from(["", "ok ", "Please "]),
    after=st.sampled_from(["", "!", " now", " thanks"]),
    upper=st.booleans(),
)
def test_any_opt_out_word_in_any_case_and_context_revokes(
    word: str, before: str, after: str, upper: bool
) -> None:
    text = f"{before}{word}{after}"
    assert is_opt_out(text.upper() if upper else text.lower())


def test_stop_suppresses_texts_or_everything_with_revoke_all() -> None:
    texts = react_to_inbound_text("STOP")
    assert texts is not None
    assert texts.suppress == frozenset({Channel.TEXT})
    everything = react_to_inbound_text("STOP", stop_revokes_all=True)
    assert everything is not None
    assert everything.suppress == frozenset(Channel)
    assert react_to_inbound_text("hello") is None


@pytest.mark.parametrize("disposition", [Disposition.DNC, Disposition.FRAUD])
def test_dnc_and_fraud_suppress_every_channel(disposition: Disposition) -> None:
    reaction = react_to_report(Channel.CALL, disposition)
    assert reaction is not None
    assert reaction.suppress == frozenset(Channel)
    assert reaction.source == "disposition"


def test_text_consent_and_replies() -> None:
    consent = react_to_report(Channel.CALL, Disposition.TEXT_CONSENT)
    assert consent is not None
    assert consent.consent == frozenset({Channel.TEXT})
    assert not consent.suppress
    stop = react_to_report(Channel.TEXT, Disposition.ENDED, "stop")
    assert stop is not None
    assert stop.suppress == frozenset({Channel.TEXT})
    assert react_to_report(Channel.TEXT, Disposition.ENDED, "thanks") is None
    assert react_to_report(Channel.CALL, Disposition.NO_ANSWER) is None
