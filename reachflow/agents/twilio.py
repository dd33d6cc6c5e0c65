"""Twilio Messaging for TEXT steps (``provider: "twilio"``), with the official ``twilio`` package.

A dispatch creates a Message (``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``) with a
``StatusCallback`` on this server (``/api/v1/providers/twilio/status?callId=<our call id>``)
and is *accepted*: the outcome arrives later, when Twilio posts the message's final
``MessageStatus`` there (``api/routes/twilio.py`` checks Twilio's signature and reports it).
The customer-facing page is ``docs/agents-twilio.md``; its tables are the ones below.

Config (``check_twilio_config``):

* ``accountSid`` (``AC`` + 32 hex), ``authToken``: always; the token also checks the signature
  Twilio puts on every webhook (``X-Twilio-Signature``), which no API key can;
* ``apiKeySid`` (``SK`` + 32 hex) with ``apiKeySecret``: optional; when given, the REST API is
  called with the key instead of the token;
* ``messagingServiceSid`` (``MG`` + 32 hex) or ``from`` (an E.164 number, a short code or an
  alphanumeric sender id), or both (Twilio then sends from ``from``);
* ``successOn``: ``delivered`` (default) or ``sent``, the status that ends the step ``ENDED``
  (``sent`` for destinations whose carriers give no delivery receipts);
* ``timeoutSecs``: the REST call's timeout (default 15 s).

Errors when sending: a refused connection, a timeout, a 429 and a 5xx are ``AgentError``
(transient: retried under the same key with backoff). A refused number (21211, 21614) is an
outcome at once, ``BAD_NUMBER``; a recipient who unsubscribed at Twilio (21610: they replied
STOP to this sender) is ``COULD_NOT_CONNECT`` with the reply ``STOP``, so the engine opts the
number out as it does for a STOP reply; any other 4xx is ``AgentError`` (not transient: the
step ends ``COULD_NOT_CONNECT``). Twilio's Messages API takes no idempotency key: a request
that timed out after Twilio took it is retried and may send the text twice.

The REST base URL is ``https://api.twilio.com`` (Twilio's own ``TWILIO_EDGE`` and
``TWILIO_REGION`` variables apply); ``base_url`` replaces it, for tests only
(``REACHFLOW_TWILIO_BASE_URL``).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from twilio.base.exceptions import TwilioException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from reachflow.agents.port import (
    AgentCall,
    AgentError,
    AgentResult,
    DispatchReceipt,
    DispatchRequest,
)
from reachflow.domain.enums import Channel, Disposition
from reachflow.domain.errors import ProblemCollector

log = logging.getLogger(__name__)

PROVIDER = "twilio"
#: Where Twilio posts a message's status; ``callId`` names our call.
STATUS_PATH = "/api/v1/providers/twilio/status"
#: Where Twilio posts the contact's replies to the agent's number (``{agentId}``).
INBOUND_PATH = "/api/v1/providers/twilio/inbound/{agentId}"
#: The dispatcher's callback URL ends so; what comes before is this server's public URL.
_CALLBACK_MARK = "/api/v1/agent-calls/"

#: ``MessageStatus`` values that end a message, and what they mean for the step.
DELIVERED_STATUSES = frozenset({"delivered", "read"})
FAILED_STATUSES = frozenset({"undelivered", "failed", "canceled"})
#: Twilio error codes meaning the number cannot take texts at all.
BAD_NUMBER_CODES = frozenset(
    {
        21211,  # invalid 'To' phone number
        21614,  # 'To' is not a valid mobile number
        30005,  # unknown destination handset (the number does not exist)
        30006,  # landline or unreachable carrier
    }
)
#: The recipient replied STOP to this sender at Twilio and is unsubscribed from it.
UNSUBSCRIBED_CODE = 21610
SUCCESS_ON = ("delivered", "sent")
DEFAULT_TIMEOUT_SECS = 15.0

_ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
_API_KEY_SID = re.compile(r"SK[0-9a-fA-F]{32}")
_SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_SHORT_CODE = re.compile(r"[0-9]{3,8}")
_ALPHANUMERIC = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}")


# -- config ---------------------------------------------------------------------------------


def check_twilio_config(config: Mapping[str, Any], problems: ProblemCollector) -> None:
    """Add a problem (``config.<field>``) for each thing a Twilio agent's config lacks."""

    def text(key: str) -> str | None:
        value = config.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            problems.add(f"config.{key}", "must be a non-empty string")
            return None
        return value

    account = text("accountSid")
    if account is None and "accountSid" not in config:
        problems.add("config.accountSid", "is required: the account SID (AC...)")
    elif account is not None and not _ACCOUNT_SID.fullmatch(account):
        problems.add("config.accountSid", "must be AC followed by 32 hex digits")
    if text("authToken") is None and "authToken" not in config:
        problems.add(
            "config.authToken",
            "is required: the account's auth token (it also checks Twilio's webhook signatures)",
        )
    key_sid = text("apiKeySid")
    text("apiKeySecret")
    if key_sid is not None and not _API_KEY_SID.fullmatch(key_sid):
        problems.add("config.apiKeySid", "must be SK followed by 32 hex digits")
    if ("apiKeySid" in config) != ("apiKeySecret" in config):
        missing = "apiKeySid" if "apiKeySecret" in config else "apiKeySecret"
        problems.add(f"config.{missing}", "apiKeySid and apiKeySecret go together")
    service, sender = text("messagingServiceSid"), text("from")
    if "messagingServiceSid" not in config and "from" not in config:
        problems.add("config.from", "give from (the sender) or messagingServiceSid, or both")
    if service is not None and not _SERVICE_SID.fullmatch(service):
        problems.add("config.messagingServiceSid", "must be MG followed by 32 hex digits")
    if sender is not None and not (
        _E164.fullmatch(sender) or _SHORT_CODE.fullmatch(sender) or _ALPHANUMERIC.fullmatch(sender)
    ):
        problems.add(
            "config.from",
            "must be an E.164 number (+14155550123), a short code or an alphanumeric sender id",
        )
    success_on = config.get("successOn")
    if success_on is not None and success_on not in SUCCESS_ON:
        problems.add("config.successOn", f"must be one of {', '.join(SUCCESS_ON)}")
    timeout = config.get("timeoutSecs")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 1 <= timeout <= 60
    ):
        problems.add("config.timeoutSecs", "must be a number of seconds from 1 to 60")


