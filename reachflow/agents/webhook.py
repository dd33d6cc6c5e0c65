"""The webhook agent (``provider: "webhook"``): a dispatch is a signed HTTP POST to the
customer's endpoint, which answers the outcome at once or accepts the call and reports it later
through ``POST /api/v1/agent-calls/{callId}/result``. The protocol, for the customer, is
``docs/agents.md``.

Config:

* ``url`` (required): the endpoint, ``http`` or ``https``;
* ``secret`` (required; generated when an agent is created without one): ``whsec_`` + base64 of
  24 to 64 bytes, the Standard Webhooks key that signs every dispatch and checks signed reports;
* ``timeoutSecs`` (default 10, at most 120): how long connecting, and each wait for the answer's
  bytes, may take;
* ``maxConcurrent``: calls in flight to this agent at once, and ``dispatchesPerSecond``: its
  pace (the dispatcher keeps to both; here they are only checked);
* ``retry``: ``{maxAttempts (1-10, default 5), initialBackoffSecs (above 0, at most 3600,
  default 5), maxBackoffSecs (above 0, at most 86400, default 300)}``, the retry policy of
  transient failures (the dispatcher retries; here it is only checked).

Every HTTP attempt carries a fresh ``webhook-id`` and the same ``Idempotency-Key``: the
step attempt's key, so an endpoint that honours it places each call once however often it is
asked. Connection errors, timeouts, 408, 429 and 5xx are transient (retried); any other
non-2xx, and a 2xx whose body is not a valid answer, is permanent.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from reachflow.agents.http_client import USER_AGENT, SharedHttpClient
from reachflow.agents.port import AgentError, DispatchReceipt, DispatchRequest
from reachflow.agents.results import parse_result
from reachflow.agents.signing import new_secret, sign
from reachflow.domain.errors import ProblemCollector, ValidationFailed

DEFAULT_TIMEOUT_SECS = 10
MAX_TIMEOUT_SECS = 120
DEFAULT_MAX_ATTEMPTS = 5
MAX_ATTEMPTS = 10
#: Bounds of the backoff settings (seconds).
MAX_BACKOFF_SECS = 86_400
#: The fastest pace an agent may ask for (dispatches per second).
MAX_RATE = 10_000
#: The largest answer read from an endpoint; a longer one is a malformed answer.
MAX_ANSWER_BYTES = 1024 * 1024
#: Statuses retried under the same key, besides every 5xx.
TRANSIENT_STATUSES = frozenset({408, 429})
#: Keys of a 2xx body besides the result's own: the agent's id for the call.
ID_KEYS = ("callId", "id")
MAX_ID_LENGTH = 200
#: Secret bytes, as Standard Webhooks recommends.
SECRET_BYTES = (24, 64)
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")


class WebhookAgent(SharedHttpClient):
    """Calls customers' endpoints over one shared HTTP client (a pool of connections, kept
    alive between dispatches, made on first use: ``agents/http_client.py``). Thread-safe: the
    dispatcher calls ``dispatch`` from its pool."""

    def __init__(
        self,
        *,
        client: httpx.Client | None = None,
        wall_clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(client)
        # Signatures carry the real time of sending (receivers check it against their own
        # clock), whatever clock the engine runs on.
        self._wall_clock = wall_clock or (lambda: datetime.now(UTC))

    def dispatch(self, request: DispatchRequest) -> DispatchReceipt:
        config = request.agent_config
        url, secret = config.get("url"), config.get("secret")
        if not isinstance(url, str) or not _is_http_url(url):
            raise AgentError("the agent's config.url is missing or not http(s)", transient=False)
        if not isinstance(secret, str) or not secret:
            raise AgentError(
                "the agent's config.secret is missing: update the agent's config (a secret is "
                "generated when none is given)",
                transient=False,
            )
        body = json.dumps(dispatch_body(request), separators=(",", ":"))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Idempotency-Key": request.idempotency_key,
            **sign(secret, body, self._wall_clock()),
        }
        timeout = _timeout(config)
        try:
            with self.client.stream(
                "POST", url, content=body.encode(), headers=headers, timeout=timeout
            ) as response:
                status = response.status_code
                raw = _read_limited(response) if 200 <= status < 300 else b""
        except httpx.TimeoutException as exc:
            raise AgentError(
                f"POST {_where(url)}: no answer within {timeout:g}s ({type(exc).__name__})"
            ) from exc
        except (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.InvalidURL) as exc:
            # Our request cannot be made to this URL: asking again won't help.
            raise AgentError(
                f"POST {_where(url)}: {type(exc).__name__}: {exc}", transient=False
            ) from exc
        except httpx.HTTPError as exc:  # refused, reset, a broken answer: the network's fault
            raise AgentError(f"POST {_where(url)}: {type(exc).__name__}: {exc}") from exc
        if status >= 500 or status in TRANSIENT_STATUSES:
            raise AgentError(f"POST {_where(url)}: HTTP {status} (transient: retried)")
        if not 200 <= status < 300:
            raise AgentError(
                f"POST {_where(url)}: HTTP {status} (permanent: not retried)", transient=False
            )
        return read_answer(raw, status, request)


def dispatch_body(request: DispatchRequest) -> dict[str, Any]:
    """What an endpoint receives (``docs/agents.md``, "The dispatch")."""
    return {
        "type": "dispatch",
        "callId": request.call_id,
        "idempotencyKey": request.idempotency_key,
        "workflowExecutionId": request.execution_id,
        "stepExecutionId": request.step_execution_id,
        "agentId": request.agent_id,
        "channel": request.channel.value,
        "phoneNumber": request.phone,
        "message": request.message,
        "variables": request.variables,
        "leaveVoicemail": request.leave_voicemail,
        "forwardingPhoneNumber": request.forwarding_phone_number,
        "sequence": request.sequence,
        "callbackUrl": request.callback_url,
        "sentAt": request.now.isoformat(),
    }


def read_answer(raw: bytes, status: int, request: DispatchRequest) -> DispatchReceipt:
    """A 2xx answer: with a ``disposition``, the outcome now; without one, accepted (the result
    comes later). Anything else is a permanent ``AgentError`` naming the problem."""
    prefix = f"the agent's answer (HTTP {status})"
    if not raw.strip():
        return DispatchReceipt(provider_call_id=request.call_id)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AgentError(f"{prefix} is not JSON: {exc}", transient=False) from exc
    if not isinstance(body, dict):
        raise AgentError(f"{prefix} must be a JSON object", transient=False)
    ids: list[str] = []
    for key in ID_KEYS:
        value = body.pop(key, None)
        if value is None:
            continue
        if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_LENGTH:
            raise AgentError(
                f"{prefix} is malformed: {key}: must be a string of 1 to {MAX_ID_LENGTH} "
                "characters",
                transient=False,
            )
        ids.append(value)
    provider_call_id = ids[0] if ids else request.call_id
    if "disposition" not in body:
        return DispatchReceipt(provider_call_id=provider_call_id)
    try:
        result = parse_result(body, provider_call_id, request.now)
    except ValidationFailed as exc:
        problems = "; ".join(f"{p.field}: {p.message}" for p in exc.problems)
        raise AgentError(f"{prefix} is malformed: {problems}", transient=False) from exc
    return DispatchReceipt(provider_call_id=provider_call_id, result=result)


# -- config ------------------------------------------------------------------------------------


def with_secret(config: dict[str, Any], previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """``config`` with a ``secret``: the one given, else the agent's current one (an update that
    leaves it out keeps it), else a new one."""
    if config.get("secret") is not None:
        return config
    kept = (previous or {}).get("secret")
    return {**config, "secret": kept if isinstance(kept, str) and kept else new_secret()}


def check_webhook_config(
    config: dict[str, Any], problems: ProblemCollector, *, path: str = "config"
) -> None:
    """Every problem of a webhook agent's config. Keys not named here are kept as given."""
    url = config.get("url")
    if url is None:
        problems.add(f"{path}.url", "is required: the endpoint dispatches are posted to")
    elif not isinstance(url, str) or len(url) > 2048 or not _is_http_url(url):
        problems.add(f"{path}.url", "must be an http:// or https:// URL of at most 2048 characters")
    secret = config.get("secret")
    if secret is None:
        problems.add(f"{path}.secret", "is required: whsec_ and base64 of 24 to 64 bytes")
    elif not _is_secret(secret):
        problems.add(
            f"{path}.secret", "must be whsec_ and base64 of 24 to 64 bytes (Standard Webhooks)"
        )
    _number(config, "timeoutSecs", problems, path, low=0, high=MAX_TIMEOUT_SECS)
    concurrent = config.get("maxConcurrent")
    if concurrent is not None and (
        isinstance(concurrent, bool) or not isinstance(concurrent, int) or concurrent < 1
    ):
        problems.add(f"{path}.maxConcurrent", "must be an integer >= 1")
    _number(
        config,
        "dispatchesPerSecond",
        problems,
        path,
        low=0,
        high=MAX_RATE,
        unit="a number",
    )
    retry = config.get("retry")
    if retry is None:
        return
    if not isinstance(retry, dict):
        problems.add(f"{path}.retry", "must be an object")
        return
    for key in retry:
        if key not in ("maxAttempts", "initialBackoffSecs", "maxBackoffSecs"):
            problems.add(
                f"{path}.retry.{key}",
                "unknown field; expected maxAttempts, initialBackoffSecs, maxBackoffSecs",
            )
    attempts = retry.get("maxAttempts")
    if attempts is not None and (
        isinstance(attempts, bool)
        or not isinstance(attempts, int)
        or not 1 <= attempts <= MAX_ATTEMPTS
    ):
        problems.add(f"{path}.retry.maxAttempts", f"must be an integer from 1 to {MAX_ATTEMPTS}")
    retry_path = f"{path}.retry"
    initial = _number(retry, "initialBackoffSecs", problems, retry_path, low=0, high=3600)
    most = _number(retry, "maxBackoffSecs", problems, retry_path, low=0)
    if initial is not None and most is not None and most < initial:
        problems.add(f"{retry_path}.maxBackoffSecs", "must be >= initialBackoffSecs")


