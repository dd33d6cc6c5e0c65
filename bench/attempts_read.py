"""One batch's read of its contacts' compliance records on PostgreSQL, with 100,000 attempts
on record for the organization. Not a test. From the repository root::

    python -m bench.attempts_read

Prints the milliseconds of ``Contacts.facts_of`` for 200 numbers, three times (the first warms
the plan). With ``contact_attempts`` indexed by organization first, PostgreSQL scanned every
attempt of the organization; indexed by number first, it probes the 200 numbers.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from bench.throughput import postgres_database
from reachflow.store.contacts import Contacts
from reachflow.store.database import Database
from reachflow.store.tables import contact_attempts

ATTEMPTS = 100_000


def main() -> int:
    now = datetime(2026, 3, 9, 14, tzinfo=UTC)
    with postgres_database("reachflow_bench_attempts_read") as url:
        db = Database(url)
        db.migrate()
        try:
            with db.begin() as conn:
                conn.exec_driver_sql(
                    "INSERT INTO organizations (id, name, created_at) VALUES ('o1', 'o1', now())"
                )
                conn.execute(
                    contact_attempts.insert(),
                    [
                        {
                            "organization_id": "o1",
                            "phone": f"+1415{2_000_000 + i:07d}",
                            "channel": "CALL",
                            "execution_id": None,
                            "idempotency_key": f"k{i}",
                            "at": now,
                        }
                        for i in range(ATTEMPTS)
                    ],
                )
            wanted = [("o1", f"+1415{2_000_000 + i:07d}") for i in range(5_000, 5_200)]
            for _ in range(3):
                with db.begin() as conn:
                    started = time.perf_counter()
                    found = Contacts().facts_of(conn, wanted, now - timedelta(days=7))
                    took = 1000 * (time.perf_counter() - started)
                print(
                    f"facts_of, 200 numbers among {ATTEMPTS} attempts: {took:.1f} ms "
                    f"({sum(len(r.attempts) for r in found.values())} attempts read)"
                )
        finally:
            db.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
