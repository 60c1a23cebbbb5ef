"""The one permission check: may this actor do this action, on this target, in this project?

Every write in runlock appends an audit entry inside its transaction, and ``audit.append`` calls
``require`` before it inserts anything, so no write (from the CLI, the Python API or a server)
can skip the check, and a refused write leaves nothing behind. Reads of a registered model's
bytes are audited (``model.read``) and so are checked the same way.

Minimum role per action (``noun.*`` covers every verb of that noun)::

    viewer      every ``*.read`` (model.read, artifact.read), audit.*
    (any role, on any project) token.* on one's own tokens
    editor      run.*, snapshot.*, split.*, artifact.*, dataset.*, evaluation.*, lineage.*
    maintainer  model.register, model.alias (any alias but production), gate.pass
    admin       moving or removing the production alias, gate.override, user.*, role.*,
                token.*, key.*, store.*, and every delete / gc / purge
    (unknown)   editor

Scope: a grant is per project, or ``*`` for every project and for global data (snapshots and
splits belong to no project). The project of an action is ``details["project"]``, else the
project of the run it names (``run:ID`` target or ``details["run"]``), else, for a model version,
the project of the run that produced it (a model belongs to its run's project), else ``*``.
Signing audit checkpoints (``audit.checkpoint``) needs an editor on ``*``: a viewer cannot.
The store's owner (the OS user who created it) is an admin everywhere; ``runlock`` (the system
actor) may only mark dead runs as crashed.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from runlock.errors import PermissionDenied
from runlock.store.schema import METADATA, NAME, TIME, refs, runs, store_info

ROLES = ("viewer", "editor", "maintainer", "admin")
RANK = {r: i for i, r in enumerate(ROLES)}
ALL_PROJECTS = "*"
PRODUCTION = "production"
SYSTEM_ACTOR = "runlock"
SYSTEM_ACTIONS = frozenset({"run.crashed"})

RULES = {
    "model.read": "viewer", "audit.*": "viewer", "audit.checkpoint": "editor",
    "run.*": "editor", "snapshot.*": "editor", "split.*": "editor", "artifact.*": "editor",
    "dataset.*": "editor", "evaluation.*": "editor", "lineage.*": "editor",
    "model.register": "maintainer", "model.alias": "maintainer", "model.alias.import": "maintainer",
    "model.unalias": "maintainer",
    "gate.pass": "maintainer",
    "gate.override": "admin", "user.*": "admin", "role.*": "admin", "token.*": "admin",
    "key.*": "admin", "store.*": "admin",
}
ADMIN_VERBS = ("delete", "gc", "purge", "destroy")
DEFAULT_ROLE = "editor"

identities = sa.Table(
    "identities", METADATA,
    sa.Column("name", NAME, primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),        # user | service
    sa.Column("created_at", TIME, nullable=False),
    sa.Column("created_by", NAME, nullable=False),
    sa.Column("disabled_at", TIME, nullable=True),
)

role_grants = sa.Table(
    "role_grants", METADATA,
    sa.Column("identity", NAME, nullable=False),
    sa.Column("project", NAME, nullable=False),               # a project name, or "*"
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("granted_at", TIME, nullable=False),
    sa.Column("granted_by", NAME, nullable=False),
    sa.PrimaryKeyConstraint("identity", "project", name="pk_role_grants"),
)


def touches_production(action: str, target: str, details: dict) -> bool:
    """Does this action move (or remove) the production alias?"""
    noun, _, verb = action.partition(".")
    return (noun == "model" and "alias" in verb
            and (details.get("alias") == PRODUCTION or target.endswith(f"@{PRODUCTION}")))


def needed_role(actor: str, action: str, target: str, details: dict) -> str:
    """The weakest role that may perform ``action``."""
    noun, _, verb = action.partition(".")
    if touches_production(action, target, details):
        return "admin"
    if noun == "token" and details.get("identity") == actor:
        return "viewer"                       # anyone may manage their own tokens
    if verb in ADMIN_VERBS:
        return "admin"
    if verb == "read":
        return "viewer"
    return RULES.get(action) or RULES.get(f"{noun}.*") or DEFAULT_ROLE


def project_of(conn: Connection, target: str, details: dict) -> str:
    if isinstance(details.get("project"), str):
        return details["project"]
    run_id = target[4:] if target.startswith("run:") else details.get("run")
    if run_id is None and target.startswith("model:"):
        run_id = _model_run(conn, target)
    if isinstance(run_id, str):
        found = conn.execute(sa.select(runs.c.project).where(runs.c.id == run_id)).scalar()
        if found:
            return found
    return ALL_PROJECTS


def _model_run(conn: Connection, target: str) -> str | None:
    """The run that produced ``model:NAME@vN``: a model belongs to its run's project."""
    name, _, tag = target[6:].partition("@")
    if not (tag.startswith("v") and tag[1:].isdigit()):
        return None
    meta = conn.execute(sa.select(refs.c.meta).where(refs.c.namespace == "model", refs.c.name == name,
                                                     refs.c.version == int(tag[1:]))).scalar()
    return (meta or {}).get("run") if isinstance(meta, dict) else None


def store_owner(conn: Connection) -> str | None:
    """The OS user who created the store: an admin on it, always."""
    return conn.execute(sa.select(store_info.c.value).where(store_info.c.key == "created_by")).scalar()


def role_of(conn: Connection, actor: str, project: str) -> str | None:
    """The strongest role ``actor`` holds on ``project`` (its own grant or the ``*`` one)."""
    if actor == store_owner(conn):
        return "admin"
    disabled = conn.execute(sa.select(identities.c.disabled_at).where(identities.c.name == actor)).first()
    if disabled is not None and disabled.disabled_at:
        return None
    rows = conn.execute(sa.select(role_grants.c.role).where(
        role_grants.c.identity == actor, role_grants.c.project.in_({project, ALL_PROJECTS}))).scalars()
    return max(rows, key=RANK.__getitem__, default=None)


def allowed(conn: Connection, actor: str, action: str, target: str, details: dict | None = None) -> bool:
    details = details or {}
    if actor == SYSTEM_ACTOR:
        return action in SYSTEM_ACTIONS
    if actor == store_owner(conn):
        return True
    if action.startswith("token.") and details.get("identity") == actor:
        return _active(conn, actor)           # one's own tokens: a role on any project will do
    have = role_of(conn, actor, project_of(conn, target, details))
    return have is not None and RANK[have] >= RANK[needed_role(actor, action, target, details)]


def _active(conn: Connection, actor: str) -> bool:
    """Does ``actor`` hold a role somewhere (and is not disabled)?"""
    disabled = conn.execute(sa.select(identities.c.disabled_at).where(identities.c.name == actor)).first()
    if disabled is not None and disabled.disabled_at:
        return False
    return conn.execute(sa.select(role_grants.c.role).where(role_grants.c.identity == actor).limit(1)).first() \
        is not None


def require(conn: Connection, actor: str, action: str, target: str, details: dict | None = None) -> None:
    """Raise PermissionDenied unless ``actor`` may perform ``action`` on ``target``."""
    details = details or {}
    if not allowed(conn, actor, action, target, details):
        needed = "system" if actor == SYSTEM_ACTOR else needed_role(actor, action, target, details)
        project = project_of(conn, target, details)
        where = target if project == ALL_PROJECTS else f"{target} (project {project})"
        raise PermissionDenied(actor, action, where, needed)
