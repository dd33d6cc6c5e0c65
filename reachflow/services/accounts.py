"""Organizations, API keys and agents as application services."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import replace
from typing import Any

from reachflow.agents.retell import check_retell_config
from reachflow.agents.twilio import check_twilio_config
from reachflow.agents.webhook import check_webhook_config, with_secret
from reachflow.domain.enums import Channel, Disposition
from reachflow.domain.errors import (
    Conflict,
    Forbidden,
    NotFound,
    ProblemCollector,
    Unauthorized,
)
from reachflow.domain.instants import BadInstant, parse_iso_instant
from reachflow.runtime.clock import Clock
from reachflow.services.idempotency import Claim
from reachflow.services.validation import (
    DEFAULT_LIMITS,
    FieldLimits,
    check_size,
    start_validation,
)
from reachflow.store.accounts import ApiKeyRecord
from reachflow.store.records import AgentRecord
from reachflow.store.store import Store

PROVIDERS = ("simulator", "webhook", "twilio", "retell")
#: A key's scope: ``organization`` reaches its organization's API; ``admin`` that, and the
#: operator's endpoints (``/metrics``).
ORGANIZATION_SCOPE = "organization"
ADMIN_SCOPE = "admin"
#: ``publishable``: safe to ship in a browser; it only starts public executions (seed 004).
PUBLISHABLE_SCOPE = "publishable"
SCOPES = (ORGANIZATION_SCOPE, ADMIN_SCOPE, PUBLISHABLE_SCOPE)
AGENT_FIELDS = ("name", "channel", "provider", "config")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class AccountService:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def create_api_key(
        self, organization: str, *, scope: str = ORGANIZATION_SCOPE
    ) -> tuple[str, str]:
        """A new key for ``organization`` (created if needed); returns (org id, key)."""
        if scope not in SCOPES:
            raise ValueError(f"unknown key scope {scope!r}")
        # A publishable key says so in its prefix (``rf_pk_``), so it is told apart at a glance.
        key = ("rf_pk_" if scope == PUBLISHABLE_SCOPE else "rf_") + secrets.token_urlsafe(32)
        now = self.clock.now()
        with self.store.db.begin() as conn:
            org_id = self.store.accounts.ensure_organization(conn, organization, now)
            self.store.accounts.insert_api_key(
                conn, org_id, hash_key(key), key[:10], now, scope=scope
            )
        return org_id, key

    def identify(self, key: str | None) -> ApiKeyRecord:
        """The unrevoked key ``key`` is, or Unauthorized. The stored hash is compared in
        constant time."""
        if not key:
            raise Unauthorized("missing API key: send X-API-Key or Authorization: Bearer")
        given = hash_key(key)
        with self.store.db.read() as conn:
            found = self.store.accounts.find_key_by_hash(conn, given)
        if found is None:
            raise Unauthorized("unknown API key")
        record, stored = found
        if not hmac.compare_digest(stored.encode(), given.encode()):
            raise Unauthorized("unknown API key")
        if record.revoked_at is not None:
            raise Unauthorized("revoked API key")
        return record

    def authenticate(self, key: str | None) -> str:
        """The organization of an unrevoked secret key, or Unauthorized; a publishable key
        is Forbidden (it reaches the public execution endpoint only)."""
        record = self.identify(key)
        if record.scope == PUBLISHABLE_SCOPE:
            raise Forbidden(
                "a publishable key only starts public executions "
                "(POST /v1/public/workflows/{id}/executions)"
            )
        return record.organization_id

    def authorize_admin(self, key: str | None) -> ApiKeyRecord:
        """An unrevoked key of the admin scope: Unauthorized without one, Forbidden for a key
        of another scope."""
        record = self.identify(key)
        if record.scope != ADMIN_SCOPE:
            raise Forbidden("this needs an admin key (reachflow api-key create --admin)")
        return record

    def list_api_keys(self, organization: str | None = None) -> list[ApiKeyRecord]:
        """Every key, or the keys of the organization named ``organization``."""
        with self.store.db.read() as conn:
            org_id = None
            if organization is not None:
                org_id = self.store.accounts.find_organization(conn, organization)
                if org_id is None:
                    raise NotFound(f"no organization named {organization!r}", field="org")
            return self.store.accounts.list_api_keys(conn, org_id)

    def revoke_api_key(self, prefix: str) -> ApiKeyRecord:
        """Revoke the one key whose prefix starts with ``prefix``; returns it as revoked. A key
        already revoked keeps its first ``revoked_at``. NotFound when no key matches, Conflict
        when more than one does."""
        if not prefix:
            raise NotFound("give a key prefix (reachflow api-key list shows them)", field="prefix")
        with self.store.db.begin() as conn:
            found = self.store.accounts.find_api_keys_by_prefix(conn, prefix)
            if not found:
                raise NotFound(f"no API key has the prefix {prefix!r}", field="prefix")
            if len(found) > 1:
                names = ", ".join(f"{k.prefix} ({k.organization})" for k in found)
                raise Conflict(
                    f"the prefix {prefix!r} matches {len(found)} keys: {names}; give more of it",
                    field="prefix",
                )
            key = found[0]
            if key.revoked_at is not None:
                return key
            now = self.clock.now()
            self.store.accounts.revoke_api_key(conn, key.id, now)
        return replace(key, revoked_at=now)


class AgentService:
    def __init__(self, store: Store, clock: Clock, limits: FieldLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.store = store
        self.clock = clock

    def create(
        self, organization_id: str, body: dict[str, Any], *, claim: Claim | None = None
    ) -> AgentRecord:
        """A new agent; with ``claim``, its idempotency key is recorded with it."""
        values = validate_agent(body, partial=False, limits=self.limits)
        if values.get("provider") == "twilio":
            check_twilio_agent(values["channel"], values.get("config", {}))
        if values.get("provider") == "webhook":
            values["config"] = webhook_config(values.get("config", {}), None, self.limits)
        if values.get("provider") == "retell":
            check_retell_agent(values["channel"], values.get("config", {}))
        now = self.clock.now()
        record = AgentRecord(
            id=str(uuid.uuid4()),
            organization_id=organization_id,
            name=values["name"],
            channel=values["channel"],
            provider=values.get("provider", "simulator"),
            config=values.get("config", {}),
            created_at=now,
            updated_at=now,
        )
        with self.store.db.begin() as conn:
            self.store.accounts.insert_agent(conn, record)
            if claim is not None:
                claim.record(conn, {"agentId": record.id}, now)
        return record

    def get(self, organization_id: str, agent_id: str) -> AgentRecord:
        with self.store.db.begin() as conn:
            record = self.store.accounts.get_agent(conn, organization_id, agent_id)
        if record is None:
            raise NotFound(f"agent {agent_id} not found", field="agentId")
        return record

    def find(self, agent_id: str) -> AgentRecord:
        """An agent by id alone, whatever its organization: for a provider's webhook that names
        the agent in its URL (``/api/v1/providers/twilio/inbound/{agentId}``) and is signed
        with the agent's own credentials."""
        with self.store.db.read() as conn:
            record = self.store.accounts.get_agent_any_org(conn, agent_id)
        if record is None:
            raise NotFound(f"agent {agent_id} not found", field="agentId")
        return record

    def list(self, organization_id: str) -> list[AgentRecord]:
        with self.store.db.begin() as conn:
            return self.store.accounts.list_agents(conn, organization_id)

    def update(self, organization_id: str, agent_id: str, body: dict[str, Any]) -> AgentRecord:
        values = validate_agent(body, partial=True, limits=self.limits)
        with self.store.db.begin() as conn:
            record = self.store.accounts.get_agent(conn, organization_id, agent_id)
            if record is None:
                raise NotFound(f"agent {agent_id} not found", field="agentId")
            changes_channel = "channel" in values and values["channel"] != record.channel
            if changes_channel and self.store.workflows.agent_in_use(
                conn, organization_id, agent_id
            ):
                raise Conflict(
                    "agent is used by a workflow; its channel cannot change", field="channel"
                )
            merged = replace(record, **values, updated_at=self.clock.now())
            if merged.provider == "twilio" and values.keys() & {"provider", "config", "channel"}:
                check_twilio_agent(merged.channel, merged.config)
            if merged.provider == "webhook" and values.keys() & {"provider", "config"}:
                previous = record.config if record.provider == "webhook" else None
                config = webhook_config(merged.config, previous, self.limits)
                merged = replace(merged, config=config)
            if merged.provider == "retell" and values.keys() & {"provider", "config", "channel"}:
                check_retell_agent(merged.channel, merged.config)
            self.store.accounts.update_agent(
                conn,
                organization_id,
                agent_id,
                {k: getattr(merged, k) for k in (*AGENT_FIELDS, "updated_at")},
            )
        return merged

    def delete(self, organization_id: str, agent_id: str) -> None:
        with self.store.db.begin() as conn:
            if self.store.accounts.get_agent(conn, organization_id, agent_id) is None:
                raise NotFound(f"agent {agent_id} not found", field="agentId")
            if self.store.workflows.agent_in_use(conn, organization_id, agent_id):
                raise Conflict("agent is used by a workflow", field="agentId")
            self.store.accounts.delete_agent(conn, organization_id, agent_id)


