"""The model registry: immutable versions ``model:NAME@vN`` and movable, recorded aliases.

A version is a ``refs`` row in namespace ``model`` pointing at an artifact's content id; the same
content under the same name is the same version. Registering needs a run that *finished*: a
failed, crashed or still running run has no result to promote.

An alias (``@staging``, ``@production``, any name) points at one version of a name. It moves only
through ``set_alias``/``remove_alias``, and every move is a row in ``model_alias_moves`` (who,
when, why, from which version to which) keyed by the audit entry written in the same
transaction, so ``alias_at(store, name, alias, when)`` can say what an alias pointed at on any
date. ``set_alias`` takes a ``gate``: a callable run inside the move's transaction, before
anything is written, that may refuse the move by raising (the promotion checklist plugs in here).

Reading a version's bytes (``get``) verifies them and appends a ``model.read`` audit entry.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from runlock import artifacts, audit, authz, canonical, lineage, refs
from runlock.errors import Conflict, IntegrityError, InvalidInput, NotFound
from runlock.store import Store
from runlock.store.schema import METADATA, NAME, TIME, runs, utcnow
from runlock.store.schema import refs as refs_table
from runlock.tracking import records

ALIAS_RE = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,63}$")
RESERVED = ("latest",)

# Names by content (``refs.names_for``, lineage labels) look ``refs`` up by target, which its
# primary key (namespace, name, version) cannot serve; this index can.
ix_refs_target = sa.Index("ix_refs_target", refs_table.c.namespace, refs_table.c.target)

model_aliases = sa.Table(
    # The current position of every alias.
    "model_aliases", METADATA,
    sa.Column("name", NAME, nullable=False),
    sa.Column("alias", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("set_at", TIME, nullable=False),
    sa.Column("set_by", NAME, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.PrimaryKeyConstraint("name", "alias", name="pk_model_aliases"),
)

model_alias_moves = sa.Table(
    # Every move of every alias, append-only; keyed by the audit entry that records it.
    "model_alias_moves", METADATA,
    sa.Column("audit_seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("name", NAME, nullable=False),
    sa.Column("alias", sa.String(64), nullable=False),
    sa.Column("from_version", sa.Integer, nullable=True),   # NULL: the alias was new
    sa.Column("to_version", sa.Integer, nullable=True),     # NULL: the alias was removed
    sa.Column("at", TIME, nullable=False),
    sa.Column("actor", NAME, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Index("ix_model_alias_moves_name", "name", "alias", "at"),
)


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    digest: str                 # the artifact's content id: the truth behind the name
    run_id: str
    artifact: str               # the artifact's name in its run
    created_at: str
    created_by: str
    meta: dict
    aliases: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        return f"model:{self.name}@v{self.version}"

    @property
    def id(self) -> str:
        return self.digest

    @property
    def lineage_node(self) -> str:
        return self.ref

    def __str__(self) -> str:
        return self.ref

    def to_dict(self) -> dict:
        return {"ref": self.ref, **{f: getattr(self, f) for f in self.__dataclass_fields__}}


@dataclass(frozen=True)
class AliasMove:
    """One move of an alias: ``from_version`` -> ``to_version`` (None: new, or removed)."""

    name: str
    alias: str
    from_version: int | None
    to_version: int | None
    at: str
    actor: str
    reason: str
    audit_seq: int | None = None
    target: str | None = field(default=None, compare=False)   # content id of ``to_version``

    def to_dict(self) -> dict:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


Gate = Callable[[Connection, AliasMove], None]


# -- registering ----------------------------------------------------------------------------
def register(store: Store, run: str, artifact: str, name: str, *, meta: dict | None = None) -> ModelVersion:
    """Register the artifact ``artifact`` of the finished run ``run`` as ``model:NAME@vN``."""
    refs.check_name(name, "model name")
    rec = records.get(store, run)
    _require_finished(rec.id, rec.status, rec.error)
    art = artifacts.get(store, rec.id, artifact)
    info = canonical.normalize({**(meta or {}), "run": rec.id, "artifact": art.name, "kind": art.kind,
                                "media_type": art.media_type, "size": art.size, "files": art.files,
                                "manifest": art.manifest})

    def write(conn: Connection) -> refs.Ref:
        row = conn.execute(sa.select(runs.c.status, runs.c.error, runs.c.deleted_at).where(runs.c.id == rec.id)).first()
        _require_finished(rec.id, row.status, row.error)
        if row.deleted_at is not None:   # checked in the transaction that registers: no race with runs delete
            raise Conflict(f"Run {rec.id} was deleted ({row.deleted_at[:19]}); a deleted run's artifacts cannot be "
                           "registered.", hint="Register a model from a run that is not deleted.")
        ref, created = refs.assign(conn, "model", name, art.digest, actor=store.actor, meta=info)
        if created:
            lineage.record_edge(conn, "derived_from", ref.ref, art.lineage_node)
            audit.append(conn, store.actor, "model.register", ref.ref, after=art.digest,
                         details={"run": rec.id, "artifact": art.name})
        return ref

    return _version(store.db.run_write(write), _aliases_by_version(store, name))


def register_model(run: Any, artifact: str = "model", name: str | None = None, *,
                   store: Store, license: str | None = None,
                   description: str | None = None, limitations: str | None = None,
                   meta: dict | None = None) -> ModelVersion:
    """Register a finished run's artifact as the next version of ``model:NAME`` (the public API).

    ``run`` is a ``Run``, a run record or a run id; ``license``, ``description`` and
    ``limitations`` go into the version's metadata and from there into its model card."""
    if name is None:
        raise InvalidInput("register_model needs a name, e.g. name=\"support-bot\".")
    run_id = getattr(run, "id", run)
    if not isinstance(run_id, str):
        raise InvalidInput(f"register_model takes a run, a run record or a run id, not {type(run).__name__}.")
    extra = {k: v for k, v in (("license", license), ("description", description),
                                ("limitations", limitations)) if v is not None}
    return register(store, run_id, artifact, name, meta={**(meta or {}), **extra})


