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

from runlock.errors import InvalidInput
from runlock.paths import problem
from runlock.remote.interface import InputUse, RunView, SplitRequest
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

    def run_frame(self, *, project: str | None = None, status: str | None = None, where: str | None = None,
                  sort: str | None = None, limit: int | None = None):  # noqa: ANN201
        return query.frame(self.store, project=project, status=status, where=where, sort=sort, limit=limit)

    def run_record(self, ref: str) -> records.RunRecord:
        return records.get(self.store, ref)

    def run_view(self, ref: str) -> RunView:
        rec = records.get(self.store, ref)
        locks, series = _domain("tracking.lock"), _domain("tracking.series")
        return RunView(rec, locks.load(self.store, rec.recipe_id) if rec.recipe_id else None,
                       series.summarize(self.store, rec.id), _domain("tracking.annotations").notes(self.store, rec.id),
                       _domain("artifacts").for_run(self.store, rec.id))

    def metric_summaries(self, ref: str, *, rank: int | None = None) -> list:
        return _domain("tracking.series").summarize(self.store, ref, rank=rank)

    def metric_points(self, ref: str, *, keys: list[str] | None = None, rank: int | None = None):  # noqa: ANN201
        return _domain("tracking.series").points(self.store, ref, keys=keys, rank=rank)

    def diff_runs(self, a: str, b: str):  # noqa: ANN201
        return _domain("tracking.diff").diff_runs(self.store, a, b)

    def compare_runs(self, refs: list[str], *, only_differences: bool = False):  # noqa: ANN201
        return _domain("tracking.series").compare(self.store, refs, only_differences=only_differences)

    def tag_run(self, ref: str, values: dict[str, str], *, remove: list[str] | tuple[str, ...] = ()) -> dict:
        return _domain("tracking.annotations").tag(self.store, ref, values, remove=remove)

    def note_run(self, ref: str, text: str):  # noqa: ANN201
        return _domain("tracking.annotations").note(self.store, ref, text)

    def delete_run(self, ref: str, *, reason: str):  # noqa: ANN201
        return _domain("tracking.annotations").delete(self.store, ref, reason=reason)

    # -- artifacts ---------------------------------------------------------------------------------
    def list_artifacts(self, *, run: str | None = None, kind: str | None = None, name: str | None = None,
                       limit: int | None = None) -> list:
        return _domain("artifacts").list_artifacts(self.store, run=run, kind=kind, name=name, limit=limit)

    def show_artifact(self, ref: str):  # noqa: ANN201
        return _domain("artifacts").show(self.store, ref)

    def get_artifact(self, ref: str, dest: str | Path, *, force: bool = False,
                     on_progress: Callable[..., None] | None = None) -> Download:
        return _domain("artifacts").get_artifact(self.store, ref, dest, force=force, on_progress=on_progress)

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

    def model_history(self, name: str, alias: str | None = None) -> list:
        return _domain("registry").history(self.store, name, alias)

    def aliases_at(self, name: str, when: str, alias: str | None = None):  # noqa: ANN201
        return _domain("registry").aliases_at(self.store, name, when, alias)

    def model_card(self, ref: str, *, limitations: str | None = None):  # noqa: ANN201
        return _domain("cards").model_card(self.store, ref, limitations=limitations)

    # -- lineage -----------------------------------------------------------------------------------
    def lineage(self, entity: str, direction: str = "upstream", depth: int = 10, max_nodes: int = 10_000):  # noqa: ANN201
        return _domain("lineage.entities").view(self.store, entity, direction, depth, max_nodes)

    def set_alias(self, ref: str, alias: str, *, reason: str):  # noqa: ANN201
        return _domain("registry").set_alias(self.store, ref, alias, reason=reason)

    def remove_alias(self, name: str, alias: str, *, reason: str):  # noqa: ANN201
        return _domain("registry").remove_alias(self.store, name, alias, reason=reason)

    # -- audit -------------------------------------------------------------------------------------
    def audit_proof(self, seq: int):  # noqa: ANN201
        return _domain("audit").proof(self.store, seq)

    def audit_checkpoint(self):  # noqa: ANN201
        return _domain("checkpoints").checkpoint(self.store)

    def public_key(self):  # noqa: ANN201
        return _domain("keys").public_key(self.store)

    def whoami(self):  # noqa: ANN201
        return _domain("identity").whoami(self.store)

    # -- users, tokens, roles ----------------------------------------------------------------------
    def list_identities(self):  # noqa: ANN201
        return _domain("identity").list_identities(self.store)

    def create_identity(self, name: str, kind: str = "user"):  # noqa: ANN201
        return _domain("identity").create_identity(self.store, name, kind)

    def disable_identity(self, name: str):  # noqa: ANN201
        return _domain("identity").disable_identity(self.store, name)

    def issue_token(self, name: str, *, days: int | None, label: str = ""):  # noqa: ANN201
        return _domain("identity").issue_token(self.store, name, days=days, label=label)

    def list_tokens(self, user: str | None = None):  # noqa: ANN201
        return _domain("identity").list_tokens(self.store, user)

    def revoke_token(self, token_id: str):  # noqa: ANN201
        return _domain("identity").revoke_token(self.store, token_id)

    def grant_role(self, name: str, role: str, project: str):  # noqa: ANN201
        return _domain("identity").grant_role(self.store, name, role, project)

    def revoke_role(self, name: str, project: str):  # noqa: ANN201
        return _domain("identity").revoke_role(self.store, name, project)

    def list_grants(self, user: str | None = None):  # noqa: ANN201
        return _domain("identity").list_grants(self.store, user)

    # -- verification ------------------------------------------------------------------------------
    def check(self, target: str, policy):  # noqa: ANN001, ANN201
        return _domain("verify.checklist").check(self.store, target, policy)

    def compare_outputs(self, a: str, b: str, *, rtol: float, atol: float, k: float, stitch: bool = True):  # noqa: ANN201
        return _domain("verify.compare").compare(self.store, a, b, rtol=rtol, atol=atol, k=k, stitch=stitch)

    # -- attestations ------------------------------------------------------------------------------
    def attest(self, ref: str, output: str | Path, *, policy):  # noqa: ANN001, ANN201
        return _domain("attest").attest(self.store, ref, output, policy=policy)

    def gate(self, model: str, attestation: str | Path, *, policy, override: str | None = None):  # noqa: ANN001, ANN201
        return _domain("attest").gate_production(self.store, model, attestation, override_reason=override,
                                                 policy=policy)

    def audit_log(self, *, target: str | None = None, actor: str | None = None, action: str | None = None,
                  limit: int | None = 100) -> list:
        return _domain("audit").log(self.store, target=target, actor=actor, action=action, limit=limit)

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

    def transform(self, parent, fn, params=None, name=None):  # noqa: ANN001, ANN201
        return _domain("data.transform").derive(self.store, parent, fn, params, name)

    def list_snapshots(self, name: str | None = None) -> list:
        return _domain("data.snapshot").list_snapshots(self.store, name)

    def load_snapshot(self, ref: str) -> Snapshot:
        return _domain("data.snapshot").load_snapshot(self.store, ref)

    def checkout(self, ref: str, dest: str | Path):  # noqa: ANN201
        return _domain("data.checkout").checkout(self.store, ref, dest)

    def diff_snapshots(self, old: str, new: str):  # noqa: ANN201
        return _domain("data.diff").diff(self.store, old, new)

    def verify_snapshots(self, ref: str | None = None, *, path: str | None = None,
                         on_progress: Callable[[int, int], None] | None = None):  # noqa: ANN201
        return _domain("data.verify").verify(self.store, ref, path=path, on_progress=on_progress)

    def list_splits(self, name: str | None = None) -> list:
        return _domain("data.split").list_splits(self.store, name)

    def load_split(self, ref: str) -> Split:
        return _domain("data.split").load(self.store, ref)

    def export_split(self, ref: str, path: str | Path):  # noqa: ANN201
        return _domain("data.split_ops").export_split(self.store, ref, path)

    def import_split(self, path: str | Path, snapshot: str, *, name: str, check: bool = True) -> Split:
        return _domain("data.split_ops").import_split(self.store, path, snapshot, name=name, check=check)

    def apply_split(self, ref: str, snapshot: str, *, name: str | None = None, check: bool = True) -> Split:
        return _domain("data.split_ops").apply_split(self.store, ref, snapshot, name=name, check=check)

    def check_split(self, ref: str, *, settings: dict | None = None, text_columns: tuple[str, ...] | None = None,
                    on_progress: Callable[..., None] | None = None):  # noqa: ANN201
        return _domain("data.split_ops").check_split(
            self.store, ref, settings=_domain("data.minhash").NearDupSettings(**(settings or {})),
            text_columns=text_columns, on_progress=on_progress)

    # -- a running run -----------------------------------------------------------------------------
    def use_input(self, run: str, use: InputUse) -> dict:
        """Declare input ``use.ref`` of running run ``run`` (what ``Run.use`` does, with the path
        found by the client): the lock gains the entry, the lineage a ``used`` edge. Returns
        ``{"entry", "recipe_id"}``."""
        store, run_id = self.store, records.get(self.store, run).id
        entry = _domain("tracking.run").input_entry(store, use.ref)
        entry.update(_placed(store, entry, use))
        locks, canonical = _domain("tracking.lock"), _domain("canonical")
        fields, lineage, audit = _domain("tracking.fields"), _domain("lineage"), _domain("audit")

        def write(conn):  # noqa: ANN001, ANN202
            row = records.require_running(conn, run_id, for_update=True)
            if row.recipe_id is None:
                raise InvalidInput(f"Run {run_id} has no lock, so it cannot record inputs.")
            lock, recipe = canonical.loads(store.objects.get_bytes(row.recipe_id)), row.recipe_id
            if locks.add_input(lock, entry):
                recipe = locks.store_lock(store, lock)
                conn.execute(_runs().update().where(_runs().c.id == run_id).values(recipe_id=recipe))
                fields.replace_section(conn, run_id, "config", lock["config"])
                audit.append(conn, store.actor, "run.lock", f"run:{run_id}", before=row.recipe_id, after=recipe)
            lineage.record_edge(conn, "used", f"run:{run_id}", entry["node"])
            return recipe

        return {"entry": entry, "recipe_id": store.db.run_write(write)}

    def set_summary(self, run: str, values: dict) -> dict:
        """Merge ``values`` into the summary of running run ``run`` (what ``Run.set_summary`` does);
        returns the whole summary."""
        store, run_id = self.store, records.get(self.store, run).id
        summary = _domain("canonical").normalize(values)
        fields = _domain("tracking.fields")

        def write(conn):  # noqa: ANN001, ANN202
            row = records.require_running(conn, run_id, for_update=True)
            merged = {**(row.summary or {}), **summary}
            conn.execute(_runs().update().where(_runs().c.id == run_id).values(summary=merged))
            fields.replace_section(conn, run_id, "summary", merged)
            return merged

        return store.db.run_write(write)