def validate_agent(
    body: dict[str, Any], *, partial: bool, limits: FieldLimits = DEFAULT_LIMITS
) -> dict[str, Any]:
    problems, out = start_validation(body, AGENT_FIELDS, partial=partial)
    if "channel" in body or not partial:
        channel = body.get("channel")
        if channel not in Channel.__members__:
            problems.add("channel", "must be CALL or TEXT")
        else:
            out["channel"] = channel
    if "provider" in body:
        provider = body.get("provider")
        if provider not in PROVIDERS:
            problems.add("provider", f"must be one of {', '.join(PROVIDERS)}")
        else:
            out["provider"] = provider
    if "config" in body:
        config = body.get("config")
        if not isinstance(config, dict):
            problems.add("config", "must be an object")
        else:
            if body.get("provider") != "webhook":  # a webhook's: webhook_config
                _check_simulator_config(config, problems)
            check_size(config, "config", limits.agent_config_bytes, problems)
            out["config"] = config
    problems.raise_if_any()
    return out


def webhook_config(
    config: dict[str, Any], previous: dict[str, Any] | None, limits: FieldLimits
) -> dict[str, Any]:
    """A webhook agent's config, checked (``agents.webhook``), with its ``secret``: the one
    given, else the agent's current one, else a new one (returned in the agent's config)."""
    config = with_secret(config, previous)
    problems = ProblemCollector()
    check_webhook_config(config, problems)
    check_size(config, "config", limits.agent_config_bytes, problems)
    problems.raise_if_any()
    return config


