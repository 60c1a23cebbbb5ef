"""The routes behind ``remote.http.HttpService``: what the CLI's commands need of a team server.

Each handler calls one domain function (or ``remote.local.LocalService``, the same calls a local
command makes) on the request's store, which acts as the token's identity, and returns its value
as JSON; ``remote.http`` rebuilds the same typed value from it. Every route is in
``permissions.PERMISSIONS``; where the table's target cannot name the project (a model named in
the query, a list), the handler checks ``run.read`` on the project of each run it shows.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import sqlalchemy as sa
from fastapi import FastAPI, Path as PathParam, Request
from pydantic import BaseModel, Field

from runlock import artifacts, registry
from runlock.authz import ALL_PROJECTS, allowed
from runlock.data import split_ops, uploaded
from runlock.data.split import Split
from runlock.data.snapshot import save as save_snapshot
from runlock.errors import InvalidInput, NotFound, PermissionDenied
from runlock.refs import check_name
from runlock.remote.interface import InputUse, SplitRequest
from runlock.remote.local import LocalService
from runlock.server.permissions import V1
from runlock.store import Store
from runlock.store.schema import runs
from runlock.tracking import records
from runlock.tracking.records import RunRecord


RunId = Annotated[str, PathParam(pattern=r"^(run:)?[0-9A-Za-z]{6,26}$", description="A run id or a unique prefix")]
Ratio = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Column = Annotated[str, Field(max_length=200)]
T = TypeVar("T")
MAX_IDS_BYTES = 512 * 1024 * 1024      # a splits_v1.json: some ten million ids


class Labels(BaseModel):
    ids: list[str] = Field(max_length=10_000)


class Register(BaseModel):
    run: str = Field(max_length=200)
    artifact: str = Field(max_length=200)
    name: str = Field(max_length=200)
    meta: dict[str, Any] = Field(default_factory=dict)


class ModelRead(BaseModel):
    ref: str = Field(max_length=300)
    dest: str = Field(default="", max_length=4096)     # where the client writes it: for the audit entry


class SnapshotCreate(BaseModel):
    name: str = Field(max_length=200)
    manifest: dict[str, Any]
    source: str | None = Field(default=None, max_length=4096)


class NearDup(BaseModel):
    """``NearDupSettings``, bounded."""
    shingle: int = Field(default=2, ge=1, le=16)
    threshold: float = Field(default=0.65, gt=0, le=1, allow_inf_nan=False)
    bands: int = Field(default=30, ge=1, le=512)
    rows: int = Field(default=4, ge=1, le=64)


class SplitCreate(BaseModel):
    snapshot: str = Field(max_length=300)
    name: str | None = Field(default=None, max_length=200)
    ratios: list[Ratio] | None = Field(default=None, max_length=64)
    seed: int = Field(default=0, ge=0, le=2**63 - 1)
    strategy: str = Field(default="random", max_length=64)
    by: str | None = Field(default=None, max_length=200)
    group: str | None = Field(default=None, max_length=200)
    names: list[Column] | None = Field(default=None, max_length=64)
    dedup: bool = False
    check: bool = True
    text_columns: list[Column] | None = Field(default=None, max_length=64)
    settings: NearDup | None = None


class SplitImport(BaseModel):
    ids: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")     # the file, uploaded first as an object
    path: str = Field(max_length=4096)                     # where the client read it, for messages
    snapshot: str = Field(max_length=300)
    name: str = Field(max_length=200)
    check: bool = True


class SplitApply(BaseModel):
    ref: str = Field(max_length=300)
    snapshot: str = Field(max_length=300)
    name: str | None = Field(default=None, max_length=200)
    check: bool = True


class SplitCheck(BaseModel):
    ref: str = Field(max_length=300)
    settings: NearDup | None = None
    text_columns: list[Column] | None = Field(default=None, max_length=64)


class UseInput(BaseModel):
    ref: str = Field(max_length=300)
    path: str | None = Field(default=None, max_length=4096)
    path_kind: str | None = Field(default=None, pattern="^(file|folder)$")
    held: list[tuple[Annotated[str, Field(max_length=4096)], Annotated[str, Field(max_length=80)]]] | None = \
        Field(default=None, max_length=100_000)
    taken: dict[str, tuple[Annotated[str, Field(max_length=4096)], str]] | None = Field(default=None, max_length=1000)


class Summary(BaseModel):
    values: dict[str, Any]


def add(app: FastAPI) -> None:  # noqa: C901 - one flat list of thin handlers
    """Add these routes to ``app`` (``server.app.create_app`` calls it)."""

    @app.post(f"{V1}/runs/labels")
    def run_labels(request: Request, body: Labels) -> dict:
        # a prefix's length tells how close other ids lie, so only a reader of every run gets them
        # shortened (else an outsider could search the ids of other projects character by character)
        if not reads_everything(_store(request)):
            return {"labels": {i: i for i in body.ids}}
        return {"labels": _service(request).short_ids(body.ids)}

    @app.get(f"{V1}/runs/{{run_id}}/view")
    def run_view(request: Request, run_id: RunId) -> dict:
        view = _service(request).run_view(run_id)
        return jsonable({**view.to_dict(), "metrics": [m.__dict__ for m in view.metrics],
                         "notes": [n.to_dict() for n in view.notes]})

    @app.post(f"{V1}/runs/{{run_id}}/inputs")
    def use_input(request: Request, run_id: RunId, body: UseInput) -> dict:
        _input_readable(_store(request), body.ref)
        d = body.model_dump()
        use = InputUse(**{**d, "held": tuple(map(tuple, d["held"])) if d["held"] is not None else None,
                          "taken": {k: list(v) for k, v in d["taken"].items()} if d["taken"] else None})
        return jsonable(_service(request).use_input(run_id, use))

    @app.post(f"{V1}/runs/{{run_id}}/summary")
    def set_summary(request: Request, run_id: RunId, body: Summary) -> dict:
        return {"summary": jsonable(_service(request).set_summary(run_id, body.values))}

    @app.get(f"{V1}/models")
    def list_models(request: Request, name: str | None = None) -> dict:
        store = _store(request)
        found = _service(request).list_models(name)
        return {"models": [jsonable(m.to_dict()) for m in found if may_read_run(store, m.run_id)]}

    @app.get(f"{V1}/models/resolve")
    def resolve_model(request: Request, ref: str) -> dict:
        return jsonable(readable_model(_store(request), ref).to_dict())

    @app.post(f"{V1}/models", status_code=201)
    def register_model(request: Request, body: Register) -> dict:
        readable_run(_store(request), body.run)      # a run it may not read: the 403 a made-up id gets
        return jsonable(_service(request).register_model(body.run, body.artifact, body.name, body.meta).to_dict())

    @app.post(f"{V1}/models/read")
    def read_model(request: Request, body: ModelRead) -> dict:
        store = _store(request)
        readable_model(store, body.ref)
        mv, art = registry.prepare_read(store, body.ref)
        registry.record_read(store, mv, body.ref, body.dest)
        return {"version": jsonable(mv.to_dict()), "artifact": jsonable(art.to_dict())}

    @app.get(f"{V1}/audit/verify")
    def verify_audit(request: Request, deep: bool = False) -> dict:
        return jsonable(_service(request).verify_audit(deep=deep).to_dict())

    @app.post(f"{V1}/snapshots", status_code=201)
    def create_snapshot(request: Request, body: SnapshotCreate) -> dict:
        store = _store(request)
        check_name(body.name, "dataset name")
        manifest = uploaded.checked_manifest(store.objects, body.manifest)
        snap = save_snapshot(store, manifest, body.name, source=body.source)
        return jsonable({"id": snap.id, "kind": snap.kind, "manifest": snap.manifest, "name": snap.name,
                         "version": snap.version, "created": snap.created})

    @app.post(f"{V1}/splits", status_code=201)
    def create_split(request: Request, body: SplitCreate) -> dict:
        d = body.model_dump()
        req = SplitRequest(**{**d, **{k: tuple(v) for k, v in d.items()
                                      if k in ("ratios", "names", "text_columns") and v is not None}})
        return split_json(_service(request).split(req))

    @app.post(f"{V1}/splits/import", status_code=201)
    def import_split(request: Request, body: SplitImport) -> dict:
        store = _store(request)
        data = object_bytes(store, body.ids, MAX_IDS_BYTES, "a split file")
        check_name(body.name, "split name")
        return split_json(split_ops.import_ids(store, split_ops.parse_ids(data, body.path), body.path, body.snapshot,
                                               name=body.name, check=body.check))

    @app.post(f"{V1}/splits/apply", status_code=201)
    def apply_split(request: Request, body: SplitApply) -> dict:
        return split_json(_service(request).apply_split(body.ref, body.snapshot, name=body.name, check=body.check))

    @app.post(f"{V1}/splits/check")
    def check_split(request: Request, body: SplitCheck) -> dict:
        found = _service(request).check_split(body.ref, settings=body.settings.model_dump() if body.settings else None,
                                              text_columns=tuple(body.text_columns) if body.text_columns else None)
        return jsonable({"split": found.split, "report": found.report.to_dict()})


def split_json(sp: Split) -> dict:
    """A split as ``remote.http`` rebuilds it."""
    return jsonable({"id": sp.id, "manifest": sp.manifest, "name": sp.name, "version": sp.version,
                     "created": sp.created, "leakage": sp.leakage.to_dict() if sp.leakage else None})


def object_bytes(store: Store, digest: str, limit: int, what: str) -> bytes:
    """The bytes of an object a client uploaded for this request (at most ``limit``)."""
    if not store.objects.has(digest):
        raise InvalidInput(f"The server holds no object {digest}.",
                           hint="Upload it first (PUT /api/v1/objects/{digest}).")
    with store.objects.open(digest) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise InvalidInput(f"{digest} is larger than {what} may be here ({limit:,} bytes).")
    return data


def _store(request: Request) -> Store:
    return request.state.store


def _service(request: Request) -> LocalService:
    return LocalService(_store(request))


def _input_readable(store: Store, ref: str) -> None:
    """Refuse to declare an input the caller may not read: a model or artifact needs read on its
    run's project, data (``ds:``, ``split:``) a viewer on every project, as its own routes do."""
    ns = ref.split(":", 1)[0]
    if ns == "model":
        readable_model(store, ref)
        return
    if ns == "art":
        readable_artifact(store, ref)
        return
    action = "split.read" if ns == "split" else "snapshot.read"
    with store.db.read() as conn:
        if not allowed(conn, store.actor, action, ALL_PROJECTS):
            raise PermissionDenied(store.actor, action, ref, "viewer on every project (*)")


