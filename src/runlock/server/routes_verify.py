"""The routes behind ``runlock check``, ``runlock compare``, ``runlock attest`` (create and gate)
and ``runlock audit checkpoint``: what the record alone decides, answered where the record is,
and signed with the key that stays there. (A rerun runs the code, so it runs where
the code is: ``verify`` and ``rerun`` stay local commands.)

``check`` evaluates the policy the client sends (the one it found in its repository, or the
built-in one): the server re-validates it with the same rules as a policy file
(``checklist.checked_policy``) before it runs a rule. Both name their runs in the body, so the
handler requires ``run.read`` on each run's project, with the same 403 for a run that does not
exist (``routes_service.hidden``). An attestation is signed on the server and its bytes returned
for the client to write; the gate reads the attestation the client uploaded as an object (by its
sha256) and records its decision as locally (``gate.pass`` needs a maintainer on the model's
project, ``gate.override`` an admin). A checkpoint is signed with the key the server holds, which
``checkpoints.checkpoint`` allows an editor on ``*``, as locally.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Request
from pydantic import BaseModel, Field

from runlock import authz
from runlock.attest import gate_production, sign_attestation
from runlock.dsse import MAX_BUNDLE_BYTES
from runlock.remote.local import LocalService
from runlock.server.permissions import V1
from runlock.server.routes_service import jsonable, object_bytes, readable_model, readable_run
from runlock.store import Store
from runlock.verify.checklist import Policy, checked_policy

Tolerance = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class PolicyBody(BaseModel):
    source: str = Field(max_length=4096)
    rules: dict[Annotated[str, Field(max_length=100)], dict[Annotated[str, Field(max_length=100)], Any]] = \
        Field(max_length=100)


class CheckAsk(BaseModel):
    target: str = Field(max_length=300)
    policy: PolicyBody


class AttestAsk(BaseModel):
    ref: str = Field(max_length=300)
    policy: PolicyBody


class GateAsk(BaseModel):
    model: str = Field(max_length=300)
    attestation: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")     # uploaded first, as an object
    override: str | None = Field(default=None, max_length=10_000)
    policy: PolicyBody
    source: str | None = Field(default=None, max_length=4096)      # the client's file, for messages


class CompareAsk(BaseModel):
    a: str = Field(max_length=200)
    b: str = Field(max_length=200)
    rtol: Tolerance
    atol: Tolerance
    k: Tolerance
    stitch: bool = True


def add(app: FastAPI) -> None:
    """Add these routes to ``app`` (``server.app.create_app`` calls it)."""

    @app.post(f"{V1}/checks")
    def check(request: Request, body: CheckAsk) -> dict:
        store = _store(request)
        _readable_target(store, body.target)
        return jsonable(_service(request).check(body.target, _policy(body.policy)).to_dict())

    @app.post(f"{V1}/compare")
    def compare(request: Request, body: CompareAsk) -> dict:
        store = _store(request)
        for ref in (body.a, body.b):
            readable_run(store, ref)
        found = _service(request).compare_outputs(body.a, body.b, rtol=body.rtol, atol=body.atol, k=body.k,
                                                  stitch=body.stitch)
        return jsonable(found.to_dict())

    @app.post(f"{V1}/attestations", status_code=201)
    def attest(request: Request, body: AttestAsk) -> dict:
        store = _store(request)
        target = _readable_target(store, body.ref)
        with store.db.read() as conn:       # before anything is signed or kept
            authz.require(conn, store.actor, "attestation.create", target)
        made, data = sign_attestation(store, body.ref, lambda _: "", policy=_policy(body.policy))
        return {"attestation": jsonable(made.to_dict()), "bundle": data.decode()}

    @app.post(f"{V1}/models/gate")
    def gate(request: Request, body: GateAsk) -> dict:
        store = _store(request)
        readable_model(store, body.model)
        data = object_bytes(store, body.attestation, MAX_BUNDLE_BYTES, "an attestation")
        return gate_production(store, body.model, data, override_reason=body.override,
                               policy=_policy(body.policy), source=body.source).to_dict()

    @app.get(f"{V1}/keys/public")
    def public_key(request: Request) -> dict:
        pub = _service(request).public_key()
        return {"key_id": pub.keyid, "pem": pub.pem().decode()}

    @app.post(f"{V1}/audit/checkpoint", status_code=201)
    def checkpoint(request: Request) -> dict:
        return _service(request).audit_checkpoint().to_dict()


def _readable_target(store: Store, target: str) -> str:
    """A model version or a run the caller may read (else the same 403, found or not), as the
    target its audit entries name."""
    if target.startswith("model:"):
        return readable_model(store, target).ref
    return f"run:{readable_run(store, target).id}"


def _policy(body: PolicyBody) -> Policy:
    """The client's policy, checked as a policy file is (``checklist.checked_policy``)."""
    return checked_policy(body.source, {**body.rules, "rules": list(body.rules)})


def _store(request: Request) -> Store:
    return request.state.store


def _service(request: Request) -> LocalService:
    return LocalService(_store(request))
