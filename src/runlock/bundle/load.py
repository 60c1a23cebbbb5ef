"""``load``: import a bundle into a store (a fresh one included), keeping every id.

The bundle is verified first (``check.verify``) with the key the caller gives, or with the key it
carries when none is given (which proves integrity, not origin: the result says so). Then, in
one write transaction: the objects (idempotent), the runs with their artifacts and metric points,
the snapshots, splits and model versions with their names, and the lineage edges. A record that
already exists must be identical; a name already taken by other content refuses the import.

Every imported sealed record gets a sealing audit entry of its own kind here (``run.seal``,
``snapshot.create``, ``split.…``, ``model.register``) whose state digest must equal the one
the source store sealed, so ``sealed.require`` (and so ``rerun``) guards it in this store as in
the first; and one ``bundle.import`` entry names the bundle, its root and its key, and each attestation
inside (source entry, action, target, id); the attestations are stored here as objects, as
signed, so ``store.objects.get_bytes(id)`` gives back what ``runlock attest verify`` checks.

Alias history comes too: each move of an alias (who, when, why, from, to) not yet here gets a
``model.alias.import`` entry (target ``model:NAME@ALIAS``, with the original actor and time and the
source's state digest in its details) and its row in ``model_alias_moves``, and the alias points
where its last move put it. A history here that is not a beginning of the bundle's (or the
bundle's a beginning of it) refuses the import: two stores moved the alias differently. The code comes
as git bundles, fetched into the store's own repository ``.runlock/code.git``, where ``rerun``
finds a recorded commit when the run's original repository is not here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization

from runlock import audit, keys, lineage, registry, sealed
from runlock.bundle import layout
from runlock.bundle.check import alias_state, read_members, verify
from runlock.data.snapshot import snapshots
from runlock.data.split import splits
from runlock.errors import Conflict, IntegrityError, RunlockError
from runlock.store import Store
from runlock.store.schema import artifacts, metrics, refs, runs
from runlock.tracking import fields
from runlock.verify import workdir



@dataclass(frozen=True)
class ImportResult:
    bundle: str
    root: str
    key_id: str
    key_given: bool
    runs: list[str]
    snapshots: list[str]
    splits: list[str]
    models: list[str]
    objects: int
    new_records: int
    commits: list[str] = field(default_factory=list)
    alias_moves: int = 0          # alias moves imported (not here before)
    attestations: int = 0         # attestations stored here (signed, as the bundle holds them)

    def to_dict(self) -> dict:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


def load(store: Store, path: str | Path, *, key: keys.PublicKey | None = None) -> ImportResult:
    """Verify the bundle at ``path`` and import it into ``store``."""
    try:
        members = read_members(path)
    except ValueError as e:
        raise IntegrityError(f"The bundle does not verify: {e}.",
                             hint="Nothing was imported. Ask for a fresh copy of the bundle.") from None
    given = key is not None
    key = key or keys.PublicKey(_pem_key(members))
    check = verify(path, key)
    if not check.ok:
        raise IntegrityError(f"The bundle does not verify: {check.part}: {check.reason}.",
                             hint="Nothing was imported. Ask for a fresh copy of the bundle.")
    manifest = json.loads(members[layout.MANIFEST])
    bundle_id = layout.sha256(members[layout.MANIFEST])
    objects = [n for n in members if n.startswith("objects/")]
    for name in objects:
        _put(store, members[name])
    signed = [n for n in members if n.startswith("attestations/")]
    for name in signed:
        _put(store, members[name])
    commits = _fetch_code(store, members)
    seals = _seals(members)
    inside = manifest["contents"]
    moved = [0]

    def write(conn: sa.Connection) -> int:
        new = 0
        for name, data in sorted(members.items()):
            if name.startswith("records/runs/"):
                new += _run(conn, json.loads(data))
            elif name.startswith("records/snapshots/"):
                rec = json.loads(data)
                new += _row(conn, snapshots, rec["snapshot"]) + _refs(conn, rec["refs"])
            elif name.startswith("records/splits/"):
                rec = json.loads(data)
                new += _row(conn, splits, _split_row(rec)) + _refs(conn, rec["refs"])
            elif name.startswith("records/models/"):
                new += _refs(conn, [json.loads(data)["ref"]])
        for e in json.loads(members.get("records/edges.json", b"[]")):
            new += lineage.record_edge(conn, e["kind"], e["src"], e["dst"])
        histories = [json.loads(members[n]) for n in sorted(members) if n.startswith("records/aliases/")]
        moved[0] = _alias_histories(conn, store.actor, histories, bundle_id)
        new += moved[0]
        if not new:
            return 0
        for target, (action, seq, state) in sorted(seals.items()):
            if _sealed_here(conn, target, state):
                continue
            audit.append(conn, store.actor, action, target,
                         details={"imported_from": bundle_id, "source_seq": seq, "state": state})
            kind = sealed.kind_of(action, target)
            if sealed.state(conn, kind, target) != state:
                raise IntegrityError(f"{target} imported from the bundle does not give the state its source "
                                     f"sealed (audit entry {seq}); nothing was imported.")
        audit.append(conn, store.actor, "bundle.import", f"bundle:{bundle_id}",
                     details={"root": manifest["root"], "key_id": key.keyid, "key_given": given,
                              "runs": inside["runs"], "snapshots": inside["snapshots"],
                              "splits": inside["splits"], "models": inside["models"], "data": manifest["data"],
                              "alias_moves": moved[0], "attestations": inside.get("attestations") or []})
        return new

    new = store.db.run_write(write)
    return ImportResult(str(path), manifest["root"], key.keyid, given, inside["runs"], inside["snapshots"],
                        inside["splits"], inside["models"], len(objects), new, commits, moved[0], len(signed))


MOVE_KEY = ("from_version", "to_version", "at", "actor", "reason")


def _alias_histories(conn: sa.Connection, actor: str, histories: list[dict], bundle_id: str) -> int:
    """Import the alias moves that are not here yet, in the order the source made them; return how many."""
    todo = []
    for rec in histories:
        todo += [(rec["name"], rec["alias"], m) for m in _new_moves(conn, rec)]
    for name, alias, move in sorted(todo, key=lambda t: t[2]["audit_seq"]):
        _import_move(conn, actor, name, alias, move, bundle_id)
    return len(todo)


def _new_moves(conn: sa.Connection, rec: dict) -> list[dict]:
    """The bundle's moves of one alias that this store lacks; refuses a history that diverged."""
    moves = registry.model_alias_moves
    here = [tuple(getattr(r, c) for c in MOVE_KEY) for r in conn.execute(
        sa.select(moves).where(moves.c.name == rec["name"], moves.c.alias == rec["alias"])
        .order_by(moves.c.audit_seq))]
    theirs = [tuple(m[c] for c in MOVE_KEY) for m in rec["moves"]]
    if here == theirs[:len(here)]:
        return rec["moves"][len(here):]
    if theirs == here[:len(theirs)]:
        return []                           # this store has the bundle's history and moved the alias since
    raise Conflict(f"model:{rec['name']}@{rec['alias']} has a history here that differs from the bundle's (the two "
                   "stores moved it differently); nothing was imported.")


