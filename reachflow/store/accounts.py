"""Organizations, API keys and agents."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reachflow.store.records import AgentRecord
from reachflow.store.tables import agents, api_keys, organizations


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

    def insert_api_key(
        self, conn: Connection, organization_id: str, key_hash: str, prefix: str, now: datetime
    ) -> str:
        key_id = str(uuid.uuid4())
        conn.execute(
            api_keys.insert().values(
                id=key_id,
                organization_id=organization_id,
                key_hash=key_hash,
                prefix=prefix,
                created_at=now,
            )
        )
        return key_id

    def find_organization_by_key_hash(self, conn: Connection, key_hash: str) -> str | None:
        found = conn.execute(
            sa.select(api_keys.c.organization_id).where(api_keys.c.key_hash == key_hash)
        ).scalar_one_or_none()
        return str(found) if found is not None else None

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