def _require_finished(run_id: str, status: str, error: str | None) -> None:
    if status == "finished":
        return
    if status == "running":
        raise Conflict(f"Run {run_id} is still running; only a finished run's artifacts can be registered.",
                       hint="Register the model after the run ends (after its `with` block).")
    last = (error or "").strip().splitlines()[-1:] or ["no error recorded"]
    raise Conflict(f"Run {run_id} {status} ({last[0]}); a run that did not finish cannot be registered.",
                   hint="Fix the cause and register a model from a run that finished.")


# -- reading --------------------------------------------------------------------------------
def check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not ALIAS_RE.match(alias) or re.fullmatch(r"v\d+", alias) \
            or alias in RESERVED:
        raise InvalidInput(f"Alias {alias!r} is not allowed.",
                           hint="Use 1-64 letters, digits, '.', '_' or '-', starting with a letter; "
                                "not a version like 'v3' and not 'latest'.")
    return alias


def resolve(store: Store, text: str) -> ModelVersion:
    """The version ``model:NAME@vN``, ``model:NAME@ALIAS`` or ``model:NAME`` (latest) names."""
    p = refs.parse(text if text.startswith("model:") else f"model:{text}", "model")
    tag = p.tag
    if tag is not None and not re.fullmatch(r"v\d+", tag) and tag != "latest":
        with store.db.read() as conn:
            row = conn.execute(sa.select(model_aliases.c.version).where(
                model_aliases.c.name == p.name, model_aliases.c.alias == tag)).first()
        if row is None:
            known = sorted(f"@{a}" for names in _aliases_by_version(store, p.name).values() for a in names)
            raise NotFound("model alias", text, hint=f"Aliases of {p.name}: {', '.join(known)}."
                           if known else f"{p.name} has no aliases; set one with `runlock registry alias set`.")
        tag = f"v{row.version}"
    ref = refs.resolve(store, f"model:{p.name}" + (f"@{tag}" if tag and tag != "latest" else ""), "model")
    return _version(ref, _aliases_by_version(store, p.name))


def list_models(store: Store, name: str | None = None) -> list[ModelVersion]:
    """Every version (of one name, or all), oldest first, with the aliases that point at it."""
    if name is not None:
        refs.check_name(name, "model name")
    by_name: dict[str, dict[int, list[str]]] = {}
    out = []
    for r in refs.versions(store, "model", name):
        if r.name not in by_name:
            by_name[r.name] = _aliases_by_version(store, r.name)
        out.append(_version(r, tuple(by_name[r.name].get(r.version, []))))
    return out