def _runs():  # noqa: ANN202
    return _domain("store.schema").runs


def _placed(store: Store, entry: dict, use: InputUse) -> dict:
    """``{"path", "path_kind"}`` of an input, from what the client found (see ``InputUse``): a
    ``path=`` must hold the input's bytes; else the path it snapshotted the input from, if any."""
    if use.path is None:
        snap = _snapshot_of(store, entry)
        found = (use.taken or {}).get(snap) if snap else None
        if not found:
            return {}
        return _checked_place(entry, *found)
    placed = _checked_place(entry, use.path, use.path_kind)
    files = _domain("tracking.where").input_files(store, entry)
    held = dict(use.held or ())
    if files is None:
        return placed
    if use.path_kind == "file":
        wrong = [] if len(files) == 1 and list(held.values()) == [files[0][1]] else [use.path]
    else:
        wrong = [p for p, d in files if held.get(p) != d]
    if wrong:
        listed = ", ".join(wrong[:5]) + (f" and {len(wrong) - 5} more" if len(wrong) > 5 else "")
        raise InvalidInput(f"{use.path} does not hold the bytes of {entry['ref']} ({listed} differ or are missing).",
                           hint="Declare what the script really reads there (snapshot it), or point path= at "
                                "a copy of the input.")
    return placed


def _checked_place(entry: dict, path: object, kind: object) -> dict:
    why = problem(path)
    if why is not None or kind not in ("file", "folder"):
        raise InvalidInput(f"The path given for {entry['ref']} cannot be recorded ({why or 'kind is file or folder'}).")
    return {"path": path, "path_kind": kind}


def _snapshot_of(store: Store, entry: dict) -> str | None:
    if entry.get("kind") == "snapshot":
        return entry["id"]
    if entry.get("kind") == "split":
        return _domain("data.split").load(store, entry["id"]).snapshot_id
    return None


def split_arguments(r: SplitRequest) -> dict:
    """``create_split``'s keyword arguments from a request (the server calls it too)."""
    return {"name": r.name, "ratios": r.ratios if r.ratios is not None else (0.8, 0.1, 0.1), "seed": r.seed,
            "strategy": r.strategy, "by": r.by, "group": r.group, "names": r.names, "dedup": r.dedup,
            "check": r.check, "text_columns": r.text_columns,
            "settings": _domain("data.minhash").NearDupSettings(**(r.settings or {}))}
