"""Organizations, API keys and agents."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from reachflow.store.records import AgentRecord
from reachflow.store.tables import agent_health, agents, api_keys, organizations


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """What may be shown of a key: never the key, nor its hash."""

    id: str
    organization_id: str
    organization: str
    prefix: str
    scope: str
    created_at: datetime
    revoked_at: datetime | None


_KEY_COLUMNS = (
    api_keys.c.id,
    api_keys.c.organization_id,
    organizations.c.name.label("organization"),
    api_keys.c.prefix,
    api_keys.c.scope,
    api_keys.c.created_at,
    api_keys.c.revoked_at,
)
_KEYS_WITH_ORG = api_keys.join(organizations, organizations.c.id == api_keys.c.organization_id)


class Accounts:
    def ensure_organization(self, conn: Connection, name: str, now: datetime) -> str:
        found = conn.execute(
            sa.select(organizations.c.id).where(organizations.c.name == name)
        ).scalar_one_or_none()
        if found is not None:
            return str(found)
        org_id = str(uuid.uuid4())
        conn.execute(organizations.insert().values(id=org_id, name=name, created_at=now))
        return org_id

    def find_organization(self, conn: Connection, name: str) -> str | None:
        found = conn.execute(
            sa.select(organizations.c.id).where(organizations.c.name == name)
        ).scalar_one_or_none()
        return str(found) if found is not None else None

    def insert_api_key(
        self,
        conn: Connection,
        organization_id: str,
        key_hash: str,
        prefix: str,
        now: datetime,
        scope: str = "organization",
    ) -> str:
        key_id = str(uuid.uuid4())
        conn.execute(
            api_keys.insert().values(
                id=key_id,
                organization_id=organization_id,
                key_hash=key_hash,
                prefix=prefix,
                created_at=now,
                scope=scope,
            )
        )
        return key_id

    def find_organization_by_key_hash(self, conn: Connection, key_hash: str) -> str | None:
        """The organization of the unrevoked key with this hash."""
        found = conn.execute(
            sa.select(api_keys.c.organization_id).where(
                api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None)
            )
        ).scalar_one_or_none()
        return str(found) if found is not None else None

    def find_key_by_hash(self, conn: Connection, key_hash: str) -> tuple[ApiKeyRecord, str] | None:
        """The key with this hash (revoked or not) and the hash as stored."""
        row = (
            conn.execute(
                sa.select(*_KEY_COLUMNS, api_keys.c.key_hash)
                .select_from(_KEYS_WITH_ORG)
                .where(api_keys.c.key_hash == key_hash)
            )
            .mappings()
            .first()
        )
        return (_api_key(row), str(row["key_hash"])) if row else None

    def list_api_keys(
        self, conn: Connection, organization_id: str | None = None
    ) -> list[ApiKeyRecord]:
        """Every key (of one organization, if given), oldest first."""
        query = sa.select(*_KEY_COLUMNS).select_from(_KEYS_WITH_ORG)
        if organization_id is not None:
            query = query.where(api_keys.c.organization_id == organization_id)
        rows = conn.execute(query.order_by(api_keys.c.created_at, api_keys.c.id)).mappings()
        return [_api_key(r) for r in rows]

    def find_api_keys_by_prefix(self, conn: Connection, prefix: str) -> list[ApiKeyRecord]:
        """The keys whose prefix starts with ``prefix`` (``%`` and ``_`` taken literally)."""
        rows = conn.execute(
            sa.select(*_KEY_COLUMNS)
            .select_from(_KEYS_WITH_ORG)
            .where(api_keys.c.prefix.startswith(prefix, autoescape=True))
            .order_by(api_keys.c.created_at, api_keys.c.id)
        ).mappings()
        return [_api_key(r) for r in rows]

    def revoke_api_key(self, conn: Connection, key_id: str, now: datetime) -> None:
        """Revoke the key (once: a revoked key keeps its first ``revoked_at``)."""
        conn.execute(
            api_keys.update()
            .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )

    # -- agents ---------------------------------------------------------------------------

    def insert_agent(self, conn: Connection, record: AgentRecord) -> None:
        conn.execute(
            agents.insert().values(
                id=record.id,
                organization_id=record.organization_id,
                name=record.name,
                channel=record.channel,
                provider=record.provider,
                config=record.config,
                created_at=record.created_at,
                updated_at=record.updated_at,
            )
        )

    def get_agent(
        self, conn: Connection, organization_id: str, agent_id: str
    ) -> AgentRecord | None:
        row = (
            conn.execute(
                sa.select(agents).where(
                    agents.c.organization_id == organization_id, agents.c.id == agent_id
                )
            )
            .mappings()
            .first()
        )
        return _agent(row) if row else None

    def get_agents(self, conn: Connection, agent_ids: Iterable[str]) -> dict[str, AgentRecord]:
        """Agents by id, in one statement (the dispatch stage checks each one's organization)."""
        ids = sorted(set(agent_ids))
        if not ids:
            return {}
        rows = conn.execute(
            sa.select(agents).where(agents.c.id.in_(sa.bindparam("ids", expanding=True))),
            {"ids": ids},
        ).mappings()
        return {r["id"]: _agent(r) for r in rows}

    def get_agent_any_org(self, conn: Connection, agent_id: str) -> AgentRecord | None:
        row = conn.execute(sa.select(agents).where(agents.c.id == agent_id)).mappings().first()
        return _agent(row) if row else None

    def list_agents(self, conn: Connection, organization_id: str) -> list[AgentRecord]:
        rows = conn.execute(
            sa.select(agents)
            .where(agents.c.organization_id == organization_id)
            .order_by(agents.c.created_at, agents.c.id)
        ).mappings()
        return [_agent(r) for r in rows]

    def agent_channels(self, conn: Connection, organization_id: str) -> dict[str, str]:
        rows = conn.execute(
            sa.select(agents.c.id, agents.c.channel).where(
                agents.c.organization_id == organization_id
            )
        )
        return {str(r.id): str(r.channel) for r in rows}

    def update_agent(
        self, conn: Connection, organization_id: str, agent_id: str, values: dict[str, Any]
    ) -> None:
        conn.execute(
            agents.update()
            .where(agents.c.organization_id == organization_id, agents.c.id == agent_id)
            .values(**values)
        )

    def delete_agent(self, conn: Connection, organization_id: str, agent_id: str) -> None:
        conn.execute(
            agents.delete().where(
                agents.c.organization_id == organization_id, agents.c.id == agent_id
            )
        )


def _api_key(row: Any) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=str(row["id"]),
        organization_id=str(row["organization_id"]),
        organization=str(row["organization"]),
        prefix=str(row["prefix"]),
        scope=str(row["scope"]),
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )


