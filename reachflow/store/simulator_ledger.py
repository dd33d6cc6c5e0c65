"""The simulator's durable ledger: the simulated agent's own record of the calls it placed.

A real agent that honours idempotency keys places each key's call once, whatever process sends
it and however often. The simulator does the same by recording each key here before it
answers: the first request for a key stores the receipt (a placement), and every later request
gets that stored receipt back and only raises ``requests``.

On PostgreSQL the ledger is a table of the database. On SQLite it is a file of its own beside the
database (``<file>-simulator``), as an agent's own store would be: its writes then do not queue
for the engine's single writer.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from reachflow.store.database import Database
from reachflow.store.tables import simulator_calls


def ledger_url(url: str) -> str | None:
    """Where the ledger of a SQLite database lives; None: in the database itself."""
    if not url.startswith("sqlite:///") or url.endswith(":memory:"):
        return None
    return url + "-simulator"


class SimulatorLedger:
    def __init__(self, db: Database) -> None:
        own = ledger_url(db.url) if db.is_sqlite else None
        self._own = own is not None
        self.db = Database(own) if own is not None else db
        if own is not None:
            simulator_calls.create(self.db.engine, checkfirst=True)
        insert = postgresql.insert if db.engine.dialect.name == "postgresql" else sqlite.insert
        self._insert_new = (
            insert(simulator_calls)
            .on_conflict_do_nothing(index_elements=["idempotency_key"])
            .returning(simulator_calls.c.idempotency_key)
        )
        self._count_again = (
            simulator_calls.update()
            .where(simulator_calls.c.idempotency_key.in_(sa.bindparam("keys", expanding=True)))
            .values(requests=simulator_calls.c.requests + 1)
            .returning(simulator_calls.c.idempotency_key, simulator_calls.c.receipt)
        )

    def place(
        self, entries: Sequence[tuple[str, dict[str, Any]]], now: datetime
    ) -> list[tuple[dict[str, Any], bool]]:
        """For each ``(key, receipt)``: the receipt on record for the key, and whether this
        request placed it (False: an earlier request did). One transaction: one multi-row
        insert of the new keys, and one update of the keys seen before."""
        if not entries:
            return []
        rows = [
            {"idempotency_key": key, "receipt": receipt, "requests": 1, "placed_at": now}
            for key, receipt in entries
        ]
        with self.db.begin() as conn:
            placed = {r.idempotency_key for r in conn.execute(self._insert_new, rows)}
            again = [key for key, _ in entries if key not in placed]
            stored = (
                {
                    r.idempotency_key: dict(r.receipt)
                    for r in conn.execute(self._count_again, {"keys": again})
                }
                if again
                else {}
            )
        return [
            (receipt, True) if key in placed else (stored[key], False) for key, receipt in entries
        ]

    def close(self) -> None:
        if self._own:
            self.db.dispose()

    def placements(self) -> dict[str, int]:
        """Every key on record with how many requests it received."""
        with self.db.begin() as conn:
            rows = conn.execute(
                sa.select(simulator_calls.c.idempotency_key, simulator_calls.c.requests)
            )
            return {r.idempotency_key: r.requests for r in rows}
