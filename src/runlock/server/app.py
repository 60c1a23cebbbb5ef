"""The team server's HTTP API (``/api/v1``): a thin adapter from requests to library functions.

``create_app(store)`` builds the FastAPI app over one open store; each request acts as the
identity of its ``Authorization: Bearer rlk_…`` token, on a copy of the store handle whose
``actor`` is that identity, so the domain's own checks (``audit.append`` calls ``authz.require``)
and the route's rule in ``permissions.PERMISSIONS`` both apply. Every other path is the web UI
(``webui``: the pages of ``runlock ui``, behind a sign-in, checked against the same roles). Errors become JSON
``{"error": message, "hint": hint}`` with a 4xx status; a driver error is a 503, never a trace.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Path as PathParam, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from ulid import ULID

from runlock import artifacts, audit, canonical, identity
from runlock._version import __version__
from runlock.authz import ALL_PROJECTS, allowed, needed_role, role_grants
from runlock.errors import (Conflict, IntegrityError, InvalidInput, NotFound, PermissionDenied,
                            RunlockError, SealedError, StoreBusy, StoreError)
from runlock.refs import check_name
from runlock.server import ingest, routes_admin, routes_read, routes_rerun, routes_runs, routes_service, routes_verify, webui
from runlock.server.limits import BodyLimit
from runlock.server.permissions import V1, rule_for
from runlock.store import Store
from runlock.store.schema import artifacts as artifacts_t
from runlock.store.schema import runs
from runlock.tracking import fields, records, series
from runlock.tracking import lock as locks
from runlock.tracking.query import FoundRun, find_runs
from runlock.tracking.query import all_fields as query_fields

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_STATUS = ((PermissionDenied, 403), (NotFound, 404), (SealedError, 409), (Conflict, 409),
           (IntegrityError, 400), (InvalidInput, 400), (StoreBusy, 503), (StoreError, 503))


RunId = Annotated[str, PathParam(pattern=r"^(run:)?[0-9A-Za-z]{6,26}$", description="A run id or a unique prefix")]
Digest = Annotated[str, PathParam(pattern=_DIGEST.pattern, description="sha256:<64 hex>")]


class RunCreate(BaseModel):
    project: str = Field(max_length=200)
    name: str | None = Field(default=None, max_length=200)
    tags: dict[str, Any] = Field(default_factory=dict)
    lock: dict[str, Any] | None = None
    context: dict[str, Any] = Field(default_factory=dict)
    host: str = Field(default="", max_length=200)


class RunFinish(BaseModel):
    status: str = Field(default="finished", pattern="^(finished|failed)$")
    error: str | None = Field(default=None, max_length=100_000)
    lost_points: int = Field(default=0, ge=0)


class Digests(BaseModel):
    digests: list[str] = Field(max_length=10_000)


class ArtifactCreate(BaseModel):
    name: str = Field(max_length=200)
    digest: str = Field(pattern=_DIGEST.pattern)
    kind: str = Field(default="artifact", max_length=64)
    folder: bool = False
    media_type: str = Field(default="application/octet-stream", max_length=200)
    metadata: dict[str, Any] = Field(default_factory=dict)


def create_app(store: Store) -> FastAPI:
    app = FastAPI(title="runlock", version=__version__, docs_url=None, redoc_url=None,
                  dependencies=[Depends(_guard(store))])
    app.add_middleware(BodyLimit)
    app.add_exception_handler(RunlockError, _runlock_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(Exception, _unexpected)
    _routes(app)
    routes_service.add(app)              # what the CLI's commands ask of a server (remote/http.py)
    routes_read.add(app)                 # … and what its reading commands ask
    routes_runs.add(app)                 # runs tag/note/delete, artifacts list/show/get
    routes_verify.add(app)               # check, compare, audit checkpoint
    routes_rerun.add(app)                # rerun, verify, variance: recipe in, outcome computed here
    routes_admin.add(app)                # users, tokens, roles
    app.mount("/", webui.pages(store))   # the web UI, after the API: its own sign-in and the same roles
    return app


# -- who is asking, and may they ---------------------------------------------------------------
def _guard(store: Store):  # noqa: ANN202
    def guard(request: Request) -> None:
        route = request.scope.get("route")
        method = "GET" if request.method == "HEAD" else request.method
        rule = rule_for(method, getattr(route, "path", ""))
        if rule is None:
            raise PermissionDenied("?", "use", request.url.path, "a route in the permission table")
        request.state.store = store
        if not rule.signed_in:
            return
        actor = _authenticate(store, request.headers.get("authorization", ""))
        request.state.store = dataclasses.replace(store, actor=actor)
        if rule.action is not None and rule.target is not None:
            with store.db.read() as conn:
                if "run_id" in request.path_params and not rule.any_project:
                    _resolve_run_prefix(conn, actor, rule.action, request)
                target = rule.target_for(request.path_params)
                ok = (_allowed_somewhere(conn, actor, rule.action) if rule.any_project
                      else allowed(conn, actor, rule.action, target))
            if not ok:
                where = "any project" if rule.any_project else target
                raise PermissionDenied(actor, rule.action, where, needed_role(actor, rule.action, target, {}))
    return guard


def _resolve_run_prefix(conn, actor: str, action: str, request: Request) -> None:  # noqa: ANN001
    """A run id prefix in the path, resolved among the runs the caller may ``action`` (and only
    those, so neither a match nor an ambiguity tells of a run elsewhere): the route then sees the
    whole id. A reader of every project needs none of this (the domain resolves it, as locally);
    a prefix naming none of the caller's runs is left alone, and refused like an unknown id."""
    ref = request.path_params["run_id"]
    ident = ref.removeprefix("run:").upper()
    if len(ident) >= 26 or allowed(conn, actor, action, ALL_PROJECTS):
        return
    granted = set(conn.execute(sa.select(role_grants.c.project).where(role_grants.c.identity == actor)).scalars())
    projects = [p for p in granted if allowed(conn, actor, action, ALL_PROJECTS, {"project": p})]
    mine = list(conn.execute(sa.select(runs.c.id).where(runs.c.id.startswith(ident, autoescape=True),
                                                        runs.c.project.in_(projects)).limit(2)).scalars())
    if len(mine) > 1:
        raise InvalidInput(f"Run reference {ref!r} matches several of your runs ({', '.join(mine[:2])} ...); "
                           "give more characters.")
    if mine:
        request.scope["path_params"] = {**request.path_params, "run_id": mine[0]}


