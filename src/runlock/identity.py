"""Who acts on a store: users, service accounts, their roles per project, and API tokens.

    identity   a user or a service account, by name; can be disabled, never deleted
    grant      (identity, project, role); project ``*`` means every project and global data
    token      ``rlk_<id>_<secret>``: only its sha256 is stored; it expires and can be revoked

Roles, weakest first: ``viewer`` (read), ``editor`` (create runs, snapshots, splits, artifacts),
``maintainer`` (register models, move aliases other than production), ``admin`` (production
alias, roles, tokens, deletion). What each action needs is decided in ``runlock.authz``.

Locally the acting identity is the OS user; the user who created the store is its owner and
always an admin there. ``act_as(store, token)`` switches a store handle to a token's identity.
Every change here is audited (``user.*``, ``role.*``, ``token.*``), and the audit append checks
the actor's role, so only an admin can change identities, roles or other people's tokens.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from runlock import audit, canonical
from runlock.authz import ALL_PROJECTS, ROLES, identities, role_grants, store_owner
from runlock.errors import Conflict, InvalidInput, NotFound, PermissionDenied, RunlockError
from runlock.hashing import digest_bytes
from runlock.store import Store
from runlock.store.schema import METADATA, NAME, TIME, utcnow

KINDS = ("user", "service")
TOKEN_PREFIX = "rlk_"
RESERVED = ("runlock", "*")
DEFAULT_TOKEN_DAYS = 90
_TOKEN_RE = re.compile(r"^rlk_(?P<id>[0-9a-f]{16})_(?P<secret>[A-Za-z0-9_-]{43})$")
_IDENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,199}$")

tokens = sa.Table(
    "tokens", METADATA,
    sa.Column("id", sa.String(32), primary_key=True),         # public part, safe to show
    sa.Column("identity", NAME, nullable=False),
    sa.Column("secret_hash", sa.String(100), nullable=False),  # sha256 of the whole token
    sa.Column("label", NAME, nullable=False),
    sa.Column("created_at", TIME, nullable=False),
    sa.Column("created_by", NAME, nullable=False),
    sa.Column("expires_at", TIME, nullable=True),
    sa.Column("revoked_at", TIME, nullable=True),
    sa.Column("revoked_by", NAME, nullable=True),
    sa.Index("ix_tokens_identity", "identity"),
)


class TokenRefused(PermissionDenied):
    """The token given is malformed, unknown, expired, revoked, or its identity is disabled."""

    def __init__(self, token_id: str | None, reason: str) -> None:
        shown = f"API token {TOKEN_PREFIX}{token_id}…" if token_id else "The API token given"
        RunlockError.__init__(
            self, f"{shown} is {reason}; it was refused.",
            hint="Ask an admin for a new one (`runlock tokens issue`), or unset RUNLOCK_TOKEN.")
        self.actor, self.action, self.target, self.needed = "?", "authenticate", "store", "valid token"


@dataclass(frozen=True)
class Identity:
    name: str
    kind: str
    created_at: str | None
    created_by: str | None
    disabled_at: str | None
    roles: dict
    owner: bool = False

    def to_dict(self) -> dict:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


@dataclass(frozen=True)
class Grant:
    identity: str
    project: str
    role: str | None
    granted_at: str
    granted_by: str

    def to_dict(self) -> dict:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


@dataclass(frozen=True)
class TokenInfo:
    id: str
    identity: str
    label: str
    created_at: str
    created_by: str
    expires_at: str | None
    revoked_at: str | None
    revoked_by: str | None

    def status(self, now: str | None = None) -> str:
        if self.revoked_at:
            return "revoked"
        if self.expires_at and self.expires_at <= (now or utcnow()):
            return "expired"
        return "active"

    def to_dict(self) -> dict:
        return {**{f: getattr(self, f) for f in self.__dataclass_fields__}, "status": self.status()}


@dataclass(frozen=True)
class IssuedToken:
    token: str          # shown once, never stored
    info: TokenInfo

    def to_dict(self) -> dict:
        return {"token": self.token, **self.info.to_dict()}


# -- identities --------------------------------------------------------------------------
def check_identity_name(name: str) -> str:
    if not isinstance(name, str) or not _IDENT_RE.match(name) or name in RESERVED:
        raise InvalidInput(f"Identity name {name!r} is not allowed.",
                           hint="Use 1-200 letters, digits, '.', '_', '@', '+' or '-' (not 'runlock').")
    return name


def create_identity(store: Store, name: str, kind: str = "user") -> Identity:
    """Register a user or a service account (admin only)."""
    check_identity_name(name)
    if kind not in KINDS:
        raise InvalidInput(f"Identity kind {kind!r} is unknown; use 'user' or 'service'.")

    def write(conn: Connection) -> None:
        if _identity_row(conn, name) is not None:
            raise Conflict(f"Identity {name!r} already exists.", hint="List them with `runlock users list`.")
        row = {"name": name, "kind": kind, "created_at": utcnow(), "created_by": store.actor, "disabled_at": None}
        audit.append(conn, store.actor, "user.create", f"user:{name}", after=canonical.digest(row),
                     details={"kind": kind})
        conn.execute(identities.insert().values(**row))

    store.db.run_write(write)
    return get_identity(store, name)


def disable_identity(store: Store, name: str) -> Identity:
    """Disable an identity: its tokens stop working and it holds no role (admin only)."""
    def write(conn: Connection) -> None:
        row = _require_identity(conn, name)
        if row.disabled_at:
            return
        audit.append(conn, store.actor, "user.disable", f"user:{name}",
                     before=canonical.digest(dict(row._mapping)), details={"kind": row.kind})
        conn.execute(identities.update().where(identities.c.name == name).values(disabled_at=utcnow()))
        for project, role in sorted(_roles(conn, name).items()):  # "loses every role", as `roles list` shows
            audit.append(conn, store.actor, "role.revoke", f"user:{name}",
                         before=canonical.digest({"project": project, "role": role}),
                         details={"project": project, "role": None, "previous": role, "reason": "user.disable"})
            _delete_grant(conn, name, project)

    store.db.run_write(write)
    return get_identity(store, name)


def get_identity(store: Store, name: str) -> Identity:
    with store.db.read() as conn:
        row = _identity_row(conn, name)
        owner = store_owner(conn)
        roles = _roles(conn, name)
    if row is None:
        if name != owner:
            raise NotFound("identity", name, hint="List them with `runlock users list`.")
        return Identity(name, "user", None, None, None, {ALL_PROJECTS: "admin", **roles}, owner=True)
    return Identity(row.name, row.kind, row.created_at, row.created_by, row.disabled_at, roles,
                    owner=row.name == owner)


def list_identities(store: Store) -> list[Identity]:
    with store.db.read() as conn:
        names = [r.name for r in conn.execute(sa.select(identities.c.name).order_by(identities.c.name))]
        owner = store_owner(conn)
    if owner and owner not in names:
        names.insert(0, owner)
    return [get_identity(store, n) for n in names]


def whoami(store: Store) -> Identity:
    """The identity this store handle acts as, with its roles."""
    try:
        return get_identity(store, store.actor)
    except NotFound:
        with store.db.read() as conn:
            roles = _roles(conn, store.actor)
        return Identity(store.actor, "user", None, None, None, roles)


def _identity_row(conn: Connection, name: str) -> sa.Row | None:
    return conn.execute(sa.select(identities).where(identities.c.name == name)).first()


def _require_identity(conn: Connection, name: str) -> sa.Row:
    row = _identity_row(conn, name)
    if row is None:
        raise NotFound("identity", name, hint="Create it first with `runlock users add NAME`.")
    return row


def _roles(conn: Connection, name: str) -> dict:
    rows = conn.execute(sa.select(role_grants).where(role_grants.c.identity == name))
    return {r.project: r.role for r in rows}


# -- roles -------------------------------------------------------------------------------
def grant_role(store: Store, name: str, role: str, project: str = ALL_PROJECTS) -> Grant:
    """Give ``name`` the ``role`` on ``project`` (``*``: every project), replacing any previous one."""
    if role not in ROLES:
        raise InvalidInput(f"Role {role!r} is unknown; use one of {', '.join(ROLES)}.")
    _check_project(project)

    def write(conn: Connection) -> Grant:
        _require_identity(conn, name)
        before = _roles(conn, name).get(project)
        grant = Grant(name, project, role, utcnow(), store.actor)
        audit.append(conn, store.actor, "role.grant", f"user:{name}",
                     before=canonical.digest({"project": project, "role": before}) if before else None,
                     after=canonical.digest({"project": project, "role": role}),
                     details={"project": project, "role": role, "previous": before})
        _delete_grant(conn, name, project)
        conn.execute(role_grants.insert().values(**grant.to_dict()))
        return grant

    return store.db.run_write(write)


def revoke_role(store: Store, name: str, project: str = ALL_PROJECTS) -> Grant:
    """Remove ``name``'s role on ``project``."""
    _check_project(project)

    def write(conn: Connection) -> Grant:
        before = _roles(conn, name).get(project)
        if before is None:
            raise NotFound("role grant", f"{name} on {project}", hint="See `runlock roles list`.")
        audit.append(conn, store.actor, "role.revoke", f"user:{name}",
                     before=canonical.digest({"project": project, "role": before}),
                     details={"project": project, "role": None, "previous": before})
        _delete_grant(conn, name, project)
        return Grant(name, project, None, utcnow(), store.actor)

    return store.db.run_write(write)


