"""The routes behind ``runlock users``, ``tokens`` and ``roles`` against a team server.

Who may act is decided where the store is, by the same domain calls as locally
(``runlock.identity``): each write appends its audit entry, which checks the action for the
token's identity first (``user.*``, ``role.*`` and ``token.*`` need an admin, except that anyone
may issue, list and revoke their own tokens). Listing every identity needs an admin on ``*``;
listing tokens or grants shows an admin everyone's (or ``?user=``'s), anyone else only their
own, and asking for another identity's is a 403. A token is shown once, in the answer to the
request that issued it; the server keeps only its hash.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, Query, Request
from pydantic import BaseModel, Field

from runlock import authz, identity
from runlock.errors import PermissionDenied
from runlock.server.permissions import V1
from runlock.store import Store

Name = Annotated[str, Field(max_length=300)]      # checked by the domain, in its own words
Project = Annotated[str, Field(max_length=200)]


class NewIdentity(BaseModel):
    name: Name
    kind: str = Field(default="user", pattern=r"^(user|service)$")


class Named(BaseModel):
    name: Name


class NewToken(BaseModel):
    name: Name
    days: int | None = identity.DEFAULT_TOKEN_DAYS        # the domain refuses out of 1..MAX_TOKEN_DAYS
    label: str = Field(default="", max_length=200)


class TokenId(BaseModel):
    id: str = Field(pattern=r"^(rlk_)?[0-9a-f]{16}(_[A-Za-z0-9_-]{43})?$")


class NewGrant(BaseModel):
    name: Name
    role: str = Field(max_length=20)
    project: Project = identity.ALL_PROJECTS


class GrantRevoke(BaseModel):
    name: Name
    project: Project = identity.ALL_PROJECTS


User = Annotated[str | None, Query(max_length=300)]


def add(app: FastAPI) -> None:
    """Add these routes to ``app`` (``server.app.create_app`` calls it)."""

    @app.get(f"{V1}/identities")
    def list_identities(request: Request) -> dict:
        return {"identities": [i.to_dict() for i in identity.list_identities(_store(request))]}

    @app.post(f"{V1}/identities", status_code=201)
    def create_identity(request: Request, body: NewIdentity) -> dict:
        return identity.create_identity(_may(request, "user.create", body.name), body.name, body.kind).to_dict()

    @app.post(f"{V1}/identities/disable")
    def disable_identity(request: Request, body: Named) -> dict:
        return identity.disable_identity(_may(request, "user.disable", body.name), body.name).to_dict()

    @app.post(f"{V1}/tokens", status_code=201)
    def issue_token(request: Request, body: NewToken) -> dict:
        store = _may(request, "token.issue", body.name)
        issued = identity.issue_token(store, body.name, days=body.days, label=body.label)
        return {"token": issued.token, "info": issued.info.to_dict()}

    @app.get(f"{V1}/tokens")
    def list_tokens(request: Request, user: User = None) -> dict:
        store = _store(request)
        return {"tokens": [t.to_dict() for t in identity.list_tokens(store, _whose(store, "token.list", user))]}

    @app.post(f"{V1}/tokens/revoke")
    def revoke_token(request: Request, body: TokenId) -> dict:
        return identity.revoke_token(_store(request), body.id).to_dict()

    @app.post(f"{V1}/grants", status_code=201)
    def grant_role(request: Request, body: NewGrant) -> dict:
        return identity.grant_role(_may(request, "role.grant", body.name), body.name, body.role, body.project).to_dict()

    @app.post(f"{V1}/grants/revoke")
    def revoke_role(request: Request, body: GrantRevoke) -> dict:
        return identity.revoke_role(_may(request, "role.revoke", body.name), body.name, body.project).to_dict()

    @app.get(f"{V1}/grants")
    def list_grants(request: Request, user: User = None) -> dict:
        store = _store(request)
        return {"grants": [g.to_dict() for g in identity.list_grants(store, _whose(store, "role.list", user))]}


def _may(request: Request, action: str, name: str) -> Store:
    """The store, once the caller may do ``action`` to identity ``name`` (checked before the
    domain looks ``name`` up, so a refusal does not tell whether it exists)."""
    store = _store(request)
    target = "token:new" if action == "token.issue" else f"user:{name}"
    with store.db.read() as conn:
        authz.require(conn, store.actor, action, target, {"identity": name} if action.startswith("token.") else None)
    return store


def _whose(store: Store, action: str, user: str | None) -> str | None:
    """Whose tokens or grants the caller may list: anyone's for an admin on ``*`` (``user``, or
    all); else only their own, and naming another identity is refused."""
    with store.db.read() as conn:
        if authz.allowed(conn, store.actor, action, authz.ALL_PROJECTS):
            return user
    if user not in (None, store.actor):
        raise PermissionDenied(store.actor, action, f"user:{user}", "admin")
    return store.actor


def _store(request: Request) -> Store:
    return request.state.store
