"""Starting the server: open (or create) the store it serves, then run the app on uvicorn.

``runlock server`` with no options serves the store of the current folder (SQLite and local
objects), so one command starts a trial. ``--database URL --objects URI`` serve PostgreSQL and an
S3-compatible bucket: the first start records them in ``.runlock/config.toml`` of the server's
folder (``runlock init --database … --objects …``), and later starts must name the same ones.
The server's store holds the signing key; clients never see it.
"""

from __future__ import annotations

from pathlib import Path

import uvicorn

from runlock.errors import InvalidInput, StoreNotFound
from runlock.server.app import create_app
from runlock.store import Store
from runlock.workspace import init, open_store, tidy


def open_for_serving(path: str | Path | None = None, *, database: str | None = None,
                     objects: str | None = None) -> Store:
    """The store to serve: the one at ``path`` (or found upward); created there when
    ``database``/``objects`` are given and none exists yet."""
    try:
        store = open_store(path)
    except StoreNotFound:
        if database is None and objects is None:
            raise
        return init(path or ".", database=database, objects=objects)
    wanted = {"database": database, "objects": objects}
    differs = [k for k, v in wanted.items() if v is not None and store.settings.get(k, _default(k)) != v]
    if differs:
        store.close()
        raise InvalidInput(f"The store at {store.root} keeps its {' and '.join(differs)} elsewhere "
                           f"(see its config.toml).",
                           hint="Start the server in another folder, or leave out --database/--objects.")
    tidy(store)   # runs whose process died before the server started are marked crashed; checkpoints signed
    return store


def _default(key: str) -> str | None:
    return "objects" if key == "objects" else None


def serve(store: Store, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Run the API until interrupted."""
    uvicorn.run(create_app(store), host=host, port=port, log_level="warning", access_log=False,
                timeout_graceful_shutdown=5)