def list_grants(store: Store, name: str | None = None) -> list[Grant]:
    q = sa.select(role_grants).order_by(role_grants.c.identity, role_grants.c.project)
    if name is not None:
        q = q.where(role_grants.c.identity == name)
    with store.db.read() as conn:
        return [Grant(r.identity, r.project, r.role, r.granted_at, r.granted_by) for r in conn.execute(q)]


def _delete_grant(conn: Connection, name: str, project: str) -> None:
    conn.execute(role_grants.delete().where(role_grants.c.identity == name, role_grants.c.project == project))


def _check_project(project: str) -> None:
    if project != ALL_PROJECTS and not _IDENT_RE.match(project or ""):
        raise InvalidInput(f"Project {project!r} is not a project name; use a name or '*'.")


# -- tokens ------------------------------------------------------------------------------
MAX_TOKEN_DAYS = 36_500  # a hundred years: beyond that, --no-expiry says what is meant


def issue_token(store: Store, name: str, *, days: int | None = DEFAULT_TOKEN_DAYS, label: str = "") -> IssuedToken:
    """A new API token for ``name``; the returned ``token`` string is the only copy there is."""
    if days is not None and (not isinstance(days, int) or not 0 < days <= MAX_TOKEN_DAYS):
        raise InvalidInput(f"A token lives 1 to {MAX_TOKEN_DAYS} days, not {days!r}.",
                           hint="Pass --no-expiry for a token that never expires (revoke it by hand).")
    token_id = secrets.token_hex(8)
    token = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    expires = None
    if days is not None:
        expires = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    info = TokenInfo(token_id, name, label, utcnow(), store.actor, expires, None, None)

    def write(conn: Connection) -> None:
        row = _require_identity(conn, name)
        if row.disabled_at:
            raise InvalidInput(f"Identity {name!r} is disabled; it cannot get a token.")
        audit.append(conn, store.actor, "token.issue", f"token:{token_id}",
                     details={"identity": name, "expires_at": expires, "label": label})
        conn.execute(tokens.insert().values(**info.__dict__, secret_hash=_hash(token)))

    store.db.run_write(write)
    return IssuedToken(token, info)