def _allowed_somewhere(conn, actor: str, action: str) -> bool:  # noqa: ANN001
    """Does ``actor`` hold, on some project, a role that allows ``action``?"""
    return _project_allowing(conn, actor, action) is not None


def _project_allowing(conn, actor: str, action: str, among: set | None = None) -> str | None:  # noqa: ANN001
    """``*`` if ``actor`` may do ``action`` everywhere, else a project (of ``among``) where it may."""
    if allowed(conn, actor, action, ALL_PROJECTS):
        return ALL_PROJECTS
    if among is None:
        among = set(conn.execute(sa.select(role_grants.c.project).where(role_grants.c.identity == actor)).scalars())
    return next((p for p in sorted(among) if allowed(conn, actor, action, ALL_PROJECTS, {"project": p})), None)


def _held_for(store: Store, digest: str) -> bool:
    """Does the server hold ``digest`` as far as this caller may know (it may read it)?"""
    return store.objects.has(digest) and _may_read_object(store, digest)


def _may_read_object(store: Store, digest: str, via: str | None = None) -> bool:
    """A viewer on ``*``, or on the project of a run that has this object as an artifact, or
    (``via``) whose folder artifact's file list ``via`` names this object."""
    with store.db.read() as conn:
        return _reading_project(conn, store.actor, digest, via, store) is not None


def _reading_project(conn, actor: str, digest: str, via: str | None = None,  # noqa: ANN001
                     store: Store | None = None) -> str | None:
    if allowed(conn, actor, "object.read", ALL_PROJECTS):
        return ALL_PROJECTS
    projects = set(conn.execute(sa.select(runs.c.project).join(artifacts_t, artifacts_t.c.run_id == runs.c.id).where(
        sa.or_(artifacts_t.c.digest == digest, artifacts_t.c.manifest == digest))).scalars())
    found = _project_allowing(conn, actor, "object.read", projects)
    if found is not None or via is None or via == digest or store is None:
        return found
    listing = set(conn.execute(sa.select(runs.c.project).join(artifacts_t, artifacts_t.c.run_id == runs.c.id).where(
        artifacts_t.c.manifest == via)).scalars())
    project = _project_allowing(conn, actor, "object.read", listing)
    return project if project is not None and _lists(store, via, digest) else None