# -- no existence leak ---------------------------------------------------------------------------
# A caller who may not read a run gets the same 403, with the same words, whether the run exists
# (in a project it cannot read) or not: a 404 would tell an outsider which ids exist elsewhere.
# Only a viewer on ``*``, who may read every run anyway, hears "not found" (and "ambiguous").
def reads_everything(store: Store) -> bool:
    with store.db.read() as conn:
        return allowed(conn, store.actor, "run.read", ALL_PROJECTS)


def hidden(store: Store, action: str, ref: str) -> PermissionDenied:
    """The one refusal for a reference the caller may not read, existing or not: the words the
    permission guard uses for a run id in the path (``PERMISSIONS``), for the same reason."""
    return PermissionDenied(store.actor, action, ref[:300], "viewer")


def readable_run(store: Store, ref: str) -> RunRecord:
    """The run ``ref`` names, once the caller may read it; else ``hidden`` (a 403), found or not."""
    return _readable(store, "run.read", f"run:{ref.removeprefix('run:')}", lambda: records.get(store, ref),
                     lambda rec: rec.id)


def readable_model(store: Store, ref: str) -> registry.ModelVersion:
    """The model version ``ref`` names, once the caller may read its run; else ``hidden``."""
    return _readable(store, "model.read", ref, lambda: registry.resolve(store, ref), lambda mv: mv.run_id)


