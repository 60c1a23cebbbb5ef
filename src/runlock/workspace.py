"""Opening a store for use: locate it, resolve who is acting, and tidy up after dead runs.

This is the one place the surfaces (CLI, Python API, server) open a store, so every one of them
sees crashed runs marked as such and acts as the same identity.
"""

from __future__ import annotations

from pathlib import Path

from runlock.store import Store, init_store
from runlock.tracking.records import reap_crashed

__all__ = ["open_store", "init"]


def open_store(path: str | Path | None = None, *, token: str | None = None) -> Store:
    """Open the store at ``path`` (else RUNLOCK_STORE, else the nearest ``.runlock`` upward)."""
    store = Store.open(path)
    _after_open(store)
    return store


def init(path: str | Path = ".", *, database: str | None = None, objects: str | None = None) -> Store:
    """Create (or upgrade) a store in ``path`` and open it."""
    store = init_store(path, database=database, objects=objects)
    _after_open(store)
    return store


def _after_open(store: Store) -> None:
    reap_crashed(store)
