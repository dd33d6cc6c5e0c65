"""A real, seeded, deterministic agent for development, demos and tests.

Config (all optional):

* ``defaultDisposition``: the disposition of every attempt (default ``NO_ANSWER``);
* ``script``: ``{"+14155550123": ["NO_ANSWER", "CALENDLY"]}``: per phone number, the
  dispositions of this agent's 1st, 2nd, ... dispatch in an execution (the last one repeats);
* ``replies``: ``{"+14155550123": [null, "STOP"]}``: per phone number, the text the contact
  sends back after this agent's 1st, 2nd, ... dispatch (null: no reply; the last one repeats);
* ``callbackAt``: ``{"+14155550123": ["2026-03-10T19:00:00Z"]}``: per phone number, when the
  contact asks to be called back on a ``CALL_AGAIN`` after this agent's 1st, 2nd, ... dispatch
  (null: no time named; the last one repeats);
* ``distribution``: ``{"NO_ANSWER": 3, "CALENDLY": 1}`` with ``seed``: a weighted draw, seeded by
  the idempotency key, so a retried dispatch gets the same outcome;
* ``callDurationSecs`` (default 60) for answered calls, ``ringDurationSecs`` (default 30) for
  unanswered ones, ``textDurationSecs`` (default 5) for texts.

``leaveVoicemail`` turns an unanswered call (NO_ANSWER, VOICEMAIL_DETECTED) into LEFT_VOICEMAIL.
The same idempotency key always yields the same receipt, and the agent remembers every key it
has seen. With a ``Ledger`` (the durable one in ``store.simulator_ledger``, wired by bootstrap)
it remembers them across processes and restarts, as a real agent honouring the key would: a
key is placed once, and a re-send gets the stored receipt. ``calls_placed`` counts the
placements this process made, per key.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from reachflow.agents.port import (
    AgentCall,
    AgentError,
    AgentResult,
    DispatchReceipt,
    DispatchRequest,
    receipt_from_json,
    receipt_to_json,
)
from reachflow.domain.enums import UNANSWERED, Channel, Disposition

_CALL_NAMESPACE = uuid.UUID("0c4f5d8e-2b1a-4c6e-9f3d-7a8b9c0d1e2f")
_NOT_CONNECTED = UNANSWERED | {
    Disposition.LINE_BUSY,
    Disposition.COULD_NOT_CONNECT,
    Disposition.BAD_NUMBER,
}


class Ledger(Protocol):
    def place(
        self, entries: Sequence[tuple[str, dict[str, Any]]], now: datetime
    ) -> list[tuple[dict[str, Any], bool]]: ...


class SimulatorAgent:
    def __init__(self, ledger: Ledger | None = None) -> None:
        self._lock = threading.Lock()
        self._ledger = ledger
        self._receipts: dict[str, DispatchReceipt] = {}
        self.calls_placed: Counter[str] = Counter()

    def dispatch(self, request: DispatchRequest) -> DispatchReceipt:
        return self.place([request])[0]

    def dispatch_many(
        self, requests: Sequence[DispatchRequest]
    ) -> list[DispatchReceipt | AgentError]:
        return list(self.place(requests))

    def place(self, requests: Sequence[DispatchRequest]) -> list[DispatchReceipt]:
        if self._ledger is None:
            return [self._place_in_memory(r) for r in requests]
        receipts = [simulate(r) for r in requests]
        entries = [
            (r.idempotency_key, receipt_to_json(receipt))
            for r, receipt in zip(requests, receipts, strict=True)
        ]
        recorded = self._ledger.place(entries, requests[0].now) if requests else []
        answers: list[DispatchReceipt] = []
        with self._lock:
            for (key, _), receipt, (stored, placed) in zip(
                entries, receipts, recorded, strict=True
            ):
                if placed:
                    self.calls_placed[key] += 1
                    answers.append(receipt)
                else:  # placed before, maybe by another process: the receipt on record
                    answers.append(receipt_from_json(stored))
        return answers

    def _place_in_memory(self, request: DispatchRequest) -> DispatchReceipt:
        with self._lock:
            seen = self._receipts.get(request.idempotency_key)
            if seen is not None:
                return seen
            receipt = simulate(request)
            self._receipts[request.idempotency_key] = receipt
            self.calls_placed[request.idempotency_key] += 1
            return receipt


def choose_disposition(config: dict[str, Any], request: DispatchRequest) -> Disposition:
    script = config.get("script") or {}
    scripted = script.get(request.phone)
    if scripted:
        return Disposition(scripted[min(request.sequence, len(scripted)) - 1])
    distribution = config.get("distribution")
    if distribution:
        rng = random.Random(f"{config.get('seed', 0)}:{request.idempotency_key}")
        names = sorted(distribution)
        weights = [float(distribution[n]) for n in names]
        return Disposition(rng.choices(names, weights=weights, k=1)[0])
    return Disposition(config.get("defaultDisposition", Disposition.NO_ANSWER.value))


def choose_reply(config: dict[str, Any], request: DispatchRequest) -> str | None:
    scripted = (config.get("replies") or {}).get(request.phone)
    if not scripted:
        return None
    reply = scripted[min(request.sequence, len(scripted)) - 1]
    return str(reply) if reply else None


def choose_callback(
    config: dict[str, Any], request: DispatchRequest, disposition: Disposition
) -> datetime | None:
    scripted = (config.get("callbackAt") or {}).get(request.phone)
    if disposition is not Disposition.CALL_AGAIN or not scripted:
        return None
    named = scripted[min(request.sequence, len(scripted)) - 1]
    return datetime.fromisoformat(str(named).replace("Z", "+00:00")) if named else None


def simulate(request: DispatchRequest) -> DispatchReceipt:
    config = request.agent_config
    disposition = original = choose_disposition(config, request)
    if request.leave_voicemail and request.channel is Channel.CALL and disposition in UNANSWERED:
        disposition = Disposition.LEFT_VOICEMAIL
    if request.channel is Channel.TEXT:
        seconds = int(config.get("textDurationSecs", 5))
        status = "delivered"
    elif original in _NOT_CONNECTED:
        seconds = int(config.get("ringDurationSecs", 30))
        status = "no-answer" if original in UNANSWERED else "failed"
    else:
        seconds = int(config.get("callDurationSecs", 60))
        status = "completed"
    if disposition is Disposition.LEFT_VOICEMAIL:
        seconds += 20
        status = "completed"
    call_id = str(uuid.uuid5(_CALL_NAMESPACE, request.idempotency_key))
    ended = request.now + timedelta(seconds=seconds)
    answered = status == "completed"
    call = AgentCall(
        id=call_id,
        status=status,
        call_started_at=request.now,
        call_ended_at=ended,
        call_duration=seconds,
        call_ended_reason=disposition,
        recording_url=f"simulator://recordings/{call_id}" if answered else None,
        summary=f"Simulated {request.channel.value.lower()}: {disposition.value}",
    )
    return DispatchReceipt(
        provider_call_id=call_id,
        result=AgentResult(
            disposition=disposition,
            call=call,
            reported_at=ended,
            reply=choose_reply(config, request),
            callback_at=choose_callback(config, request, disposition),
        ),
    )