def readable_artifact(store: Store, ref: str) -> artifacts.Artifact:
    """The artifact ``ref`` names, once the caller may read its run; else ``hidden``."""
    return _readable(store, "artifact.read", ref, lambda: artifacts.find(store, ref), lambda art: art.run_id)


def _readable(store: Store, action: str, shown: str, find: Callable[[], T], run_of: Callable[[T], str]) -> T:
    """What ``find`` finds, once the caller may read the run it belongs to (``run_of``); else the
    same ``hidden`` 403 whether it exists or not (only a reader of every run hears "not found")."""
    try:
        found = find()
    except (NotFound, InvalidInput):
        if reads_everything(store):
            raise
        found = None
    if found is None or not may_read_run(store, run_of(found)):
        raise hidden(store, action, shown)
    return found


def may_read_run(store: Store, run_id: str) -> bool:
    with store.db.read() as conn:
        if allowed(conn, store.actor, "run.read", ALL_PROJECTS):
            return True
        project = conn.execute(sa.select(runs.c.project).where(runs.c.id == run_id)).scalar()
        return project is not None and allowed(conn, store.actor, "run.read", ALL_PROJECTS, {"project": project})


def jsonable(v: Any) -> Any:
    """``v`` as JSON can carry it: a float that is not finite becomes "nan", "inf" or "-inf"."""
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    return v