def _import_move(conn: sa.Connection, actor: str, name: str, alias: str, move: dict, bundle_id: str) -> None:
    """One move as a ``model.alias.import`` entry and its row, keeping its source's actor, time and digest."""
    target = f"model:{name}@{alias}"
    state = sealed.digest(alias_state(name, alias, move))
    seq = audit.append(conn, actor, "model.alias.import", target,
                       details={"from": _v(move["from_version"]), "to": _v(move["to_version"]),
                                "reason": move["reason"], "actor": move["actor"], "at": move["at"],
                                "imported_from": bundle_id, "source_seq": move["audit_seq"], "state": state})
    moves, aliases = registry.model_alias_moves, registry.model_aliases
    conn.execute(moves.insert().values(audit_seq=seq, name=name, alias=alias, **{c: move[c] for c in MOVE_KEY}))
    conn.execute(aliases.delete().where(aliases.c.name == name, aliases.c.alias == alias))
    if move["to_version"] is not None:
        conn.execute(aliases.insert().values(name=name, alias=alias, version=move["to_version"], set_at=move["at"],
                                             set_by=move["actor"], reason=move["reason"]))
    if sealed.state(conn, "alias", target, seq) != state:
        raise IntegrityError(f"The alias move of {target} (source entry {move['audit_seq']}) does not give "
                             "the state its source sealed; nothing was imported.")


def _v(version: int | None) -> str | None:
    return None if version is None else f"v{version}"


def _put(store: Store, data: layout.Member) -> None:
    """Store one object: bytes as they are, a large one copied through a scratch file in chunks."""
    if not isinstance(data, layout.Stream):
        store.objects.put_bytes(data)
        return
    with tempfile.TemporaryDirectory(dir=store.objects.make_scratch_dir(), prefix="bundle-") as tmp:
        path = Path(tmp) / "object"
        _copy(data, path)
        store.objects.put_file(path)


