"""Retell's account of a finished call, read as ours: which webhook finishes the step, the
disposition (one table from ``disconnection_reason``, refined by ``call_analysis`` for a
conversation) and seed 000's ``agentCall`` from Retell's call object. Pure: no I/O, no clock
(``now`` is given), and total: any JSON a webhook carries maps to a Disposition.

The table (``REASONS``; ``docs/agents-retell.md`` shows it and a test keeps the two equal).
Each reason has a *kind*:

* ``not_connected``: nobody was reached. The disposition is the table's; the analysis is never
  read (there was no conversation to analyse).
* ``machine``: a machine answered. ``voicemail_reached`` (the Retell agent's voicemail option
  handled it) is ``LEFT_VOICEMAIL`` when the step asked for a voicemail (``leaveVoicemail``, sent
  in the call's metadata) and ``VOICEMAIL_DETECTED`` otherwise; the others are the table's.
* ``conversation``: the call connected. The disposition is, first that applies:

  1. ``call_analysis.custom_analysis_data.disposition``, when it names one of our dispositions
     (define a post-call analysis field ``disposition`` in Retell: an enum of our names, such
     as ``CALENDLY``, ``NOT_INTERESTED``, ``DNC``, ``CALL_AGAIN``);
  2. ``call_analysis.in_voicemail`` true: as ``voicemail_reached`` above;
  3. the table's.

  ``user_sentiment`` and ``call_successful`` never decide the disposition (a frustrated contact
  is not a request to stop calling); they are kept in the result's ``extra``.

``error_*`` reasons (Retell's or the agent's failures) are ``conversation`` with
``COULD_NOT_CONNECT`` when the call had connected (a start time and a duration above zero), else
``not_connected``. A reason the table does not know (Retell adds reasons over time), or none, is
``conversation`` / ``ENDED`` when the call connected and ``not_connected`` /
``COULD_NOT_CONNECT`` when it did not.

Which webhook finishes the step (``finishing``): with ``waitForAnalysis`` (the agent config's,
default true), ``call_ended`` finishes a call that reached nobody or a machine (the analysis
cannot change those) and ``call_analyzed`` finishes a conversation; ``call_ended`` of a
conversation is acknowledged and waits for its analysis. Without it, ``call_ended`` finishes
every call and ``call_analyzed`` maps to the same disposition (the analysis is not read), so it
is a duplicate, or the report when ``call_ended`` never arrived. Any other event
(``call_started``, ``transcript_updated``, transfers) finishes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from reachflow.agents.port import AgentCall, AgentResult
from reachflow.domain.enums import Disposition
from reachflow.domain.instants import EARLIEST, LATEST

CALL_ENDED = "call_ended"
CALL_ANALYZED = "call_analyzed"
#: The longest call we record, as the result callback does (seconds).
MAX_DURATION_SECS = 86_400
#: Bounds of what ``agentCall`` keeps (as ``POST /api/v1/agent-calls/{callId}/result``).
MAX_ID, MAX_STATUS, MAX_URL, MAX_SUMMARY = 200, 64, 2048, 20_000
_EARLIEST_MS = int(EARLIEST.timestamp() * 1000)
_LATEST_MS = int(LATEST.timestamp() * 1000)


class Kind(StrEnum):
    NOT_CONNECTED = "not_connected"
    MACHINE = "machine"
    CONVERSATION = "conversation"


@dataclass(frozen=True, slots=True)
class Rule:
    kind: Kind
    disposition: Disposition
    why: str


_D = Disposition
_NC, _M, _C = Kind.NOT_CONNECTED, Kind.MACHINE, Kind.CONVERSATION

#: Retell's ``disconnection_reason`` -> (kind, disposition). The one table.
REASONS: dict[str, Rule] = {
    # The call connected and ended as calls do.
    "user_hangup": Rule(_C, _D.ENDED, "the contact hung up"),
    "agent_hangup": Rule(_C, _D.ENDED, "the agent ended the call"),
    "call_transfer": Rule(_C, _D.WARM_TRANSFER, "the agent transferred the call"),
    "transfer_bridged": Rule(_C, _D.WARM_TRANSFER, "a transfer connected"),
    "transfer_cancelled": Rule(_C, _D.ENDED, "a transfer was tried and did not connect"),
    "max_duration_reached": Rule(_C, _D.ENDED, "the call reached its maximum duration"),
    "manual_stopped": Rule(_C, _D.ENDED, "the call was stopped from Retell"),
    "inactivity": Rule(_C, _D.SILENCE_TIMEOUT, "nobody spoke for end_call_after_silence_ms"),
    # A machine answered.
    "voicemail_reached": Rule(_M, _D.VOICEMAIL_DETECTED, "voicemail answered"),
    "machine_detected": Rule(_M, _D.VOICEMAIL_DETECTED, "a machine answered; the call dropped"),
    "ivr_reached": Rule(_M, _D.NO_ANSWER, "a phone menu (IVR) answered; no person reached"),
    # Nobody was reached.
    "dial_no_answer": Rule(_NC, _D.NO_ANSWER, "nobody answered"),
    "user_declined": Rule(_NC, _D.NO_ANSWER, "the contact declined the call"),
    "dial_busy": Rule(_NC, _D.LINE_BUSY, "the line was busy"),
    "invalid_destination": Rule(_NC, _D.BAD_NUMBER, "the number is invalid"),
    "dial_failed": Rule(_NC, _D.COULD_NOT_CONNECT, "dialing failed (no or unknown SIP code)"),
    "marked_as_spam": Rule(_NC, _D.COULD_NOT_CONNECT, "the caller number is marked as spam"),
    "telephony_provider_permission_denied": Rule(
        _NC, _D.COULD_NOT_CONNECT, "the SIP trunk refused our credentials"
    ),
    "telephony_provider_unavailable": Rule(
        _NC, _D.COULD_NOT_CONNECT, "the telephony provider is unavailable"
    ),
    "sip_routing_error": Rule(
        _NC, _D.COULD_NOT_CONNECT, "SIP routing looped or took too many hops"
    ),
    "concurrency_limit_reached": Rule(
        _NC, _D.COULD_NOT_CONNECT, "the Retell account's concurrency limit was reached"
    ),
    "no_valid_payment": Rule(_NC, _D.COULD_NOT_CONNECT, "the Retell account has no valid payment"),
    "scam_detected": Rule(_NC, _D.COULD_NOT_CONNECT, "Retell blocked the agent (scam detected)"),
    "registered_call_timeout": Rule(_NC, _D.COULD_NOT_CONNECT, "the call never started"),
    "error_user_not_joined": Rule(_NC, _D.COULD_NOT_CONNECT, "the call never started"),
    "error_inbound_webhook": Rule(_NC, _D.COULD_NOT_CONNECT, "an inbound webhook failed"),
}
#: ``error_*`` reasons: Retell's or the agent's failure.
ERROR_RULE = Rule(_C, _D.COULD_NOT_CONNECT, "Retell or the agent failed (error_*)")
#: A reason not in the table, for a call that connected / did not.
UNKNOWN_CONNECTED = Rule(_C, _D.ENDED, "a reason not in this table, after the call connected")
UNKNOWN_NOT_CONNECTED = Rule(_NC, _D.COULD_NOT_CONNECT, "a reason not in this table, or none")
#: The ``error_*`` reasons Retell documents (the prefix rule covers new ones too).
ERROR_REASONS = (
    "error_llm_websocket_open",
    "error_llm_websocket_lost_connection",
    "error_llm_websocket_runtime",
    "error_llm_websocket_corrupt_payload",
    "error_frontend_corrupted_payload",
    "error_twilio",
    "error_no_audio_received",
    "error_asr",
    "error_retell",
    "error_unknown",
)


def rule_of(reason: object, connected: bool) -> Rule:
    """The table's rule for ``reason`` (any value; a call that ``connected`` or not)."""
    if isinstance(reason, str):
        found = REASONS.get(reason)
        if found is not None:
            return found
        if reason.startswith("error_"):
            return ERROR_RULE if connected else UNKNOWN_NOT_CONNECTED
    return UNKNOWN_CONNECTED if connected else UNKNOWN_NOT_CONNECTED