def _lists(store: Store, manifest: str, digest: str) -> bool:
    """Does folder manifest ``manifest`` (an object the caller may read) name object ``digest``?"""
    doc = canonical.loads(store.objects.get_bytes(manifest))
    entries = doc.get("entries") if isinstance(doc, dict) else None
    return isinstance(entries, list) and any(isinstance(e, dict) and e.get("digest") == digest for e in entries)


class Unauthenticated(RunlockError):
    pass


def _authenticate(store: Store, header: str) -> str:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("This route needs a token: send 'Authorization: Bearer rlk_…'.",
                              hint="Get one with `runlock tokens issue NAME`, then `runlock login URL`.")
    try:
        return identity.authenticate(store, token).name
    except identity.TokenRefused as e:
        raise Unauthenticated(e.message, hint=e.hint) from None


async def _runlock_error(request: Request, exc: RunlockError) -> JSONResponse:
    status = 401 if isinstance(exc, Unauthenticated) else next(
        (code for kind, code in _STATUS if isinstance(exc, kind)), 400)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": exc.message, "hint": exc.hint}, status_code=status, headers=headers)


async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()))
    return JSONResponse({"error": f"Invalid request: {where}: {first.get('msg', 'malformed')}", "hint": None},
                        status_code=422)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    """A bug or a failing database: a 500 that says so, with no trace (the server's log keeps it)."""
    return JSONResponse({"error": f"The server failed ({type(exc).__name__}).", "hint": "See the server's log."},
                        status_code=500)


# -- routes ------------------------------------------------------------------------------------
def _store(request: Request) -> Store:
    return request.state.store


