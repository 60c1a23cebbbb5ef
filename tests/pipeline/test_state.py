"""Stage locks and the run-cache rows, on SQLite and PostgreSQL."""

from __future__ import annotations

import socket
import threading
import time

import sqlalchemy as sa

from runlock.pipeline import state
from runlock.store import Store
from runlock.store.schema import utcnow


def test_a_lock_waits_for_its_live_holder_and_takes_over_a_dead_ones(any_store: Store) -> None:
    key = "sha256:" + "a" * 64
    state.acquire(any_store, key)
    got = threading.Event()

    def other() -> None:        # another stage key is not blocked by this one
        state.acquire(any_store, key + "x")
        got.set()

    t = threading.Thread(target=other)
    t.start()
    t.join(5)
    assert got.is_set()
    state.release(any_store, key)
    with any_store.db.write() as conn:     # a lock left by a process of this host that is gone
        conn.execute(state.locks.insert().values(stage_key="sha256:dead", holder=f"{socket.gethostname()}:999999999",
                                                 acquired_at=utcnow()))
    start = time.monotonic()
    state.acquire(any_store, "sha256:dead", timeout=10)
    assert time.monotonic() - start < 5
    with any_store.db.read() as conn:
        holders = dict(conn.execute(sa.select(state.locks.c.stage_key, state.locks.c.holder)).all())
    assert holders["sha256:dead"] == state.holder()


def test_a_live_holder_keeps_its_lock_until_the_timeout(any_store: Store) -> None:
    with any_store.db.write() as conn:     # another host: never taken over
        conn.execute(state.locks.insert().values(stage_key="sha256:busy", holder="elsewhere:1", acquired_at=utcnow()))
    start = time.monotonic()
    try:
        state.acquire(any_store, "sha256:busy", timeout=0.5)
    except Exception as e:  # noqa: BLE001
        assert "Timed out" in str(e)
    else:
        raise AssertionError("took a live holder's lock")
    assert time.monotonic() - start >= 0.5