def _agent(row: Any) -> AgentRecord:
    return AgentRecord(
        id=row["id"],
        organization_id=row["organization_id"],
        name=row["name"],
        channel=row["channel"],
        provider=row["provider"],
        config=dict(row["config"] or {}),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


@dataclass(frozen=True, slots=True)
class AgentHealthRecord:
    agent_id: str
    breaker: str
    reason: str | None
    open_until: datetime | None
    recent_ok: int
    recent_failed: int
    updated_at: datetime


class AgentHealth:
    """Each agent's circuit breaker as the workers last wrote it."""

    def set_breaker(
        self,
        conn: Connection,
        *,
        agent_id: str,
        organization_id: str,
        breaker: str,
        reason: str | None,
        open_until: datetime | None,
        recent_ok: int,
        recent_failed: int,
        now: datetime,
    ) -> None:
        values = {
            "breaker": breaker,
            "reason": reason,
            "open_until": open_until,
            "recent_ok": recent_ok,
            "recent_failed": recent_failed,
            "updated_at": now,
        }
        # One statement: two workers (or two threads) writing an agent's first health row at
        # once both land (an update-then-insert let the second fail on the key, and with it
        # the transaction recording its calls' results).
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        insert = dialect.insert(agent_health).values(
            agent_id=agent_id, organization_id=organization_id, **values
        )
        conn.execute(
            insert.on_conflict_do_update(index_elements=[agent_health.c.agent_id], set_=values)
        )

    def of(self, conn: Connection, agent_id: str) -> AgentHealthRecord | None:
        row = (
            conn.execute(sa.select(agent_health).where(agent_health.c.agent_id == agent_id))
            .mappings()
            .first()
        )
        if row is None:
            return None
        return AgentHealthRecord(
            row["agent_id"],
            row["breaker"],
            row["reason"],
            row["open_until"],
            row["recent_ok"],
            row["recent_failed"],
            row["updated_at"],
        )