def _routes(app: FastAPI) -> None:  # noqa: C901 - one flat list of thin handlers
    @app.get(f"{V1}/health")
    def health() -> dict:
        return {"status": "ok", "version": __version__}

    @app.get(f"{V1}/whoami")
    def whoami(request: Request) -> dict:
        return identity.whoami(_store(request)).to_dict()

    @app.get(f"{V1}/runs")
    def list_runs(request: Request, project: str | None = None, status: str | None = None,
                  where: str | None = None, sort: str | None = None, limit: int = 100,
                  deleted: bool = False, all_fields: bool = False) -> dict:
        store = _store(request)
        if not 0 < limit <= 10_000:
            raise InvalidInput("limit is 1 to 10000.")
        found = find_runs(store, project=project, status=status, where=where, sort=sort, deleted=deleted)
        with store.db.read() as conn:
            readable = {p for p in {f.record.project for f in found}
                        if allowed(conn, store.actor, "run.read", ALL_PROJECTS, {"project": p})}
        shown = [f for f in found if f.record.project in readable][:limit]
        if all_fields:      # every field of each (runlock.runs() builds its DataFrame from them)
            shown = [FoundRun(f.record, v) for f, v in zip(shown, query_fields(store, [f.record for f in shown]))]
        return {"runs": [{**_run(f.record), "fields": _jsonable(f.fields)} for f in shown]}

    @app.post(f"{V1}/runs", status_code=201)
    def create_run(request: Request, body: RunCreate) -> dict:
        return _run(_create_run(_store(request), body))

    @app.get(f"{V1}/runs/{{run_id}}")
    def show_run(request: Request, run_id: RunId) -> dict:
        return _run(records.get(_store(request), run_id))

    @app.get(f"{V1}/runs/{{run_id}}/metrics")
    def run_metrics(request: Request, run_id: RunId, rank: Annotated[int | None, Query(ge=0)] = None) -> dict:
        return {"metrics": [_finite(dataclasses.asdict(k)) for k in series.summarize(_store(request), run_id,
                                                                                    rank=rank)]}

    @app.get(f"{V1}/runs/{{run_id}}/points")
    def run_points(request: Request, run_id: RunId, key: Annotated[list[str] | None, Query(max_length=1000)] = None,
                   rank: Annotated[int | None, Query(ge=0)] = None,
                   stream: Annotated[bool, Query(description="one point per line (NDJSON), streamed as "
                                                 "read: for runs of any size")] = False) -> Any:
        store = _store(request)
        rec = records.get(store, run_id)        # a missing run is a 404 before anything streams
        pts = series.points(store, rec.id, keys=key or None, rank=rank)
        if stream:
            lines = (json.dumps([p.key, p.step, _num(p.value), p.rank, p.time]) + "\n" for p in pts)
            return StreamingResponse(lines, media_type="application/x-ndjson")
        return {"points": [[p.key, p.step, _num(p.value), p.rank, p.time] for p in pts]}

    @app.post(f"{V1}/runs/{{run_id}}/points", openapi_extra=_BATCH_SCHEMA)
    async def log_points(request: Request, run_id: RunId) -> dict:
        body = await request.body()
        return await run_in_threadpool(_log_points, _store(request), run_id, body,  # off the event loop
                                       request.headers.get("content-type", ""),
                                       request.headers.get("content-encoding", ""))

    @app.post(f"{V1}/runs/{{run_id}}/finish")
    def finish_run(request: Request, run_id: RunId, body: RunFinish) -> dict:
        store = _store(request)
        rec = records.get(store, run_id)
        context = {"lost_points": body.lost_points} if body.lost_points else None
        status = "failed" if body.lost_points else body.status
        records.end(store, rec.id, status, error=body.error, context=context)
        return _run(records.get(store, rec.id))

    @app.get(f"{V1}/runs/{{run_id}}/artifacts")
    def run_artifacts(request: Request, run_id: RunId) -> dict:
        rec = records.get(_store(request), run_id)
        return {"artifacts": [a.to_dict() for a in artifacts.for_run(_store(request), rec.id)]}

    @app.post(f"{V1}/runs/{{run_id}}/artifacts", status_code=201)
    def log_artifact(request: Request, run_id: RunId, body: ArtifactCreate) -> dict:
        return _log_artifact(_store(request), run_id, body).to_dict()

    @app.post(f"{V1}/objects/missing")
    def missing(request: Request, body: Digests) -> dict:
        """The digests the client must send: those the server lacks, and those it holds but the
        caller may not read (so the answer is no oracle of what the server holds; the upload
        then proves the caller has the bytes)."""
        store = _store(request)
        for d in body.digests:
            _check_digest(d)
        return {"missing": [d for d in dict.fromkeys(body.digests) if not _held_for(store, d)]}

    @app.put(f"{V1}/objects/{{digest}}", status_code=201, openapi_extra=_OBJECT_SCHEMA)
    async def put_object(request: Request, digest: Digest) -> dict:
        store = _store(request)
        _check_digest(digest)
        held = store.objects.has(digest)
        if held and await run_in_threadpool(_may_read_object, store, digest):
            return {"digest": digest, "stored": False}
        await _receive_object(store, digest, request)      # bytes that hash to the digest, or a 400
        return {"digest": digest, "stored": not held}

    @app.get(f"{V1}/objects/{{digest}}", response_class=StreamingResponse)
    def get_object(request: Request, digest: Digest,
                   via: Annotated[str | None, Query(pattern=_DIGEST.pattern, description=(
                       "a folder artifact's file list that names this object"))] = None) -> StreamingResponse:
        store = _store(request)
        _check_digest(digest)
        if not _may_read_object(store, digest, via):
            raise PermissionDenied(store.actor, "object.read", f"object:{digest}",
                                   "viewer on every project, or on the project of a run with this artifact "
                                   "(or with a folder artifact whose file list names it: ?via=)")
        data = store.objects.get_bytes(digest)      # verified against its digest before it leaves
        store.db.run_write(lambda conn: _audit_read(conn, store, digest, via))
        return StreamingResponse(iter([data]), media_type="application/octet-stream",
                                 headers={"Digest": f"sha-256={digest[7:]}", "Content-Length": str(len(data))})


def _audit_read(conn, store: Store, digest: str, via: str | None = None) -> None:  # noqa: ANN001
    """Audit a read under the project that allowed it (``*`` if the reader has it)."""
    project = _reading_project(conn, store.actor, digest, via, store) or ALL_PROJECTS
    audit.append(conn, store.actor, "object.read", f"object:{digest}", details={"project": project})


_BATCH_SCHEMA = {"requestBody": {"required": True, "content": {
    "application/msgpack": {"schema": {"type": "string", "format": "binary"}},
    "application/json": {"schema": {"type": "object", "properties": {
        "rank": {"type": "integer", "minimum": 0},
        "points": {"type": "array", "items": {"type": "array", "minItems": 5, "maxItems": 5}}},
        "required": ["points"]}}}}}
_OBJECT_SCHEMA = {"requestBody": {"required": True, "content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


def _log_points(store: Store, run_id: str, body: bytes, content_type: str, encoding: str) -> dict:
    doc = ingest.decode(body, content_type, encoding)
    rec = records.get(store, run_id)
    return {"stored": ingest.store_points(store, rec.id, ingest.rows(rec.id, doc))}


def _check_digest(digest: str) -> None:
    if not _DIGEST.match(digest):
        raise InvalidInput(f"{digest[:80]!r} is not an object id; objects are named sha256:<64 hex>.")


def _num(v: float) -> float | str:
    return v if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))


