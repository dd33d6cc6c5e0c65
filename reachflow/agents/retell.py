"""The Retell agent (``provider: "retell"``, CALL only): a dispatch places an outbound call with
Retell's ``POST /v2/create-phone-call``; Retell reports the call's end to
``POST /api/v1/providers/retell/webhook/{agentId}`` (``api.routes.retell``), signed with the
account's API key, and ``agents.retell_mapping`` reads it. The customer's guide is
``docs/agents-retell.md``.

Config:

* ``apiKey`` (required): the Retell API key; it authenticates our calls to Retell and checks
  the ``x-retell-signature`` of its webhooks (use a key with the webhook badge);
* ``agentId`` (required): the Retell agent that talks (sent as ``override_agent_id``);
* ``fromNumber`` (required): a number of the Retell account, E.164;
* ``waitForAnalysis`` (default true): a conversation's step finishes at ``call_analyzed``
  (its post-call analysis can name the disposition), else at ``call_ended``;
* ``timeoutSecs`` (default 10, at most 120): how long connecting to Retell, and each wait for
  its answer, may take;
* ``maxConcurrent``: calls in flight to Retell at once (the dispatcher bounds them).

The request carries ``metadata`` {``callId``, ``idempotencyKey``, ``workflowExecutionId``,
``stepExecutionId``, ``leaveVoicemail``}, which Retell returns in every webhook, and the step's
variables as ``retell_llm_dynamic_variables`` (strings). Connection errors, timeouts, 429 and
5xx are transient (the dispatcher retries under the same key); any other non-2xx is permanent.
Retell takes no idempotency key: a retry after a failure whose request did reach Retell (a
timeout waiting for the answer, a 5xx after the call was placed) can place a second call. Both
carry the same ``metadata.callId``, so only one report counts.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any

import httpx

from reachflow.agents.http_client import SharedHttpClient
from reachflow.agents.port import AgentError, DispatchReceipt, DispatchRequest
from reachflow.domain.enums import Channel
from reachflow.domain.errors import ProblemCollector

PROVIDER = "retell"
DEFAULT_BASE_URL = "https://api.retellai.com"
CREATE_PHONE_CALL = "/v2/create-phone-call"
DEFAULT_TIMEOUT_SECS = 10
MAX_TIMEOUT_SECS = 120
#: How far a webhook's signed timestamp may be from now (Retell's SDK allows 5 minutes).
SIGNATURE_TOLERANCE_MS = 5 * 60 * 1000
SIGNATURE_HEADER = "x-retell-signature"
TRANSIENT_STATUSES = frozenset({408, 429})
MAX_ANSWER_BYTES = 1024 * 1024
MAX_CONFIG_TEXT = 200
E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_SIGNATURE = re.compile(r"v=([0-9]{1,16}),d=([0-9a-f]{64})")
#: Digit runs long enough to be a phone number, masked in error texts we keep.
_NUMBER = re.compile(r"\+?[0-9][0-9 ()\-]{5,}[0-9]")


class BadSignature(Exception):
    """Why a Retell webhook's signature was refused."""


def signature(api_key: str, body: bytes, timestamp_ms: int) -> str:
    """``x-retell-signature`` for ``body`` sent at ``timestamp_ms``: ``v=<ms>,d=<hex>``, the
    HMAC-SHA256 under the API key of the raw body followed by the timestamp's digits."""
    digest = hmac.new(api_key.encode(), body + str(timestamp_ms).encode(), hashlib.sha256)
    return f"v={timestamp_ms},d={digest.hexdigest()}"


def verify_signature(
    api_key: str,
    header: str | None,
    body: bytes,
    *,
    now_ms: int,
    tolerance_ms: int = SIGNATURE_TOLERANCE_MS,
) -> None:
    """Check ``header`` (``x-retell-signature``) over the raw ``body``; ``BadSignature`` says why
    it is refused: missing, malformed, stale (``tolerance_ms`` from ``now_ms``) or wrong."""
    if not api_key:
        raise BadSignature("the agent has no config.apiKey to check it with")
    if not header:
        raise BadSignature(f"no {SIGNATURE_HEADER} header")
    match = _SIGNATURE.fullmatch(header.strip())
    if match is None:
        raise BadSignature("malformed: expected v=<timestamp ms>,d=<hex digest>")
    timestamp = int(match.group(1))
    if abs(now_ms - timestamp) > tolerance_ms:
        raise BadSignature("stale: its timestamp is more than 5 minutes from now")
    expected = signature(api_key, body, timestamp)
    if not hmac.compare_digest(expected.encode(), header.strip().encode()):
        raise BadSignature("it does not match the body")