def get(store: Store, text: str, dest: str | Path, *, force: bool = False,
        on_progress: artifacts.ProgressFn | None = None) -> artifacts.Download:
    """Download the exact bytes of a model version to ``dest`` (verified), recording the read."""
    mv, art = prepare_read(store, text)
    result = artifacts.download(store, art, dest, force=force, on_progress=on_progress)
    record_read(store, mv, text, result.dest)
    return artifacts.Download(mv.ref, mv.digest, result.dest, result.files, result.size)


def prepare_read(store: Store, text: str) -> tuple[ModelVersion, artifacts.Artifact]:
    """The version ``text`` names and its artifact, once the reader is allowed, the version's
    record is sealed as registered and its artifact holds the registered bytes."""
    mv = resolve(store, text)
    with store.db.read() as conn:       # allowed? checked before anything is written to dest
        authz.require(conn, store.actor, "model.read", mv.ref, {"run": mv.run_id})
    audit.require_sealed(store, mv.ref, f"run:{mv.run_id}")
    art = _artifact_of(store, mv)
    if art.digest != mv.digest:
        raise IntegrityError(f"{mv.ref} is registered as {mv.digest}, but its artifact holds {art.digest}.",
                             hint="Run `runlock audit verify --deep` to see what changed.")
    return mv, art


def record_read(store: Store, mv: ModelVersion, text: str, dest: str) -> None:
    """Append the ``model.read`` audit entry of a download of ``mv`` to ``dest``."""

    def write(conn: Connection) -> None:
        audit.append(conn, store.actor, "model.read", mv.ref, after=mv.digest,
                     details={"as": text, "dest": dest, "run": mv.run_id})

    store.db.run_write(write)


def _artifact_of(store: Store, mv: ModelVersion) -> artifacts.Artifact:
    try:
        return artifacts.get(store, mv.run_id, mv.artifact)
    except NotFound:
        return artifacts.find(store, f"art:{mv.digest}")


# -- aliases --------------------------------------------------------------------------------
def set_alias(store: Store, text: str, alias: str, *, reason: str, gate: Gate | None = None) -> AliasMove:
    """Point ``model:NAME@ALIAS`` at the version ``text`` names (``model:NAME@vN``)."""
    mv = resolve(store, text)
    return _move(store, mv.name, check_alias(alias), mv.version, mv.digest, reason, gate)


def remove_alias(store: Store, name: str, alias: str, *, reason: str, gate: Gate | None = None) -> AliasMove:
    """Take an alias away (recorded as a move to no version)."""
    refs.check_name(name, "model name")
    return _move(store, name, check_alias(alias), None, None, reason, gate)


def _move(store: Store, name: str, alias: str, version: int | None, target: str | None, reason: str,
          gate: Gate | None) -> AliasMove:
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("Moving an alias needs a reason.", hint="Pass --reason \"why\".")

    def write(conn: Connection) -> AliasMove:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("LOCK TABLE model_aliases IN EXCLUSIVE MODE")
        row = conn.execute(sa.select(model_aliases.c.version).where(
            model_aliases.c.name == name, model_aliases.c.alias == alias)).first()
        before = row.version if row else None
        if version is None and before is None:
            raise NotFound("model alias", f"model:{name}@{alias}")
        if before == version:
            raise Conflict(f"model:{name}@{alias} already points at v{version}.")
        move = AliasMove(name, alias, before, version, utcnow(), store.actor, reason.strip(), None, target)
        if gate is not None:
            gate(conn, move)
        seq = audit.append(conn, store.actor, "model.alias", f"model:{name}@{alias}",
                           before=_target(conn, name, before), after=target,
                           details={"from": _v(before), "to": _v(version), "reason": move.reason,
                                    "run": _run_of(conn, name, version if version is not None else before)})
        move = AliasMove(name, alias, before, version, move.at, move.actor, move.reason, seq, target)
        conn.execute(model_alias_moves.insert().values(
            audit_seq=seq, name=name, alias=alias, from_version=before, to_version=version, at=move.at,
            actor=move.actor, reason=move.reason))
        key = sa.and_(model_aliases.c.name == name, model_aliases.c.alias == alias)
        if row is not None:
            conn.execute(model_aliases.delete().where(key))
        if version is not None:
            conn.execute(model_aliases.insert().values(name=name, alias=alias, version=version, set_at=move.at,
                                                       set_by=move.actor, reason=move.reason))
        return move

    return store.db.run_write(write)