def _copy(data: layout.Member, path: Path) -> None:
    if isinstance(data, layout.Stream):
        with data.open() as src, open(path, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    else:
        path.write_bytes(data)


def _pem_key(members: dict[str, layout.Member]):  # noqa: ANN202 - an Ed25519PublicKey
    try:
        return serialization.load_pem_public_key(members[layout.PUBLIC_KEY])
    except (KeyError, ValueError):
        raise IntegrityError("The bundle carries no readable public key.",
                             hint="Give the store's key with --key store.pub.") from None


def _seals(members: dict[str, bytes]) -> dict[str, tuple[str, int, str]]:
    """target -> (action, source seq, state) of the latest sealing entry of each record inside."""
    out: dict[str, tuple[str, int, str]] = {}
    for name in sorted(n for n in members if n.startswith("audit/entries/")):
        e = json.loads(members[name])["entry"]
        kind = sealed.kind_of(e["action"], e["target"])
        state = (e.get("details") or {}).get("state")
        if kind and kind != "alias" and state:
            out[e["target"]] = (e["action"], e["seq"], state)
    return out


def _split_row(rec: dict) -> dict:
    """The split's row with its JSON columns in the key order its seal hashed (the text SQLite kept)."""
    raw = rec.get("sealed") or {}
    return {**rec["split"], **{c: json.loads(raw[c]) for c in ("params", "counts") if isinstance(raw.get(c), str)}}


def _sealed_here(conn: sa.Connection, target: str, state: str) -> bool:
    rows = conn.execute(sa.select(audit.audit_log.c.details).where(audit.audit_log.c.target == target)).scalars()
    return any(isinstance(d, dict) and d.get("state") == state for d in rows)


def _same_or_insert(conn: sa.Connection, table: sa.Table, row: dict, where: sa.ColumnElement) -> int:
    have = conn.execute(sa.select(table).where(where)).first()
    if have is None:
        conn.execute(table.insert().values(**row))
        return 1
    if json.loads(layout.dumps(dict(have._mapping))) != json.loads(layout.dumps(row)):
        raise Conflict(f"{table.name} record {row.get('id') or row.get('name')} already exists here with other "
                       "content; nothing was imported.")
    return 0


def _row(conn: sa.Connection, table: sa.Table, row: dict) -> int:
    return _same_or_insert(conn, table, row, table.c.id == row["id"])


def _refs(conn: sa.Connection, rows: list[dict]) -> int:
    n = 0
    for r in rows:
        n += _same_or_insert(conn, refs, r, sa.and_(refs.c.namespace == r["namespace"], refs.c.name == r["name"],
                                                    refs.c.version == r["version"]))
    return n


def _run(conn: sa.Connection, rec: dict) -> int:
    run = rec["run"]
    if not _same_or_insert(conn, runs, run, runs.c.id == run["id"]):
        return 0
    for a in rec["artifacts"]:
        conn.execute(artifacts.insert().values(**a))
    cols = rec["metric_columns"]
    points = [{"run_id": run["id"], **dict(zip(cols, p))} for p in rec["metrics"]]
    for i in range(0, len(points), 5000):
        conn.execute(metrics.insert(), points[i:i + 5000])
    latest = {}
    for p in points:
        latest[p["key"]] = (p["step"], p["value"], p["raw"])
    fields.record_latest(conn, run["id"], latest)
    fields.replace_section(conn, run["id"], "summary", run.get("summary") or {})
    fields.replace_section(conn, run["id"], "tags", run.get("tags") or {})
    return 1


def _fetch_code(store: Store, members: dict[str, layout.Member]) -> list[str]:
    """Fetch every git bundle inside into the store's repository; return the commits."""
    names = sorted(n for n in members if n.startswith("code/") and n.endswith(".bundle"))
    if not names:
        return []
    repo = store.root / workdir.STORE_REPO
    if not repo.is_dir():
        _git(store.root, "init", "--quiet", "--bare", str(repo))
    out = []
    for name in names:
        commit = name[len("code/"):-len(".bundle")]
        with tempfile.TemporaryDirectory(prefix="runlock-bundle-") as tmp:
            path = Path(tmp) / f"{commit}.bundle"
            _copy(members[name], path)
            _git(repo, "fetch", "--quiet", str(path), f"+refs/*:refs/runlock/imported/{commit}/*")
        if _git(repo, "cat-file", "-e", f"{commit}^{{commit}}", check=False).returncode != 0:
            raise IntegrityError(f"The git bundle {name} does not hold commit {commit}.")
        out.append(commit)
    return out


def _git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    try:
        p = subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=600)
    except FileNotFoundError:
        raise RunlockError("git is not installed, and importing a bundle's code needs it.",
                           hint="Install git.") from None
    if check and p.returncode != 0:
        raise RunlockError(f"`git {' '.join(args)}` failed: {p.stderr.decode(errors='replace').strip()}.")
    return p
