"""A run's record and lock, from a store here or from anything that serves them.

What needs only those (``verify/envlock.py``'s export, diff and rebuild, ``config.explain``)
takes a ``Store`` or any ``RunSource``: a ``remote.interface.Service`` is one (``run_view``), so
a team server's client works from what the server sends.
"""

from __future__ import annotations

from typing import Any, Protocol

from runlock.store import Store
from runlock.tracking import lock as locks
from runlock.tracking import records


class RunSource(Protocol):
    def run_view(self, ref: str) -> Any: ...


def run_and_lock(source: Store | RunSource, run: str) -> tuple[records.RunRecord, dict]:
    """The run ``run`` names and its lock (``{}`` when it has none)."""
    if isinstance(source, Store):
        rec = records.get(source, run)
        return rec, locks.load(source, rec.recipe_id) if rec.recipe_id else {}
    view = source.run_view(run)
    return view.run, view.lock or {}
