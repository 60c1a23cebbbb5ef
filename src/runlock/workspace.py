"""Opening a store for use: locate it, resolve who is acting, and tidy up after dead runs.

This is the one place the surfaces (CLI, Python API, server) open a store, so every one of them
sees crashed runs marked as such and acts as the same identity.
"""

from __future__ import annotations

import os
from pathlib import Path

from runlock import audit, identity, keys
from runlock.store import Store, init_store
from runlock.tracking.records import reap_crashed

__all__ = ["open_store", "init", "TOKEN_ENV"]

TOKEN_ENV = "RUNLOCK_TOKEN"


def open_store(path: str | Path | None = None, *, token: str | None = None) -> Store:
    """Open the store at ``path`` (else RUNLOCK_STORE, else the nearest ``.runlock`` upward),
    acting as the identity of ``token`` (else RUNLOCK_TOKEN, else the OS user)."""
    store = Store.open(path)
    token = token or os.environ.get(TOKEN_ENV)
    if token:
        try:
            identity.act_as(store, token)
        except BaseException:
            store.close()
            raise
    _after_open(store)
    return store


def init(path: str | Path = ".", *, database: str | None = None, objects: str | None = None,
         shared: bool = False) -> Store:
    """Create (or upgrade) a store in ``path`` and open it (``shared``: group-writable)."""
    store = init_store(path, database=database, objects=objects, shared=shared)
    with store.db.exclusive("runlock init"):   # one client mints and records the signing key
        keys.setup(store)
    _after_open(store)
    return store


def _after_open(store: Store) -> None:
    if store.db.read_only:
        return  # a store on a read-only filesystem is only read: nothing to tidy, nothing to sign
    reap_crashed(store)
    audit.sign_pending(store)
