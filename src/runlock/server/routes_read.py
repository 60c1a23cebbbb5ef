"""The reading routes behind more CLI commands: ``runs diff``/``compare``, ``data list/show/diff``,
``split list/show``, ``registry history``, ``audit log`` (``metrics`` reads ``/runs/{id}/metrics`` and ``/points``, in ``app``).

Each handler calls one ``LocalService`` method (the call a local command makes) on the request's
store and returns its value as JSON (non-finite floats as "nan", "inf", "-inf": ``jsonable``);
``remote.http`` rebuilds the same typed value. Snapshots and splits belong to no project: their
routes need a viewer on ``*`` (the table in ``permissions``). A diff or comparison names its runs
in the body, so the handler requires ``run.read`` on the project of each.
"""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import FastAPI, Query, Request
from pydantic import BaseModel, Field

from runlock.authz import ALL_PROJECTS, allowed
from runlock.data.snapshot import snapshots as snapshots_t
from runlock.errors import InvalidInput, NotFound
from runlock.lineage import MAX_NODES
from runlock.lineage.entities import HIDDEN, NodeInfo, cut
from runlock.refs import check_name
from runlock.remote.local import LocalService
from runlock.server.permissions import V1
from runlock.store import Store
from runlock.server.routes_service import (hidden, jsonable, may_read_run, readable_model, readable_run,
                                           reads_everything)

RunRef = Field(max_length=200)


class Pair(BaseModel):
    a: str = RunRef
    b: str = RunRef


class VerifyAsk(BaseModel):
    ref: str | None = Field(default=None, max_length=300)     # None: every snapshot


class Several(BaseModel):
    runs: list[str] = Field(min_length=1, max_length=100)
    only_differences: bool = False


def add(app: FastAPI) -> None:
    """Add these routes to ``app`` (``server.app.create_app`` calls it)."""
    add_more(app)
    add_lineage(app)
    add_aliases(app)
    add_proof(app)

    @app.post(f"{V1}/runs/diff")
    def diff_runs(request: Request, body: Pair) -> dict:
        store = _readable(request, [body.a, body.b])
        return jsonable(LocalService(store).diff_runs(body.a, body.b).to_dict())

    @app.post(f"{V1}/runs/compare")
    def compare_runs(request: Request, body: Several) -> dict:
        store = _readable(request, body.runs)
        return jsonable(LocalService(store).compare_runs(body.runs, only_differences=body.only_differences).to_dict())

    @app.get(f"{V1}/snapshots")
    def list_snapshots(request: Request, name: str | None = None) -> dict:
        found = _service(request).list_snapshots(_name(name, "dataset name"))
        return {"snapshots": [i.__dict__ for i in found]}

    @app.get(f"{V1}/snapshots/resolve")
    def load_snapshot(request: Request, ref: str) -> dict:
        snap = _service(request).load_snapshot(ref[:300])
        return jsonable({"id": snap.id, "kind": snap.kind, "manifest": snap.manifest, "name": snap.name,
                         "version": snap.version})

    @app.get(f"{V1}/snapshots/derived")
    def derived(request: Request, recipe: Annotated[str, Query(pattern=r"^sha256:[0-9a-f]{64}$")]) -> dict:
        """The snapshot a recipe already made, if one did (``runlock.transform`` skips the work)."""
        store: Store = request.state.store
        with store.db.read() as conn:
            found = conn.execute(sa.select(snapshots_t.c.id).where(snapshots_t.c.recipe_id == recipe).limit(1)).scalar()
        return {"id": found}

    @app.get(f"{V1}/snapshots/diff")
    def diff_snapshots(request: Request, old: Annotated[str, Query(max_length=300)],
                       new: Annotated[str, Query(max_length=300)]) -> dict:
        return _service(request).diff_snapshots(old, new).to_dict()

    @app.post(f"{V1}/snapshots/verify")
    def verify_snapshots(request: Request, body: VerifyAsk) -> dict:
        return _service(request).verify_snapshots(body.ref).to_dict()

    @app.get(f"{V1}/splits")
    def list_splits(request: Request, name: str | None = None) -> dict:
        return {"splits": [jsonable(i.__dict__) for i in _service(request).list_splits(_name(name, "split name"))]}

    @app.get(f"{V1}/splits/resolve")
    def load_split(request: Request, ref: str) -> dict:
        sp = _service(request).load_split(ref[:300])
        return jsonable({"id": sp.id, "manifest": sp.manifest, "name": sp.name, "version": sp.version,
                         "leakage": sp.leakage.to_dict() if sp.leakage else None})