def history(store: Store, name: str, alias: str | None = None) -> list[AliasMove]:
    """Every alias move of ``name`` (or of one alias), oldest first."""
    refs.check_name(name, "model name")
    q = sa.select(model_alias_moves).where(model_alias_moves.c.name == name)
    if alias is not None:
        q = q.where(model_alias_moves.c.alias == check_alias(alias))
    with store.db.read() as conn:
        rows = conn.execute(q.order_by(model_alias_moves.c.audit_seq)).all()
        targets = _targets(conn, name)
    return [AliasMove(r.name, r.alias, r.from_version, r.to_version, r.at, r.actor, r.reason, r.audit_seq,
                      targets.get(r.to_version)) for r in rows]


@dataclass(frozen=True)
class AliasState:
    name: str
    at: str                      # the instant asked about, in the store's time format
    aliases: dict[str, str]      # alias -> model:NAME@vN

    def to_dict(self) -> dict:
        return {"name": self.name, "at": self.at, "aliases": self.aliases}


def aliases_at(store: Store, name: str, when: str, alias: str | None = None) -> AliasState:
    """Where every alias of ``name`` (or one alias) pointed at ``when`` (ISO time; a bare date
    means the end of that day, UTC): the answer to "what was in production on 2026-10-01"."""
    cutoff = _cutoff(when)
    state: dict[str, int | None] = {}
    for m in history(store, name, alias):
        if m.at <= cutoff:
            state[m.alias] = m.to_version
    return AliasState(name, cutoff, {a: f"model:{name}@v{v}" for a, v in sorted(state.items()) if v is not None})


def _cutoff(when: str) -> str:
    text = when.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return dt.date.fromisoformat(text).strftime("%Y-%m-%dT23:59:59.999999Z")
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{when!r} is not a date or time; use 2026-10-01 or 2026-10-01T12:00:00Z.") from None
    t = t.replace(tzinfo=dt.timezone.utc) if t.tzinfo is None else t.astimezone(dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- helpers --------------------------------------------------------------------------------
def _v(version: int | None) -> str | None:
    return None if version is None else f"v{version}"


def _target(conn: Connection, name: str, version: int | None) -> str | None:
    if version is None:
        return None
    return conn.execute(sa.select(refs_table.c.target).where(
        refs_table.c.namespace == "model", refs_table.c.name == name, refs_table.c.version == version)).scalar()


def _run_of(conn: Connection, name: str, version: int | None) -> str | None:
    """The run that produced ``model:NAME@vVERSION``: its project is the model's project."""
    if version is None:
        return None
    meta = conn.execute(sa.select(refs_table.c.meta).where(
        refs_table.c.namespace == "model", refs_table.c.name == name, refs_table.c.version == version)).scalar()
    return (meta or {}).get("run")


def _targets(conn: Connection, name: str) -> dict[int, str]:
    rows = conn.execute(sa.select(refs_table.c.version, refs_table.c.target).where(
        refs_table.c.namespace == "model", refs_table.c.name == name))
    return {r.version: r.target for r in rows}


def _aliases_by_version(store: Store, name: str) -> dict[int, list[str]]:
    with store.db.read() as conn:
        rows = conn.execute(sa.select(model_aliases.c.alias, model_aliases.c.version)
                            .where(model_aliases.c.name == name).order_by(model_aliases.c.alias))
        out: dict[int, list[str]] = {}
        for r in rows:
            out.setdefault(r.version, []).append(r.alias)
        return out


def _version(ref: refs.Ref, aliases: dict[int, list[str]] | tuple[str, ...]) -> ModelVersion:
    own = tuple(aliases.get(ref.version, [])) if isinstance(aliases, dict) else tuple(aliases)
    return ModelVersion(ref.name, ref.version, ref.target, ref.meta.get("run", ""), ref.meta.get("artifact", ""),
                        ref.created_at, ref.created_by, ref.meta, own)