def revoke_token(store: Store, token_id: str) -> TokenInfo:
    """Revoke a token by its id (the part after ``rlk_``); it is refused from then on."""
    token_id = token_id.removeprefix(TOKEN_PREFIX).split("_", 1)[0]

    def write(conn: Connection) -> None:
        row = conn.execute(sa.select(tokens).where(tokens.c.id == token_id)).first()
        if row is None:
            raise NotFound("token", token_id, hint="List them with `runlock tokens list`.")
        if row.revoked_at:
            return
        audit.append(conn, store.actor, "token.revoke", f"token:{token_id}", details={"identity": row.identity})
        conn.execute(tokens.update().where(tokens.c.id == token_id).values(
            revoked_at=utcnow(), revoked_by=store.actor))

    store.db.run_write(write)
    return _token_info(store, token_id)


def list_tokens(store: Store, name: str | None = None) -> list[TokenInfo]:
    q = sa.select(*_INFO_COLUMNS).order_by(tokens.c.created_at)
    if name is not None:
        q = q.where(tokens.c.identity == name)
    with store.db.read() as conn:
        return [TokenInfo(*r) for r in conn.execute(q)]


def authenticate(store: Store, token: str) -> Identity:
    """The identity a token stands for, or TokenRefused. Never echoes the secret."""
    m = _TOKEN_RE.match(token.strip()) if isinstance(token, str) else None
    if m is None:
        raise TokenRefused(None, "malformed (tokens look like rlk_<16 hex>_<43 characters>)")
    with store.db.read() as conn:
        row = conn.execute(sa.select(tokens).where(tokens.c.id == m["id"])).first()
        ident = _identity_row(conn, row.identity) if row is not None else None
    if row is None or not hmac.compare_digest(row.secret_hash, _hash(token.strip())):
        raise TokenRefused(m["id"], "unknown")
    info = TokenInfo(*(getattr(row, c.name) for c in _INFO_COLUMNS))
    if info.status() != "active":
        raise TokenRefused(m["id"], info.status())
    if ident is None or ident.disabled_at:
        raise TokenRefused(m["id"], "for a disabled identity")
    return get_identity(store, row.identity)


def act_as(store: Store, token: str) -> Identity:
    """Make ``store`` act as the token's identity from now on (CLI ``--token``, RUNLOCK_TOKEN)."""
    who = authenticate(store, token)
    store.actor = who.name
    return who


_INFO_COLUMNS = (tokens.c.id, tokens.c.identity, tokens.c.label, tokens.c.created_at, tokens.c.created_by,
                 tokens.c.expires_at, tokens.c.revoked_at, tokens.c.revoked_by)


def _token_info(store: Store, token_id: str) -> TokenInfo:
    with store.db.read() as conn:
        return TokenInfo(*conn.execute(sa.select(*_INFO_COLUMNS).where(tokens.c.id == token_id)).one())


def _hash(token: str) -> str:
    return digest_bytes(token.encode("utf-8"))