# -- sending --------------------------------------------------------------------------------


class _HttpClient(TwilioHttpClient):
    """Twilio's HTTP client, sending to ``base_url`` instead of Twilio's host when one is set
    (tests), and logging no URL, header or number."""

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__(timeout=timeout, logger=log)
        self.base_url = base_url.rstrip("/")

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        if self.base_url:
            parts = urlsplit(url)
            url = self.base_url + parts.path + (f"?{parts.query}" if parts.query else "")
        return super().request(method, url, *args, **kwargs)

    def log_request(self, kwargs: dict[str, Any]) -> None:
        log.debug("Twilio request: %s", kwargs.get("method"))

    def log_response(self, status_code: int, response: Any) -> None:
        log.debug("Twilio answered HTTP %s", status_code)


class TwilioAgent:
    """Sends a TEXT step's message through Twilio; the outcome comes by status callback."""

    def __init__(self, *, base_url: str = "") -> None:
        self.base_url = base_url
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str, str, float], Client] = {}

    def dispatch(self, request: DispatchRequest) -> DispatchReceipt:
        config = request.agent_config
        if request.channel is not Channel.TEXT:
            raise AgentError("a Twilio agent sends texts only", transient=False)
        if not request.message:
            raise AgentError("a text needs a message (the step's initialMessage)", transient=False)
        callback = status_callback_url(request)
        sender: dict[str, Any] = {}
        if config.get("from"):
            sender["from_"] = config["from"]
        if config.get("messagingServiceSid"):
            sender["messaging_service_sid"] = config["messagingServiceSid"]
        try:
            message = self._client(config).messages.create(
                to=request.phone, body=request.message, status_callback=callback, **sender
            )
        except requests.RequestException as exc:
            raise AgentError(f"Twilio unreachable: {type(exc).__name__}") from exc
        except TwilioException as exc:
            return _refused(request, exc)
        sid = message.sid
        if not sid:
            raise AgentError("Twilio answered without a message SID")
        return DispatchReceipt(provider_call_id=sid)

    def close(self) -> None:
        """Close the HTTP sessions of the clients made so far."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            session = getattr(client.http_client, "session", None)
            if session is not None:
                session.close()

    def _client(self, config: Mapping[str, Any]) -> Client:
        account = str(config.get("accountSid") or "")
        username = str(config.get("apiKeySid") or account)
        password = str(config.get("apiKeySecret") or config.get("authToken") or "")
        timeout = float(config.get("timeoutSecs") or DEFAULT_TIMEOUT_SECS)
        cache_key = (account, username, password, timeout)
        with self._lock:
            client = self._clients.get(cache_key)
            if client is None:
                client = Client(
                    username=username,
                    password=password,
                    account_sid=account,
                    http_client=_HttpClient(self.base_url, timeout),
                )
                self._clients[cache_key] = client
            return client


def status_callback_url(request: DispatchRequest) -> str:
    """This server's status endpoint for ``request``'s call (from the dispatcher's callback
    URL, which starts with ``REACHFLOW_PUBLIC_URL``)."""
    callback = request.callback_url or ""
    if _CALLBACK_MARK not in callback:
        raise AgentError(
            "no public URL for Twilio's status callbacks (set REACHFLOW_PUBLIC_URL)",
            transient=False,
        )
    base = callback.split(_CALLBACK_MARK, 1)[0].rstrip("/")
    return f"{base}{STATUS_PATH}?callId={quote(request.call_id, safe='')}"


def _refused(request: DispatchRequest, exc: TwilioException) -> DispatchReceipt:
    """Twilio answered an error: transient ones raise, a refused number is an outcome."""
    status = getattr(exc, "status", None)
    code = getattr(exc, "code", None)
    # Twilio's messages may quote the number: only the status and code are kept.
    what = f"Twilio refused the message: HTTP {status}, error {code}"
    if not isinstance(status, int) or status == 429 or status >= 500:
        raise AgentError(what, transient=True) from exc
    if code in BAD_NUMBER_CODES:
        return _at_once(request, Disposition.BAD_NUMBER, code)
    if code == UNSUBSCRIBED_CODE:
        return _at_once(request, Disposition.COULD_NOT_CONNECT, code, reply="STOP")
    more = f"https://www.twilio.com/docs/errors/{code}"
    raise AgentError(f"{what} ({more})", transient=False) from exc


def _at_once(
    request: DispatchRequest, disposition: Disposition, code: int, *, reply: str | None = None
) -> DispatchReceipt:
    call = AgentCall(
        id=request.call_id,
        status="failed",
        call_started_at=request.now,
        call_ended_at=request.now,
        call_duration=0,
        call_ended_reason=disposition,
        summary=f"Twilio refused the message: error {code}",
    )
    return DispatchReceipt(
        provider_call_id=request.call_id,
        result=AgentResult(
            disposition=disposition,
            call=call,
            reported_at=request.now,
            reply=reply,
            extra={"twilioErrorCode": code},
        ),
    )


# -- webhooks -------------------------------------------------------------------------------


def signature_valid(auth_token: str, urls: list[str], params: Any, signature: str | None) -> bool:
    """Is ``signature`` (``X-Twilio-Signature``) Twilio's, with ``auth_token``, over one of
    ``urls`` (the URL Twilio requested, as this server's public URL, then as it arrived) and
    the form ``params``?"""
    if not auth_token or not signature:
        return False
    validator = RequestValidator(auth_token)
    return any(validator.validate(url, params, signature) for url in urls)


def status_result(
    params: Mapping[str, str],
    *,
    sent_at: datetime,
    now: datetime,
    success_on: str = "delivered",
) -> AgentResult | None:
    """What a status callback means for the step; None while the message is not final."""
    status = str(params.get("MessageStatus") or params.get("SmsStatus") or "").lower()
    code = _error_code(params.get("ErrorCode"))
    reply: str | None = None
    if status in DELIVERED_STATUSES or (status == "sent" and success_on == "sent"):
        disposition = Disposition.ENDED
        summary = f"Twilio message {status}"
    elif status in FAILED_STATUSES:
        disposition = Disposition.COULD_NOT_CONNECT
        if code in BAD_NUMBER_CODES:
            disposition = Disposition.BAD_NUMBER
        elif code == UNSUBSCRIBED_CODE:
            reply = "STOP"
        summary = f"Twilio message {status}" + (f": error {code}" if code else "")
    else:
        return None
    sid = str(params.get("MessageSid") or params.get("SmsSid") or "")[:200]
    return AgentResult(
        disposition=disposition,
        call=AgentCall(
            id=sid,
            status=status,
            call_started_at=min(sent_at, now),
            call_ended_at=now,
            call_duration=0,
            call_ended_reason=disposition,
            summary=summary,
        ),
        reported_at=now,
        reply=reply,
        extra={"twilioErrorCode": code} if code else {},
    )


def _error_code(raw: object) -> int | None:
    try:
        return int(str(raw)) if raw not in (None, "") else None
    except ValueError:
        return None