class RetellAgent(SharedHttpClient):
    """Places calls through Retell's API over one shared HTTP client (made on first use:
    ``agents/http_client.py``). Thread-safe: the dispatcher calls ``dispatch`` from its pool."""

    def __init__(
        self, *, base_url: str = DEFAULT_BASE_URL, client: httpx.Client | None = None
    ) -> None:
        super().__init__(client)
        self.base_url = base_url.rstrip("/")

    def dispatch(self, request: DispatchRequest) -> DispatchReceipt:
        if request.channel is not Channel.CALL:
            raise AgentError("a Retell agent places calls only (CALL steps)", transient=False)
        config = request.agent_config
        problems = ProblemCollector()
        check_retell_config(config, problems)
        if problems.problems:
            first = problems.problems[0]
            raise AgentError(
                f"the agent's Retell config is unusable: {first.field}: {first.message}",
                transient=False,
            )
        url = self.base_url + CREATE_PHONE_CALL
        timeout = _timeout(config)
        headers = {
            "Authorization": f"Bearer {config['apiKey']}",
            "Content-Type": "application/json",
        }
        body = json.dumps(create_phone_call_body(request), separators=(",", ":")).encode()
        try:
            with self.client.stream(
                "POST", url, content=body, headers=headers, timeout=timeout
            ) as response:
                status = response.status_code
                raw = _read_limited(response)
        except httpx.TimeoutException as exc:
            raise AgentError(
                f"Retell create-phone-call: no answer within {timeout:g}s ({type(exc).__name__})"
            ) from exc
        except (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.InvalidURL) as exc:
            raise AgentError(
                f"Retell create-phone-call: {type(exc).__name__}", transient=False
            ) from exc
        except httpx.HTTPError as exc:  # refused, reset, a broken answer
            raise AgentError(f"Retell create-phone-call: {type(exc).__name__}") from exc
        if status >= 500 or status in TRANSIENT_STATUSES:
            raise AgentError(
                f"Retell create-phone-call: HTTP {status}{_message(raw)} (transient: retried)"
            )
        if not 200 <= status < 300:
            raise AgentError(
                f"Retell create-phone-call: HTTP {status}{_message(raw)} (permanent: not retried)",
                transient=False,
            )
        return DispatchReceipt(provider_call_id=_call_id(raw, status))


def create_phone_call_body(request: DispatchRequest) -> dict[str, Any]:
    """What Retell's ``POST /v2/create-phone-call`` receives for ``request``."""
    config = request.agent_config
    return {
        "from_number": config["fromNumber"],
        "to_number": request.phone,
        "override_agent_id": config["agentId"],
        "metadata": {
            "callId": request.call_id,
            "idempotencyKey": request.idempotency_key,
            "workflowExecutionId": request.execution_id,
            "stepExecutionId": request.step_execution_id,
            "leaveVoicemail": request.leave_voicemail,
        },
        "retell_llm_dynamic_variables": dynamic_variables(request.variables),
    }


def dynamic_variables(variables: dict[str, Any]) -> dict[str, str]:
    """The step's variables as Retell's dynamic variables, which are strings: text as is,
    true/false, numbers as written, other values as compact JSON; null ones are left out."""
    out: dict[str, str] = {}
    for name, value in variables.items():
        if value is None:
            continue
        if isinstance(value, str):
            out[str(name)] = value
        elif isinstance(value, bool):
            out[str(name)] = "true" if value else "false"
        elif isinstance(value, int | float):
            out[str(name)] = str(value)
        else:
            out[str(name)] = json.dumps(value, separators=(",", ":"), default=str)
    return out


def check_retell_config(config: dict[str, Any], problems: ProblemCollector) -> None:
    """Problems of a Retell agent's ``config``, added under ``config.<key>``."""
    for key in ("apiKey", "agentId"):
        value = config.get(key)
        if not isinstance(value, str) or not value.strip():
            problems.add(f"config.{key}", "is required: a non-empty string")
        elif len(value) > MAX_CONFIG_TEXT or any(c.isspace() for c in value):
            problems.add(
                f"config.{key}", f"must be at most {MAX_CONFIG_TEXT} characters, no spaces"
            )
    number = config.get("fromNumber")
    if not isinstance(number, str) or not E164.fullmatch(number):
        problems.add("config.fromNumber", "is required: a number in E.164 (+14155550123)")
    wait = config.get("waitForAnalysis")
    if wait is not None and not isinstance(wait, bool):
        problems.add("config.waitForAnalysis", "must be true or false")
    timeout = config.get("timeoutSecs")
    if timeout is not None and (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 0 < timeout <= MAX_TIMEOUT_SECS
    ):
        problems.add("config.timeoutSecs", f"must be a number of seconds, 0 to {MAX_TIMEOUT_SECS}")
    bound = config.get("maxConcurrent")
    if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int) or bound < 1):
        problems.add("config.maxConcurrent", "must be an integer >= 1")


def wait_for_analysis(config: dict[str, Any]) -> bool:
    return config.get("waitForAnalysis", True) is not False


def _timeout(config: dict[str, Any]) -> float:
    value = config.get("timeoutSecs")
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return float(DEFAULT_TIMEOUT_SECS)
    return float(min(value, MAX_TIMEOUT_SECS))


def _read_limited(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _call_id(raw: bytes, status: int) -> str:
    """Retell's ``call_id`` from a 2xx answer. Without one the call may still have been
    placed, so this is permanent (no second call), not retried."""
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = None
    call_id = answer.get("call_id") if isinstance(answer, dict) else None
    if not isinstance(call_id, str) or not call_id or len(call_id) > MAX_CONFIG_TEXT:
        raise AgentError(
            f"Retell create-phone-call: HTTP {status} without a call_id", transient=False
        )
    return call_id


def _message(raw: bytes) -> str:
    """Retell's error message, if any, short and with phone numbers masked."""
    try:
        answer = json.loads(raw)
    except ValueError:
        return ""
    message = answer.get("message") if isinstance(answer, dict) else None
    if not isinstance(message, str) or not message:
        return ""
    return f": {_NUMBER.sub('[number]', message)[:200]}"