def _number(
    config: dict[str, Any],
    key: str,
    problems: ProblemCollector,
    path: str,
    *,
    low: float,
    high: float = MAX_BACKOFF_SECS,
    unit: str = "a number of seconds",
) -> float | None:
    value = config.get(key)
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or value != value  # NaN
        or value > high
        or value <= low
    ):
        problems.add(f"{path}.{key}", f"must be {unit} above {low:g}, at most {high:g}")
        return None
    return float(value)


def _is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a port out of range or not a number raises here
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _is_secret(secret: object) -> bool:
    if not isinstance(secret, str) or not secret.startswith("whsec_"):
        return False
    encoded = secret.removeprefix("whsec_")
    if not _BASE64.fullmatch(encoded):
        return False
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    return SECRET_BYTES[0] <= len(key) <= SECRET_BYTES[1]


def _timeout(config: dict[str, Any]) -> float:
    value = config.get("timeoutSecs", DEFAULT_TIMEOUT_SECS)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        return float(DEFAULT_TIMEOUT_SECS)
    return float(min(value, MAX_TIMEOUT_SECS))


def _read_limited(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise AgentError(
                f"the agent's answer is over {MAX_ANSWER_BYTES} bytes", transient=False
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _where(url: str) -> str:
    """The URL without its query and credentials (they may hold secrets) for messages."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "the agent's URL"
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"
