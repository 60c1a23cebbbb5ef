"""Opening a store for use: locate it and resolve who is acting; tidying it is a separate step.

This is the one place the surfaces (CLI, Python API ``runlock.api``, server) open a store, so every
one of them acts as the same identity. Opening never writes: a command that only reads leaves the
store's bytes as they were. A surface about to write calls ``tidy`` first, so crashed runs are
marked as such (``tracking.records.reap_crashed``) and pending checkpoints signed
(``audit.sign_pending``) by the next command that writes (``runlock run``, ``runlock fsck``, …).
"""

from __future__ import annotations

import os
from pathlib import Path

from runlock import audit, identity, keys
from runlock.store import Store, init_store
from runlock.tracking.records import reap_crashed

__all__ = ["open_store", "init", "tidy", "TOKEN_ENV"]

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
    return store


def init(path: str | Path = ".", *, database: str | None = None, objects: str | None = None,
         shared: bool = False) -> Store:
    """Create (or upgrade) a store in ``path`` and open it (``shared``: group-writable)."""
    store = init_store(path, database=database, objects=objects, shared=shared)
    with store.db.exclusive("runlock init"):   # one client mints and records the signing key
        keys.setup(store)
    tidy(store)
    return store


def tidy(store: Store) -> list[str]:
    """Before a write: mark runs whose process died ``crashed`` and sign pending checkpoints;
    the ids of the runs reaped. A store on a read-only filesystem is left as it is."""
    if store.db.read_only:
        return []
    reaped = reap_crashed(store)
    audit.sign_pending(store)
    return reaped