def check_retell_agent(channel: str, config: dict[str, Any]) -> None:
    """A Retell agent places calls, with a complete config (``agents.retell``)."""
    problems = ProblemCollector()
    if channel != Channel.CALL.value:
        problems.add("channel", "a retell agent places calls: the channel must be CALL")
    check_retell_config(config, problems)
    problems.raise_if_any()


def check_twilio_agent(channel: str, config: dict[str, Any]) -> None:
    """A Twilio agent sends texts, with a complete config (``agents.twilio``)."""
    problems = ProblemCollector()
    if channel != Channel.TEXT.value:
        problems.add("channel", "a twilio agent sends texts: the channel must be TEXT")
    check_twilio_config(config, problems)
    problems.raise_if_any()


def _check_simulator_config(config: dict[str, Any], problems: ProblemCollector) -> None:
    names = set(Disposition.__members__)
    default = config.get("defaultDisposition")
    if default is not None and default not in names:
        problems.add("config.defaultDisposition", f"unknown disposition {default!r}")
    script = config.get("script")
    if script is not None:
        if not isinstance(script, dict):
            problems.add("config.script", "must map phone numbers to lists of dispositions")
        else:
            for phone, items in script.items():
                if not isinstance(items, list) or not items:
                    problems.add(f"config.script.{phone}", "must be a non-empty list")
                    continue
                for i, d in enumerate(items):
                    if d not in names:
                        problems.add(f"config.script.{phone}[{i}]", f"unknown disposition {d!r}")
    replies = config.get("replies")
    if replies is not None:
        if not isinstance(replies, dict):
            problems.add("config.replies", "must map phone numbers to lists of reply texts")
        else:
            for phone, items in replies.items():
                if not isinstance(items, list) or not items:
                    problems.add(f"config.replies.{phone}", "must be a non-empty list")
                    continue
                for i, text in enumerate(items):
                    if text is not None and not isinstance(text, str):
                        problems.add(f"config.replies.{phone}[{i}]", "must be a string or null")
    callbacks = config.get("callbackAt")
    if callbacks is not None:
        if not isinstance(callbacks, dict):
            problems.add("config.callbackAt", "must map phone numbers to lists of instants")
        else:
            for phone, items in callbacks.items():
                if not isinstance(items, list) or not items:
                    problems.add(f"config.callbackAt.{phone}", "must be a non-empty list")
                    continue
                for i, named in enumerate(items):
                    try:
                        if named is not None:
                            parse_iso_instant(named if isinstance(named, str) else "?")
                    except BadInstant as exc:
                        problems.add(f"config.callbackAt.{phone}[{i}]", str(exc))
    distribution = config.get("distribution")
    if distribution is not None:
        if not isinstance(distribution, dict) or not distribution:
            problems.add("config.distribution", "must map dispositions to weights")
        else:
            for d, w in distribution.items():
                if d not in names:
                    problems.add(f"config.distribution.{d}", f"unknown disposition {d!r}")
                elif isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0:
                    problems.add(f"config.distribution.{d}", "weight must be a number >= 0")
    for key in ("callDurationSecs", "ringDurationSecs", "textDurationSecs"):
        value = config.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 0
        ):
            problems.add(f"config.{key}", "must be an integer >= 0")
