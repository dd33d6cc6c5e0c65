"""What the Temporal runtime reads and writes about one execution (its workflow's view)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reachflow.store.tables import executions, inbox, outbox

_OPEN = ("pending", "in_flight")


@dataclass(frozen=True, slots=True)
class RunView:
    """One execution as its Temporal workflow needs it: where the read model stands."""

    status: str | None  # None: no such execution
    due_at: datetime | None
    #: The earliest agent result or dispatch outcome waiting in the inbox.
    inbox_at: datetime | None
    #: Dispatches or effects not yet performed, and when the first may go.
    outbox_at: datetime | None


def view_of(conn: Connection, execution_id: str) -> RunView:
    row = conn.execute(
        sa.select(executions.c.status, executions.c.due_at).where(executions.c.id == execution_id)
    ).first()
    if row is None:
        return RunView(None, None, None, None)
    inbox_at = conn.execute(
        sa.select(sa.func.min(inbox.c.due_at)).where(inbox.c.execution_id == execution_id)
    ).scalar()
    outbox_at = conn.execute(
        sa.select(sa.func.min(outbox.c.available_at)).where(
            outbox.c.execution_id == execution_id, outbox.c.status.in_(_OPEN)
        )
    ).scalar()
    return RunView(row.status, row.due_at, inbox_at, outbox_at)


def set_workflow_ids(conn: Connection, ids: Sequence[tuple[str, str]]) -> None:
    """Record each execution's Temporal workflow id (``temporalWorkflowId``)."""
    if not ids:
        return
    conn.execute(
        executions.update()
        .where(executions.c.id == sa.bindparam("eid"))
        .values(temporal_workflow_id=sa.bindparam("wid")),
        [{"eid": eid, "wid": wid} for eid, wid in ids],
    )