def add_more(app: FastAPI) -> None:
    """``registry history`` and ``audit log``."""

    @app.get(f"{V1}/models/history")
    def model_history(request: Request, name: str, alias: str | None = None) -> dict:
        _models_readable(request, name)
        return {"moves": [m.__dict__ for m in _service(request).model_history(name, alias)]}

    @app.get(f"{V1}/models/aliases-at")
    def aliases_at(request: Request, name: str, at: str, alias: str | None = None) -> dict:
        _models_readable(request, name)
        return _service(request).aliases_at(name, at[:100], alias).to_dict()

    @app.get(f"{V1}/audit/log")
    def audit_log(request: Request, target: str | None = None, actor: str | None = None, action: str | None = None,
                  limit: Annotated[int, Query(ge=0)] = 100) -> dict:
        found = _service(request).audit_log(target=target, actor=actor, action=action, limit=limit or None)
        return {"entries": [jsonable(e.to_dict()) for e in found]}


class AliasSet(BaseModel):
    ref: str = Field(max_length=300)
    alias: str = Field(max_length=200)
    reason: str = Field(max_length=10_000)


class AliasRemove(BaseModel):
    name: str = Field(max_length=200)
    alias: str = Field(max_length=200)
    reason: str = Field(max_length=10_000)


def add_aliases(app: FastAPI) -> None:
    """``registry alias set/remove``: the domain's own move, as the token's identity, so the same
    rules hold as locally (a maintainer on the version's project; production: an admin, which
    ``authz`` checks inside the move's transaction). A model the caller may not read is refused
    first, the same whether it exists or not."""

    @app.post(f"{V1}/models/aliases")
    def set_alias(request: Request, body: AliasSet) -> dict:
        readable_model(request.state.store, body.ref)
        return _service(request).set_alias(body.ref, body.alias, reason=body.reason).__dict__

    @app.post(f"{V1}/models/aliases/remove")
    def remove_alias(request: Request, body: AliasRemove) -> dict:
        _models_readable(request, body.name)
        return _service(request).remove_alias(body.name, body.alias, reason=body.reason).__dict__


class ProofAsk(BaseModel):
    seq: int = Field(ge=1, le=2**62)


def add_proof(app: FastAPI) -> None:
    """``audit proof``: a viewer on ``*`` reads the entry (as ``audit log``); where no signed
    checkpoint covers it yet, the domain signs one here, on the server that holds the key, and
    that needs what it needs locally (an editor on ``*``)."""

    @app.post(f"{V1}/audit/proof")
    def audit_proof(request: Request, body: ProofAsk) -> dict:
        return _service(request).audit_proof(body.seq).to_dict()


def add_lineage(app: FastAPI) -> None:
    """``lineage``: the answer is ``LineageView.to_dict`` (the CLI's ``--format json``). A walk
    crosses projects (one snapshot feeds runs of many): a viewer on ``*`` sees all of it; anyone
    else must be able to read the entity asked about (the same 403 whether it exists or not) and
    sees every node they may not read as ``hidden:N`` (``lineage.entities.cut``): runs of their
    projects, their artifacts and model versions show; snapshots and splits, which belong to no
    project, and everything of other projects do not."""

    @app.get(f"{V1}/lineage")
    def lineage(request: Request, entity: Annotated[str, Query(max_length=300)],
                direction: Annotated[str, Query(pattern="^(upstream|downstream|both)$")] = "upstream",
                depth: Annotated[int, Query(ge=0, le=1000)] = 10,
                max_nodes: Annotated[int, Query(ge=1, le=MAX_NODES)] = MAX_NODES) -> dict:
        store: Store = request.state.store
        with store.db.read() as conn:
            everything = allowed(conn, store.actor, "lineage.read", ALL_PROJECTS)
        if everything:
            return jsonable(_service(request).lineage(entity, direction, depth, max_nodes).to_dict())
        try:
            found = _service(request).lineage(entity, direction, depth, max_nodes)
        except (NotFound, InvalidInput):
            raise hidden(store, "lineage.read", entity) from None
        shown = cut(found, lambda info: _visible(store, info))
        if shown.graph.root.startswith(f"{HIDDEN}:"):
            raise hidden(store, "lineage.read", entity)
        return jsonable(shown.to_dict())


def _visible(store: Store, info: NodeInfo) -> bool:
    """May a reader of some projects see this node? Runs of those projects, and the artifacts and
    model versions those runs made."""
    run = info.id if info.type == "run" else info.attrs.get("run") if info.type in ("artifact", "model") else None
    return isinstance(run, str) and may_read_run(store, run)


def _models_readable(request: Request, name: str) -> None:
    """A 403 unless the caller may read the run of every version of model ``name``."""
    store: Store = request.state.store
    versions = LocalService(store).list_models(check_name(name, "model name"))
    if not all(may_read_run(store, mv.run_id) for mv in versions) or not (versions or reads_everything(store)):
        raise hidden(store, "run.read", f"model:{name}")     # the same whether the name exists or not


def _service(request: Request) -> LocalService:
    return LocalService(request.state.store)


def _name(name: str | None, what: str) -> str | None:
    return check_name(name, what) if name is not None else None


def _readable(request: Request, refs: list[str]) -> Store:
    """The request's store, once its actor may read every run ``refs`` names (else a 403, the same
    for a run that does not exist: ``routes_service.readable_run``)."""
    store: Store = request.state.store
    for ref in refs:
        readable_run(store, ref)
    return store