def disposition_of(
    reason: object, analysis: object, *, leave_voicemail: bool, connected: bool
) -> Disposition:
    """The disposition of a call that ended for ``reason`` (``analysis``: its
    ``call_analysis``, or None when it is not to be read)."""
    rule = rule_of(reason, connected)
    voicemail = _D.LEFT_VOICEMAIL if leave_voicemail else _D.VOICEMAIL_DETECTED
    if rule.kind is Kind.NOT_CONNECTED:
        return rule.disposition
    if rule.kind is Kind.MACHINE:
        return voicemail if reason == "voicemail_reached" else rule.disposition
    if isinstance(analysis, dict):
        named = _named_disposition(analysis.get("custom_analysis_data"))
        if named is not None:
            return named
        if analysis.get("in_voicemail") is True:
            return voicemail
    return rule.disposition


def finishing(event: object, call: dict[str, Any], *, wait_for_analysis: bool) -> bool:
    """Whether webhook ``event`` about ``call`` finishes the step (the module says when)."""
    if event == CALL_ANALYZED:
        return True
    if event != CALL_ENDED:
        return False
    if not wait_for_analysis:
        return True
    rule = rule_of(call.get("disconnection_reason"), connected(call))
    return rule.kind is not Kind.CONVERSATION


def read_event(
    event: object,
    call: dict[str, Any],
    *,
    wait_for_analysis: bool,
    now: datetime,
    our_call_id: str = "",
) -> AgentResult | None:
    """The result webhook ``event`` reports about Retell's ``call`` object, or None when this
    event does not finish the step (``our_call_id``: the ``agentCall.id`` when Retell's
    ``call_id`` is unusable)."""
    if not finishing(event, call, wait_for_analysis=wait_for_analysis):
        return None
    analysis = call.get("call_analysis")
    read_analysis = event == CALL_ANALYZED and wait_for_analysis
    disposition = disposition_of(
        call.get("disconnection_reason"),
        analysis if read_analysis else None,
        leave_voicemail=leave_voicemail_of(call),
        connected=connected(call),
    )
    return AgentResult(
        disposition=disposition,
        call=agent_call(call, disposition, now, our_call_id),
        reported_at=now,
        extra=_extra(call),
    )


