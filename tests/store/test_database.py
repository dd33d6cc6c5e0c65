"""The SQLite writer's queue: turns in arrival order, re-entrant, and reads that never queue."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import sqlalchemy as sa

from reachflow.store.database import Database, FairLock
from reachflow.store.tables import organizations


def wait_until(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.001)


def test_the_writer_lock_is_granted_in_arrival_order_and_is_reentrant() -> None:
    lock = FairLock()
    order: list[str] = []

    def take(name: str) -> None:
        with lock:
            order.append(name)

    with lock:
        with lock:  # the holder may take it again
            pass
        threads = []
        for name in ("first", "second", "third"):
            thread = threading.Thread(target=take, args=(name,))
            thread.start()
            threads.append(thread)
            expected = len(threads)
            wait_until(lambda expected=expected: lock.waiting == expected)
        assert order == []
    for thread in threads:
        thread.join(10)
    assert order == ["first", "second", "third"]
    assert lock.waiting == 0


def test_a_read_does_not_wait_for_an_open_write(sqlite_template: Path, tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    path.write_bytes(sqlite_template.read_bytes())
    db = Database(f"sqlite:///{path}")
    writing, done = threading.Event(), threading.Event()

    def writer() -> None:
        with db.begin() as conn:
            conn.execute(
                organizations.insert().values(
                    id="o1", name="acme", created_at=sa.func.current_timestamp()
                )
            )
            writing.set()
            done.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert writing.wait(10)
        assert db.writers_contended(0.0) is False
        with db.read() as conn:  # would queue behind the writer if it took the write lock
            count = conn.execute(sa.select(sa.func.count()).select_from(organizations)).scalar()
        assert count == 0  # the snapshot from before the open write
    finally:
        done.set()
        thread.join(10)
    with db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(organizations)).scalar() == 1
    db.dispose()
