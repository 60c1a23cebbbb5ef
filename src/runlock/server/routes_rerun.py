"""The routes behind ``rerun``, ``verify`` and ``variance`` against a team server.

A rerun runs the code, so it runs on the client, where the code is (``remote.rerun``); what it
reads and what it records go through these routes, and what decides anything is computed here,
from the records the server holds:

- ``GET /runs/{id}/recipe``: the run's record and lock, refused when the run or an input it
  names changed since it was sealed (``verify.rerun.sealed_recipe``, as locally); the sources
  of its inputs (``verify.inputs.resolve_sources``: snapshot manifests, artifact records, the
  files at each recorded path, all hash-checked again on the client as they download); and the
  recorded uncommitted diff, which the client checks against its id before applying it.
- ``POST /runs/{id}/reproduces``: the ``reproduces`` edge from a rerun the client started (an
  editor on the rerun's project, a reader of the original).
- ``POST /runs/{id}/verifications``: the client names the rerun, or says why none could be
  compared; the server compares the rerun it holds with the original itself and stores the
  outcome (``LocalRerunner.verified``: the same code as a local ``verify``). A client cannot
  claim a tier, and the rerun must already reproduce the original.
- ``POST /runs/{id}/spreads``: the seed-to-seed spread, computed here from the reruns it holds.
- ``POST /runs/{id}/verifications/reference``: the reference (and outputs) uploaded as objects,
  compared here (``verify_reference_data``).
"""

from __future__ import annotations

import base64
from typing import Annotated

import sqlalchemy as sa
from fastapi import FastAPI, Request
from pydantic import BaseModel, Field

from runlock.errors import InvalidInput
from runlock.server.permissions import V1
from runlock.server.routes_service import RunId, jsonable, object_bytes, readable_run
from runlock.store import Store
from runlock.store.schema import edges
from runlock.verify.inputs import resolve_sources
from runlock.verify.records import verifications_of
from runlock.verify.rerun import LocalRerunner, sealed_recipe
from runlock.verify.verification import verify_reference_data

Tolerance = Annotated[float, Field(ge=0, allow_inf_nan=False)]
RunRef = Annotated[str, Field(max_length=200)]
MAX_REFERENCE_BYTES = 64 * 2**20


class Reproduces(BaseModel):
    of: RunRef


class Failure(BaseModel):
    error: str = Field(max_length=100_000)
    hint: str | None = Field(default=None, max_length=10_000)


class VerificationAsk(BaseModel):
    rerun: RunRef | None = None
    failure: Failure | None = None
    rtol: Tolerance = 0.0
    atol: Tolerance = 0.0
    k: Tolerance = 0.0


class SpreadAsk(BaseModel):
    seeds: list[Annotated[int, Field(ge=0, lt=2**63)]] = Field(min_length=2, max_length=1000)
    runs: list[RunRef] = Field(min_length=2, max_length=1000)


class ReferenceAsk(BaseModel):
    reference: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    source: str = Field(max_length=4096)                           # the client's file, for messages
    outputs: str | None = Field(default=None, pattern=r"^sha256:[0-9a-f]{64}$")
    outputs_source: str | None = Field(default=None, max_length=4096)
    artifact: str = Field(default="outputs", max_length=200)
    rtol: Tolerance | None = None
    atol: Tolerance | None = None


def add(app: FastAPI) -> None:
    """Add these routes to ``app`` (``server.app.create_app`` calls it)."""

    @app.get(f"{V1}/runs/{{run_id}}/recipe")
    def recipe(request: Request, run_id: RunId) -> dict:
        store = _store(request)
        rec, lock = sealed_recipe(store, readable_run(store, run_id).id)
        diff = ((lock.get("code") or {}).get("git") or {}).get("diff")
        return jsonable({"run": rec.to_dict(), "lock": lock,
                         "sources": [s.to_dict() for s in resolve_sources(store, list(lock.get("inputs") or []))],
                         "patch": base64.b64encode(store.objects.get_bytes(diff)).decode() if diff else None})

    @app.post(f"{V1}/runs/{{run_id}}/reproduces", status_code=201)
    def reproduces(request: Request, run_id: RunId, body: Reproduces) -> dict:
        store = _store(request)
        new, original = readable_run(store, run_id), readable_run(store, body.of)
        if new.id == original.id:
            raise InvalidInput("A run cannot reproduce itself.")
        LocalRerunner(store).link(new.id, original.id)
        return {"run": new.id, "reproduces": original.id}

    @app.post(f"{V1}/runs/{{run_id}}/verifications", status_code=201)
    def verification(request: Request, run_id: RunId, body: VerificationAsk) -> dict:
        store = _store(request)
        original = readable_run(store, run_id)
        rerun = readable_run(store, body.rerun).id if body.rerun else None
        if rerun is None and body.failure is None:
            raise InvalidInput("Name the rerun to compare with the run, or say why there is none (failure).")
        if rerun is not None and not _reproduces(store, rerun, original.id):
            raise InvalidInput(f"Run {rerun} is not a rerun of run {original.id}.",
                               hint=f"Record that it is first: POST /api/v1/runs/{rerun}/reproduces.")
        found = LocalRerunner(store).verified(
            original.id, rerun_id=rerun, failure=body.failure.model_dump() if body.failure else None,
            rtol=body.rtol, atol=body.atol, k=body.k)
        return jsonable(found.to_dict())

    @app.get(f"{V1}/runs/{{run_id}}/verifications")
    def verifications(request: Request, run_id: RunId) -> dict:
        store = _store(request)
        return jsonable({"verifications": [v.to_dict() for v in verifications_of(store, readable_run(store, run_id).id)]})

    @app.post(f"{V1}/runs/{{run_id}}/verifications/reference", status_code=201)
    def reference(request: Request, run_id: RunId, body: ReferenceAsk) -> dict:
        store = _store(request)
        rec = readable_run(store, run_id)
        ref = object_bytes(store, body.reference, MAX_REFERENCE_BYTES, "a reference file")
        out = None if body.outputs is None else (
            object_bytes(store, body.outputs, MAX_REFERENCE_BYTES, "an outputs file"), body.outputs_source or body.outputs)
        found = verify_reference_data(store, rec.id, ref, body.source, outputs=out, artifact=body.artifact,
                                      rtol=body.rtol, atol=body.atol)
        return jsonable(found.to_dict())

    @app.post(f"{V1}/runs/{{run_id}}/spreads", status_code=201)
    def spread(request: Request, run_id: RunId, body: SpreadAsk) -> dict:
        store = _store(request)
        original = readable_run(store, run_id)
        if len(body.seeds) != len(body.runs):
            raise InvalidInput(f"{len(body.seeds)} seeds for {len(body.runs)} runs: name one seed per rerun.")
        runs = [readable_run(store, r).id for r in body.runs]
        return jsonable(LocalRerunner(store).spread(original.id, list(body.seeds), runs).to_dict())


def _reproduces(store: Store, rerun: str, original: str) -> bool:
    with store.db.read() as conn:
        return conn.execute(sa.select(edges.c.src).where(
            edges.c.kind == "reproduces", edges.c.src == f"run:{rerun}", edges.c.dst == f"run:{original}")).first() \
            is not None


def _store(request: Request) -> Store:
    return request.state.store