def agent_call(
    call: dict[str, Any], disposition: Disposition, now: datetime, our_call_id: str = ""
) -> AgentCall:
    """Seed 000's ``agentCall`` from Retell's call object: its ``call_id``, ``call_status``,
    ``start_timestamp`` / ``end_timestamp`` (ms), ``duration_ms`` (rounded to seconds),
    ``recording_url`` and ``call_analysis.call_summary`` (cut to ``MAX_SUMMARY``)."""
    started = _instant_ms(call.get("start_timestamp"))
    ended = _instant_ms(call.get("end_timestamp"))
    seconds = duration_secs(call)
    start = started or ended or now
    analysis = call.get("call_analysis")
    summary = analysis.get("call_summary") if isinstance(analysis, dict) else None
    return AgentCall(
        id=_text(call.get("call_id"), MAX_ID) or our_call_id,
        status=_text(call.get("call_status"), MAX_STATUS) or "ended",
        call_started_at=start,
        call_ended_at=ended if ended and ended >= start else start + timedelta(seconds=seconds),
        call_duration=seconds,
        call_ended_reason=disposition,
        recording_url=_text(call.get("recording_url"), MAX_URL),
        summary=summary[:MAX_SUMMARY] if isinstance(summary, str) and summary else None,
    )


def connected(call: dict[str, Any]) -> bool:
    """The call was answered: it has a start time and lasted more than zero."""
    return _instant_ms(call.get("start_timestamp")) is not None and duration_secs(call) > 0


def duration_secs(call: dict[str, Any]) -> int:
    """``duration_ms`` (else end minus start) in whole seconds, rounded, 0 to a day."""
    ms = _int(call.get("duration_ms"))
    if ms is None:
        start, end = _int(call.get("start_timestamp")), _int(call.get("end_timestamp"))
        ms = end - start if start is not None and end is not None else 0
    return min(max((ms + 500) // 1000, 0), MAX_DURATION_SECS)


def leave_voicemail_of(call: dict[str, Any]) -> bool:
    metadata = call.get("metadata")
    return isinstance(metadata, dict) and metadata.get("leaveVoicemail") is True


def _named_disposition(custom: object) -> Disposition | None:
    if not isinstance(custom, dict):
        return None
    name = custom.get("disposition")
    if not isinstance(name, str):
        return None
    try:
        return Disposition(name.strip().upper())
    except ValueError:
        return None


def _extra(call: dict[str, Any]) -> dict[str, Any]:
    analysis = call.get("call_analysis")
    extra: dict[str, Any] = {"provider": "retell"}
    reason = call.get("disconnection_reason")
    if isinstance(reason, str):
        extra["disconnectionReason"] = reason[:100]
    if isinstance(analysis, dict):
        sentiment = analysis.get("user_sentiment")
        if isinstance(sentiment, str):
            extra["userSentiment"] = sentiment[:40]
        if isinstance(analysis.get("call_successful"), bool):
            extra["callSuccessful"] = analysis["call_successful"]
    return extra


def _int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if value != value or value in (float("inf"), float("-inf")):  # NaN, infinities
        return None
    return int(value)


def _instant_ms(value: object) -> datetime | None:
    ms = _int(value)
    if ms is None or not _EARLIEST_MS <= ms <= _LATEST_MS:
        return None
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def _text(value: object, limit: int) -> str | None:
    return value if isinstance(value, str) and value and len(value) <= limit else None
