"""Workflows and their immutable versions."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reachflow.store.records import VersionRecord, WorkflowRecord
from reachflow.store.tables import workflow_versions, workflows

_CURRENT = sa.and_(
    workflow_versions.c.workflow_id == workflows.c.id,
    workflow_versions.c.version == workflows.c.version,
)


class Workflows:
    def insert_workflow(
        self,
        conn: Connection,
        *,
        workflow_id: str,
        organization_id: str,
        name: str,
        description: str | None,
        active: bool,
        status: str,
        version: dict[str, Any],
        now: datetime,
    ) -> None:
        conn.execute(
            workflows.insert().values(
                id=workflow_id,
                organization_id=organization_id,
                name=name,
                description=description,
                active=active,
                status=status,
                version=1,
                created_at=now,
                updated_at=now,
            )
        )
        self.insert_version(conn, organization_id, workflow_id, 1, version, now)

    def insert_version(
        self,
        conn: Connection,
        organization_id: str,
        workflow_id: str,
        number: int,
        version: dict[str, Any],
        now: datetime,
    ) -> str:
        version_id = str(uuid.uuid4())
        conn.execute(
            workflow_versions.insert().values(
                id=version_id,
                organization_id=organization_id,
                workflow_id=workflow_id,
                version=number,
                timezone=version["timezone"],
                workflow_schedule=version.get("workflow_schedule"),
                tcpa_schedule=version.get("tcpa_schedule"),
                definition=version["definition"],
                created_at=now,
            )
        )
        return version_id

    def get_workflow(
        self,
        conn: Connection,
        organization_id: str,
        workflow_id: str,
        *,
        lock: bool | Literal["share"] = False,
    ) -> WorkflowRecord | None:
        """The workflow and its current version. ``lock=True`` takes its row lock (a state
        change); ``lock="share"`` a shared one (a create that depends on its state), so
        creates run together but never beside a state change (PostgreSQL; on SQLite the
        write transaction already holds the only lock)."""
        query = (
            sa.select(workflows, *_version_columns())
            .join(workflow_versions, _CURRENT)
            .where(
                workflows.c.organization_id == organization_id,
                workflows.c.id == workflow_id,
                workflows.c.deleted_at.is_(None),
            )
        )
        if lock and conn.dialect.name == "postgresql":
            query = query.with_for_update(of=workflows, read=lock == "share")
        row = conn.execute(query).mappings().first()
        return _workflow(row) if row else None

    def list_workflows(
        self,
        conn: Connection,
        organization_id: str,
        *,
        limit: int,
        offset: int,
        active: bool | None = None,
        status: str | None = None,
    ) -> tuple[list[WorkflowRecord], int]:
        where = [workflows.c.organization_id == organization_id, workflows.c.deleted_at.is_(None)]
        if active is not None:
            where.append(workflows.c.active == active)
        if status is not None:
            where.append(workflows.c.status == status)
        total = conn.execute(
            sa.select(sa.func.count()).select_from(workflows).where(*where)
        ).scalar_one()
        rows = conn.execute(
            sa.select(workflows, *_version_columns())
            .join(workflow_versions, _CURRENT)
            .where(*where)
            .order_by(workflows.c.created_at, workflows.c.id)
            .limit(limit)
            .offset(offset)
        ).mappings()
        return [_workflow(r) for r in rows], int(total)

    def update_workflow(
        self, conn: Connection, organization_id: str, workflow_id: str, values: dict[str, Any]
    ) -> None:
        conn.execute(
            workflows.update()
            .where(workflows.c.organization_id == organization_id, workflows.c.id == workflow_id)
            .values(**values)
        )

    def get_version(self, conn: Connection, version_id: str) -> VersionRecord | None:
        row = (
            conn.execute(sa.select(workflow_versions).where(workflow_versions.c.id == version_id))
            .mappings()
            .first()
        )
        return _version(row) if row is not None else None

    def replace_version(self, conn: Connection, version_id: str, version: dict[str, Any]) -> None:
        """Rewrite a version in place: only for drafts, whose versions no execution has run."""
        conn.execute(
            workflow_versions.update().where(workflow_versions.c.id == version_id).values(**version)
        )

    def list_versions(
        self, conn: Connection, organization_id: str, workflow_id: str
    ) -> list[tuple[VersionRecord, datetime]]:
        rows = conn.execute(
            sa.select(workflow_versions)
            .where(
                workflow_versions.c.organization_id == organization_id,
                workflow_versions.c.workflow_id == workflow_id,
            )
            .order_by(workflow_versions.c.version)
        ).mappings()
        return [(_version(r), r["created_at"]) for r in rows]

    def agent_in_use(self, conn: Connection, organization_id: str, agent_id: str) -> bool:
        rows = conn.execute(
            sa.select(workflow_versions.c.definition)
            .join(workflows, _CURRENT)
            .where(workflows.c.organization_id == organization_id, workflows.c.deleted_at.is_(None))
        )
        needle = f'"{agent_id}"'
        return any(needle in json.dumps(r.definition) for r in rows)


def _version_columns() -> list[Any]:
    return [
        workflow_versions.c.id.label("version_id"),
        workflow_versions.c.timezone,
        workflow_versions.c.workflow_schedule,
        workflow_versions.c.tcpa_schedule,
        workflow_versions.c.definition,
    ]


def _workflow(row: Any) -> WorkflowRecord:
    return WorkflowRecord(
        id=row["id"],
        organization_id=row["organization_id"],
        name=row["name"],
        description=row["description"],
        active=row["active"],
        status=row["status"],
        version=row["version"],
        version_id=row["version_id"],
        timezone=row["timezone"],
        workflow_schedule=row["workflow_schedule"],
        tcpa_schedule=row["tcpa_schedule"],
        definition=row["definition"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        public_execute=bool(row["public_execute"]),
        price_amount=row["price_amount"],
        price_currency=row["price_currency"],
    )


def _version(row: Any) -> VersionRecord:
    return VersionRecord(
        id=row["id"],
        organization_id=row["organization_id"],
        workflow_id=row["workflow_id"],
        version=row["version"],
        timezone=row["timezone"],
        workflow_schedule=row["workflow_schedule"],
        tcpa_schedule=row["tcpa_schedule"],
        definition=row["definition"],
    )
