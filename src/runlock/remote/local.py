"""``LocalService``: the ``Service`` of a store opened here, one domain call per method.

It takes an open ``Store`` (the surface opened it, and closes it) and never opens one. What
``runs list`` needs (the query, the run records) is imported with the module; every other
concept's module is imported by the method that calls it (``_domain``), so that listing runs
starts as fast as before (tests/test_imports.py) and a snapshot does not load the registry.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from runlock.remote.interface import RunView, SplitRequest
from runlock.store import Store
from runlock.tracking import query, records

if TYPE_CHECKING:
    from runlock.artifacts import Download
    from runlock.audit import VerifyReport
    from runlock.data.snapshot import Snapshot
    from runlock.data.split import Split
    from runlock.registry import ModelVersion


def _domain(name: str) -> ModuleType:
    """``runlock.NAME``, imported when a method first needs it."""
    return importlib.import_module(f"runlock.{name}")


class LocalService:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.where = str(store.root)

    def close(self) -> None:
        """The surface that opened the store closes it."""

    # -- runs --------------------------------------------------------------------------------------
    def find_runs(self, *, project: str | None = None, status: str | None = None, where: str | None = None,
                  sort: str | None = None, limit: int | None = None, deleted: bool = False) -> list[query.FoundRun]:
        return query.find_runs(self.store, project=project, status=status, where=where, sort=sort, limit=limit,
                               deleted=deleted)

    def short_ids(self, ids: list[str]) -> dict[str, str]:
        return records.short_ids(self.store, ids)

    def run_view(self, ref: str) -> RunView:
        rec = records.get(self.store, ref)
        locks, series = _domain("tracking.lock"), _domain("tracking.series")
        return RunView(rec, locks.load(self.store, rec.recipe_id) if rec.recipe_id else None,
                       series.summarize(self.store, rec.id), _domain("tracking.annotations").notes(self.store, rec.id),
                       _domain("artifacts").for_run(self.store, rec.id))

    # -- models ------------------------------------------------------------------------------------
    def list_models(self, name: str | None = None) -> list[ModelVersion]:
        return _domain("registry").list_models(self.store, name)

    def resolve_model(self, ref: str) -> ModelVersion:
        return _domain("registry").resolve(self.store, ref)

    def register_model(self, run: str, artifact: str, name: str, meta: dict | None = None) -> ModelVersion:
        return _domain("registry").register(self.store, run, artifact, name, meta=meta)

    def get_model(self, ref: str, dest: str | Path, *, force: bool = False,
                  on_progress: Callable[..., None] | None = None) -> Download:
        return _domain("registry").get(self.store, ref, dest, force=force, on_progress=on_progress)

    # -- audit -------------------------------------------------------------------------------------
    def verify_audit(self, *, deep: bool = False, progress: Callable[[int], None] | None = None,
                     key: Any = None) -> VerifyReport:
        return _domain("audit").verify(self.store, key=key, deep=deep, progress=progress)

    # -- data --------------------------------------------------------------------------------------
    def snapshot(self, path: str | Path, name: str | None = None, *, id_column: str | None = None,
                 kind: str | None = None, on_progress: Callable[[Any], None] | None = None,
                 use_cache: bool = True) -> Snapshot:
        return _domain("data.snapshot").create_snapshot(self.store, path, name, id_column=id_column, kind=kind,
                                                        on_progress=on_progress, use_cache=use_cache)

    def split(self, request: SplitRequest, on_progress: Callable[..., None] | None = None) -> Split:
        return _domain("data.split").create_split(self.store, request.snapshot, **split_arguments(request),
                                                  on_progress=on_progress)


def split_arguments(r: SplitRequest) -> dict:
    """``create_split``'s keyword arguments from a request (the server calls it too)."""
    return {"name": r.name, "ratios": r.ratios if r.ratios is not None else (0.8, 0.1, 0.1), "seed": r.seed,
            "strategy": r.strategy, "by": r.by, "group": r.group, "names": r.names, "dedup": r.dedup,
            "check": r.check, "text_columns": r.text_columns,
            "settings": _domain("data.minhash").NearDupSettings(**(r.settings or {}))}