def _finite(d: dict) -> dict:
    return {k: _num(v) if isinstance(v, float) else v for k, v in d.items()}


def _run(rec: records.RunRecord) -> dict:
    return _jsonable(rec.to_dict())


def _jsonable(v: Any) -> Any:
    if isinstance(v, float):
        return _num(v)
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def _create_run(store: Store, body: RunCreate) -> records.RunRecord:
    check_name(body.project, "project name")
    name = check_name(body.name, "run name") if body.name else body.project
    lock = canonical.normalize(body.lock) if body.lock is not None else None
    if lock is not None and lock.get("schema") != locks.LOCK_SCHEMA:
        raise InvalidInput(f"A run's lock has schema {locks.LOCK_SCHEMA!r}.")
    tags = canonical.normalize(body.tags)
    context = {**canonical.normalize(body.context), "via": "server"}
    run_id = str(ULID())
    recipe = locks.store_lock(store, lock) if lock is not None else None

    def write(conn):  # noqa: ANN001, ANN202
        records.create(conn, store, run_id=run_id, project=body.project, name=name, pid=os.getpid(),
                       tags=tags, context=context)
        # the client's host, no pid: the run lives while its client beats (records.STALE_AFTER_SECONDS)
        conn.execute(runs.update().where(runs.c.id == run_id).values(
            recipe_id=recipe, pid=None, pid_started=None, host=f"{body.host or 'client'} (via server)"))
        if lock is not None:
            fields.replace_section(conn, run_id, "config", lock.get("config") or {})
        fields.replace_section(conn, run_id, "tags", tags)

    store.db.run_write(write)
    return records.get(store, run_id)


def _log_artifact(store: Store, run_id: str, body: ArtifactCreate) -> artifacts.Artifact:
    rec = records.get(store, run_id)
    if body.folder:
        doc = canonical.loads(store.objects.get_bytes(body.digest))
        entries = doc.get("entries") if isinstance(doc, dict) else None
        if not isinstance(entries, list):
            raise InvalidInput(f"{body.digest} is not a folder manifest.")
        absent = [e["digest"] for e in entries if not store.objects.has(e["digest"])]
        if absent:
            raise InvalidInput(f"{len(absent)} files of the folder are not uploaded yet (first: {absent[0]}).",
                               hint="Upload them first: POST /api/v1/objects/missing, then PUT each.")
        stored = (body.digest, body.digest, artifacts.FOLDER_MEDIA_TYPE,
                  sum(int(e["size"]) for e in entries), len(entries))
    else:
        if not store.objects.has(body.digest):
            raise InvalidInput(f"Object {body.digest} is not uploaded yet.",
                               hint="PUT /api/v1/objects/{digest} first.")
        size = 0
        with store.objects.open(body.digest) as f:     # counted, not sought: an S3 body cannot seek
            while chunk := f.read(1 << 20):
                size += len(chunk)
        stored = (body.digest, None, body.media_type, size, 1)
    check_name(body.name, "artifact name")

    def write(conn):  # noqa: ANN001, ANN202
        records.require_running(conn, rec.id)
        return artifacts.record(conn, store, rec.id, body.name, stored, body.kind, body.metadata)

    return store.db.run_write(write)


async def _receive_object(store: Store, digest: str, request: Request) -> None:
    """Stream the body to a scratch file, hash it, and store it only if it is what it claims."""
    fd, tmp = tempfile.mkstemp(dir=store.objects.make_scratch_dir(), prefix="upload-", suffix=".tmp")
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            async for chunk in request.stream():
                h.update(chunk)
                out.write(chunk)
        actual = f"sha256:{h.hexdigest()}"
        if actual != digest:
            raise IntegrityError(f"The bytes sent hash to {actual}, not {digest}; nothing was stored.",
                                 expected=digest, actual=actual)
        stored = await run_in_threadpool(store.objects.put_file, tmp)   # hashed once more as it is copied in
        if stored != digest:
            raise IntegrityError(f"The upload changed while it was stored ({stored}); nothing was kept.",
                                 expected=digest, actual=stored)
        await run_in_threadpool(store.db.run_write, lambda conn: audit.append(
            conn, store.actor, "object.put", f"object:{digest}",
            details={"project": _project_allowing(conn, store.actor, "object.put") or ALL_PROJECTS}))
    finally:
        Path(tmp).unlink(missing_ok=True)
