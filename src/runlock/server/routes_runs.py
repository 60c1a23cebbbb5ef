"""The routes behind ``runs tag/note/delete`` and ``artifacts list/show/get``.

Tags, notes and tombstones are the domain's own (``tracking.annotations``), made as the token's
identity: the permission table checks the action on the run's project (an editor), and the
domain appends the audit entry in the same transaction, as a local command does.

Artifacts belong to their run's project. A list shows only those of runs the caller may read; a
show or a read of one it may not read gets the same 403 whether it exists or not (as a run or a
model does, ``routes_service.hidden``), and the producers and model names a show lists are cut
to what the caller may read. A read (``POST /artifacts/read``) is checked and audited here, and
the bytes then travel by sha256 (``GET /objects/{digest}``, ``?via=`` for a folder's files):
the client checks every path and every byte (``remote.http.HttpService.get_artifact``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from pydantic import BaseModel, Field

from runlock import artifacts, registry
from runlock.errors import InvalidInput, NotFound
from runlock.refs import check_name
from runlock.remote.local import LocalService
from runlock.server.permissions import V1
from runlock.server.routes_service import (RunId, jsonable, may_read_run, readable_artifact, readable_model,
                                           readable_run, reads_everything)
from runlock.store import Store
from runlock.tracking import records
from runlock.tracking.annotations import MAX_KEY, MAX_NOTE, MAX_VALUE
from runlock.tracking.adopt import adopt
from runlock.tracking.resume import record_resumption
from runlock.tracking.run import next_seq

Key = Annotated[str, Field(max_length=MAX_KEY)]
Ref = Annotated[str, Query(max_length=300)]


class Tags(BaseModel):
    set: dict[Key, Annotated[str, Field(max_length=MAX_VALUE)]] = Field(default_factory=dict, max_length=1000)
    remove: list[Key] = Field(default_factory=list, max_length=1000)


class NoteText(BaseModel):
    text: str = Field(max_length=MAX_NOTE)


class Reason(BaseModel):
    reason: str = Field(max_length=10_000)


class Resumes(BaseModel):
    of: str = Field(max_length=200)
    checkpoint: str | None = Field(default=None, max_length=300)     # an artifact reference
    step: int = Field(ge=0, le=2**62)
    rng_restored: bool = False


class Adopt(BaseModel):
    """What a script says about the run ``runlock run`` started for it (``tracking.adopt.adopt``)."""
    project: str | None = Field(default=None, max_length=200)
    name: str | None = Field(default=None, max_length=200)
    config: dict[str, Any] | None = None
    seed: int | None = Field(default=None, ge=-(2**63), le=2**64 - 1)
    tags: dict[Key, Annotated[str, Field(max_length=MAX_VALUE)]] | None = Field(default=None, max_length=1000)
    seeding: dict[str, Any] | None = None
    knobs: dict[str, Any] | None = None


class CardAsk(BaseModel):
    ref: str = Field(max_length=300)
    limitations: str | None = Field(default=None, max_length=100_000)


class ArtifactRead(BaseModel):
    ref: str = Field(max_length=300)
    dest: str = Field(default="", max_length=4096)     # where the client writes it: for the audit entry


def add(app: FastAPI) -> None:
    """Add these routes to ``app`` (``server.app.create_app`` calls it)."""

    @app.post(f"{V1}/runs/{{run_id}}/tags")
    def tag_run(request: Request, run_id: RunId, body: Tags) -> dict:
        return {"tags": _service(request).tag_run(run_id, body.set, remove=body.remove)}

    @app.post(f"{V1}/runs/{{run_id}}/notes", status_code=201)
    def note_run(request: Request, run_id: RunId, body: NoteText) -> dict:
        return _service(request).note_run(run_id, body.text).to_dict()

    @app.post(f"{V1}/runs/{{run_id}}/delete")
    def delete_run(request: Request, run_id: RunId, body: Reason) -> dict:
        return _service(request).delete_run(run_id, reason=body.reason).to_dict()

    @app.post(f"{V1}/runs/{{run_id}}/adopt")
    def adopt_run(request: Request, run_id: RunId, body: Adopt) -> dict:
        store = _store(request)
        for value, what in ((body.project, "project name"), (body.name, "run name")):
            if value:
                check_name(value, what)
        rec = records.get(store, run_id)
        renamed, lock, recipe = adopt(store, rec.id, project=body.project, name=body.name, config=body.config,
                                      seed=body.seed, tags=body.tags, seeding_report=body.seeding, knobs=body.knobs)
        return jsonable({"run": records.get(store, rec.id).to_dict(), "lock": lock, "recipe_id": recipe})

    @app.post(f"{V1}/runs/{{run_id}}/resumes", status_code=201)
    def resumes(request: Request, run_id: RunId, body: Resumes) -> dict:
        """``runlock.resume`` of a run on the server: the running run continues ``of`` (which the
        caller may read) from its checkpoint artifact at ``step`` (``tracking.resume``)."""
        store = _store(request)
        rec, of = records.get(store, run_id), readable_run(store, body.of)
        node = None
        if body.checkpoint is not None:
            art = readable_artifact(store, body.checkpoint)
            if art.run_id != of.id:
                raise InvalidInput(f"Checkpoint {art.ref} was logged by run {art.run_id}, not by run {of.id}.")
            node = art.lineage_node
        return record_resumption(store, rec.id, of.id, node, body.step, rng_restored=body.rng_restored).to_dict()

    @app.get(f"{V1}/runs/{{run_id}}/seq")
    def last_seq(request: Request, run_id: RunId, rank: Annotated[int, Query(ge=0, le=2**31)] = 0) -> dict:
        """The last sequence number stored for ``rank``: a process joining the run as that rank
        numbers its log calls on from it (the server keeps the first of two equal numbers)."""
        store = _store(request)
        rec = records.get(store, run_id)
        return {"run": rec.id, "rank": rank, "seq": next_seq(store, rec.id, rank)}

    @app.post(f"{V1}/models/card")
    def model_card(request: Request, body: CardAsk) -> dict:
        readable_model(_store(request), body.ref)
        card = _service(request).model_card(body.ref, limitations=body.limitations)
        return jsonable({"ref": card.ref, "digest": card.digest, "front_matter": card.front_matter, "text": card.text})

    @app.get(f"{V1}/artifacts")
    def list_artifacts(request: Request, run: Ref | None = None, kind: Ref | None = None, name: Ref | None = None,
                       limit: Annotated[int, Query(ge=0, le=10_000)] = 50) -> dict:
        store = _store(request)
        if run is not None:
            readable_run(store, run)
        everything = reads_everything(store)
        found = _service(request).list_artifacts(run=run, kind=kind, name=name,
                                                 limit=(limit or None) if everything else None)
        if not everything:
            found = [a for a in found if may_read_run(store, a.run_id)][:limit or None]
        return {"artifacts": [jsonable(a.to_dict()) for a in found]}

    @app.get(f"{V1}/artifacts/show")
    def show_artifact(request: Request, ref: Ref) -> dict:
        store = _store(request)
        readable_artifact(store, ref)
        detail = _service(request).show_artifact(ref)
        if not reads_everything(store):
            detail = artifacts.ArtifactDetail(
                detail.artifact, [p for p in detail.producers if may_read_run(store, p["run"])],
                [m for m in detail.models if _may_read_model(store, m)], detail.entries)
        return jsonable({**detail.artifact.to_dict(), "producers": detail.producers, "models": detail.models,
                         "entries": detail.entries})

    @app.post(f"{V1}/artifacts/read")
    def read_artifact(request: Request, body: ArtifactRead) -> dict:
        store = _store(request)
        readable_artifact(store, body.ref)
        art = artifacts.prepare_read(store, body.ref)
        artifacts.record_read(store, art, body.dest)
        return jsonable(art.to_dict())


def _may_read_model(store: Store, ref: str) -> bool:
    try:
        return may_read_run(store, registry.resolve(store, ref).run_id)
    except (NotFound, InvalidInput):
        return False


def _store(request: Request) -> Store:
    return request.state.store


def _service(request: Request) -> LocalService:
    return LocalService(_store(request))
