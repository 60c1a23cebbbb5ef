"""The audit log: an append-only, hash-chained Merkle log of every write, with signed checkpoints.

Each entry holds a sequence number, time, actor, action, target, the digests of the target's
state before and after, the hash of the previous entry and its own hash. ``append`` runs inside
the caller's write transaction, so an entry exists exactly when the write it describes does, and
it first asks ``runlock.authz`` whether the actor may do this at all: the one permission check.

The entries are also the leaves of an RFC 6962 / 9162 Merkle tree (leaf = ``SHA-256(0x00 ||
canonical entry bytes)``, the same bytes ``entry_hash`` covers). Every ``CHECKPOINT_EVERY``
entries, ``append`` records a checkpoint (tree size + root) in the same transaction; checkpoints
are signed with the store's Ed25519 key (``sign_pending``, run whenever a store is opened, and
``checkpoint`` on demand) and mirrored to ``.runlock/audit/checkpoints.jsonl``. ``verify``
recomputes the chain and the tree, checks every checkpoint and its signature, and names the first
entry that was altered, removed, reordered or cut off. Nothing in runlock updates or deletes an
entry.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from runlock import authz, canonical, keys, merkle, sealed
from runlock.errors import Conflict, IntegrityError, InvalidInput, NotFound, StoreError
from runlock.hashing import digest_bytes
from runlock.store import Store
from runlock.store.schema import METADATA, TIME, store_info, utcnow

GENESIS = "sha256:" + "0" * 64
CHECKPOINT_EVERY = 256          # a power of two; also on demand with `runlock audit checkpoint`
CHECKPOINT_SCHEMA = "runlock.checkpoint/v1"
GATE_ACTIONS = ("gate.pass", "gate.override")
BODY_FIELDS = ("seq", "time", "actor", "action", "target", "before", "after", "details", "prev_hash")

audit_log = sa.Table(
    "audit_log", METADATA,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("time", TIME, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(300), nullable=False),
    sa.Column("before", sa.String(100), nullable=True),
    sa.Column("after", sa.String(100), nullable=True),
    sa.Column("details", sa.JSON, nullable=False, default=dict),
    sa.Column("prev_hash", sa.String(100), nullable=False),
    sa.Column("entry_hash", sa.String(100), nullable=False),
    sa.Index("ix_audit_target", "target"),
    sa.Index("ix_audit_actor", "actor"),
)

audit_checkpoints = sa.Table(
    "audit_checkpoints", METADATA,
    sa.Column("tree_size", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("root_hash", sa.String(100), nullable=False),
    sa.Column("frontier", sa.JSON, nullable=False),          # [[size, hex], ...]: extends the tree
    sa.Column("time", TIME, nullable=False),
    sa.Column("key_id", sa.String(100), nullable=True),
    sa.Column("signature", sa.Text, nullable=True),           # base64 Ed25519 over ``message``
    sa.Column("signed_at", TIME, nullable=True),
)


# -- entries -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    seq: int
    time: str
    actor: str
    action: str
    target: str
    before: str | None
    after: str | None
    details: dict
    prev_hash: str
    entry_hash: str

    def to_dict(self) -> dict:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


def entry_body(row: dict) -> dict:
    """The fields an entry's hash covers (everything but the hash itself)."""
    return {k: row[k] for k in BODY_FIELDS}


def body_bytes(row) -> bytes:  # noqa: ANN001  (a mapping or a Row)
    """Canonical bytes of an entry's body: what its hash and its Merkle leaf cover.

    Equal to ``canonical.dumps(entry_body(row))`` for rows read back from the database (plain
    JSON already), without re-normalising every value, which makes ``verify`` several times faster.
    """
    get = row.__getitem__ if isinstance(row, dict) else row._mapping.__getitem__
    return json.dumps({k: get(k) for k in BODY_FIELDS}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False).encode("utf-8")


def entry_hash(row: dict) -> str:
    return digest_bytes(canonical.dumps(entry_body(row)))


def append(conn: Connection, actor: str, action: str, target: str, *, before: str | None = None,
           after: str | None = None, details: dict | None = None) -> int:
    """Check the actor's permission, then append one entry in the caller's transaction; return
    its sequence number. Raises PermissionDenied (and writes nothing) when the actor may not."""
    details = canonical.normalize(details or {})
    authz.require(conn, actor, action, target, details)
    kind = sealed.kind_of(action, target)
    if kind is not None and "state" not in details:
        state = sealed.state_at_seal(conn, kind, target, actor, details)
        if state is not None:
            details = {**details, "state": state}
    if action == "model.alias" and authz.touches_production(action, target, details):
        subject = gate_subject(target, details)
        if subject is not None:
            _require_gate(conn, subject)
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("LOCK TABLE audit_log IN EXCLUSIVE MODE")
    last = conn.execute(sa.select(audit_log.c.seq, audit_log.c.entry_hash)
                        .order_by(audit_log.c.seq.desc()).limit(1)).first()
    row = {"seq": (last.seq + 1) if last else 1, "time": utcnow(), "actor": actor, "action": action,
           "target": target, "before": before, "after": after, "details": details,
           "prev_hash": last.entry_hash if last else GENESIS}
    row["entry_hash"] = entry_hash(row)
    conn.execute(audit_log.insert(), row)
    if row["seq"] % CHECKPOINT_EVERY == 0:
        _record_checkpoint(conn, row["seq"])
    return row["seq"]


def gate_subject(target: str, details: dict) -> str | None:
    """The model version an alias move points at (``model:NAME@vN``), or None for a removal.

    The registry records a move as target ``model:NAME@ALIAS`` with ``details["to"] = "vN"``.
    """
    to = details.get("to", details.get("version"))
    if to is None:
        return None
    name = target.split("@", 1)[0]
    return to if str(to).startswith("model:") else f"{name}@{to if str(to).startswith('v') else f'v{to}'}"


def _require_gate(conn: Connection, subject: str) -> None:
    passed = conn.execute(sa.select(audit_log.c.seq).where(
        audit_log.c.target == subject, audit_log.c.action.in_(GATE_ACTIONS)).limit(1)).first()
    if passed is None:
        raise Conflict(f"{subject} has not passed the production gate.",
                       hint=f"Run `runlock attest gate {subject} --attestation FILE` (an admin may add "
                            "--override REASON).")


def log(store: Store, *, target: str | None = None, actor: str | None = None, action: str | None = None,
        limit: int | None = 100, after_seq: int = 0) -> list[Entry]:
    """Entries matching every filter given, oldest first (the last ``limit`` of them)."""
    q = sa.select(audit_log).where(audit_log.c.seq > after_seq)
    if target:
        q = q.where(audit_log.c.target == target)
    if actor:
        q = q.where(audit_log.c.actor == actor)
    if action:
        literal = action.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")   # only * is a wildcard
        q = q.where(audit_log.c.action.like(literal.replace("*", "%"), escape="\\"))
    q = q.order_by(audit_log.c.seq.desc())
    if limit:
        q = q.limit(limit)
    with store.db.read() as conn:
        return [_entry(r) for r in reversed(conn.execute(q).all())]


def get(store: Store, seq: int) -> Entry:
    with store.db.read() as conn:
        row = conn.execute(sa.select(audit_log).where(audit_log.c.seq == seq)).first()
    if row is None:
        raise NotFound("audit entry", str(seq), hint="List entries with `runlock audit log`.")
    return _entry(row)


def _entry(row: sa.Row) -> Entry:
    return Entry(**{k: row._mapping[k] for k in Entry.__dataclass_fields__})


def size(conn: Connection) -> int:
    return conn.execute(sa.select(sa.func.coalesce(sa.func.max(audit_log.c.seq), 0))).scalar()


def iter_rows(conn: Connection, start: int = 0, stop: int | None = None) -> Iterator[sa.Row]:
    """Entries with ``start < seq <= stop`` in order, streamed."""
    q = sa.select(audit_log).where(audit_log.c.seq > start).order_by(audit_log.c.seq)
    if stop is not None:
        q = q.where(audit_log.c.seq <= stop)
    yield from conn.execute(q.execution_options(yield_per=5000))


# -- checkpoints -------------------------------------------------------------------------
@dataclass(frozen=True)
class Checkpoint:
    tree_size: int
    root_hash: str
    time: str
    key_id: str | None = None
    signature: str | None = None
    signed_at: str | None = None
    store_id: str | None = None

    def message(self) -> bytes:
        """The bytes the store's key signs."""
        return canonical.dumps({"schema": CHECKPOINT_SCHEMA, "store": self.store_id,
                                "tree_size": self.tree_size, "root": self.root_hash, "time": self.time})

    def signature_ok(self, key: keys.PublicKey) -> bool:
        if not self.signature or self.key_id != key.keyid:
            return False
        try:
            return key.verify(base64.b64decode(self.signature, validate=True), self.message())
        except ValueError:
            return False

    def to_dict(self) -> dict:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


def _record_checkpoint(conn: Connection, tree_size: int) -> None:
    """Insert an (unsigned) checkpoint at ``tree_size``, extending the latest earlier one."""
    prev = conn.execute(sa.select(audit_checkpoints.c.tree_size, audit_checkpoints.c.frontier)
                        .where(audit_checkpoints.c.tree_size < tree_size)
                        .order_by(audit_checkpoints.c.tree_size.desc()).limit(1)).first()
    frontier = merkle.frontier_from_json(prev.frontier) if prev else []
    start = prev.tree_size if prev else 0
    leaves = (merkle.leaf_hash(body_bytes(r)) for r in iter_rows(conn, start, tree_size))
    frontier = merkle.extend(frontier, leaves)
    conn.execute(audit_checkpoints.insert().values(
        tree_size=tree_size, root_hash=_hex_id(merkle.frontier_root(frontier)),
        frontier=merkle.frontier_to_json(frontier), time=utcnow(),
        key_id=None, signature=None, signed_at=None))


def checkpoint(store: Store) -> Checkpoint:
    """Record and sign a checkpoint at the log's current size (on demand). Raises StoreError
    where this client holds no copy of the store's key (another client of its database)."""
    keys.ensure(store)

    def write(conn: Connection) -> int:
        authz.require(conn, store.actor, "audit.checkpoint", "audit")
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("LOCK TABLE audit_log IN EXCLUSIVE MODE")
        n = size(conn)
        if n == 0:
            raise InvalidInput("The audit log is empty; there is nothing to checkpoint yet.")
        exists = conn.execute(sa.select(audit_checkpoints.c.tree_size)
                              .where(audit_checkpoints.c.tree_size == n)).first()
        if exists is None:
            _record_checkpoint(conn, n)
        return n

    n = store.db.run_write(write)
    sign_pending(store, create_key=True)
    return next(c for c in checkpoints(store) if c.tree_size == n)


def sign_pending(store: Store, *, create_key: bool = False) -> int:
    """Sign every unsigned checkpoint with the store's key; return how many were signed.

    Without the key (another account's store, another client's key, or none yet and
    ``create_key`` false), or when the actor may not checkpoint (a viewer), it does nothing: the
    checkpoints stay recorded, and are signed by the next process that may. A checkpoint is
    signed only when the entries since the last signed checkpoint give its root, so a log
    rewritten together with its unsigned checkpoints is never signed.
    """
    with store.db.read() as conn:
        pending = conn.execute(sa.select(audit_checkpoints).where(audit_checkpoints.c.signature.is_(None))
                               .order_by(audit_checkpoints.c.tree_size)).all()
        may = authz.allowed(conn, store.actor, "audit.checkpoint", "audit")
    if not pending or not may:
        return 0
    try:
        key = keys.ensure(store) if create_key else keys.signer(store)
    except StoreError:
        return 0
    if key is None:
        return 0
    sid = _store_id(store)
    signed = []
    for r in pending:
        if not _extends_signed(store, r.tree_size, r.root_hash, key.public):
            continue
        cp = Checkpoint(r.tree_size, r.root_hash, r.time, key.keyid, None, utcnow(), sid)
        cp = Checkpoint(**{**cp.to_dict(), "signature": base64.b64encode(key.sign(cp.message())).decode()})
        if store.db.run_write(lambda conn, cp=cp: conn.execute(
                audit_checkpoints.update().where(audit_checkpoints.c.tree_size == cp.tree_size,
                                                 audit_checkpoints.c.signature.is_(None))
                .values(key_id=cp.key_id, signature=cp.signature, signed_at=cp.signed_at)).rowcount):
            signed.append(cp)
    _mirror(store, signed)
    if signed:
        _note_signed(store, max(signed, key=lambda c: c.tree_size))
    return len(signed)


# The signer's own memory of the last checkpoint it signed, in the key's folder (the key holder
# only, 0600): a log rewritten with its checkpoints and mirror deleted by someone who can write
# the database but not the key is never signed afterwards, and verify names the loss.
SIGNED_NOTE = "last-signed-checkpoint.json"


def signed_note(store: Store) -> tuple[int, str] | None:
    """(tree size, root) of the last checkpoint this store's key signed here, if readable."""
    try:
        doc = json.loads((keys.keys_dir(store) / SIGNED_NOTE).read_text())
        return int(doc["tree_size"]), str(doc["root_hash"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _note_signed(store: Store, cp: Checkpoint) -> None:
    have = signed_note(store)
    if have is not None and have[0] >= cp.tree_size:
        return
    path = keys.keys_dir(store) / SIGNED_NOTE
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"tree_size": cp.tree_size, "root_hash": cp.root_hash}, f)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)    # a memory, not the record: the checkpoint itself is signed


def _extends_signed(store: Store, tree_size: int, root_hash: str, key: keys.PublicKey) -> bool:
    """Do the entries after the last validly signed checkpoint below ``tree_size`` lead from its
    root to ``root_hash``? (From the empty tree when nothing below is signed.)"""
    signed = [c for c in [*checkpoints(store), *mirrored_checkpoints(store)]
              if c.tree_size < tree_size and c.signature_ok(key)]
    base = max(signed, key=lambda c: c.tree_size, default=None)
    note = signed_note(store)
    if note is not None and (note[0] == tree_size and note[1] != root_hash or note[0] < tree_size and not any(
            c.tree_size == note[0] and c.root_hash == note[1] for c in signed)):
        return False      # the last checkpoint this key signed is gone: the history was rewritten
    with store.db.read() as conn:
        frontier: merkle.Frontier = []
        if base is not None:
            row = conn.execute(sa.select(audit_checkpoints.c.frontier)
                               .where(audit_checkpoints.c.tree_size == base.tree_size)).first()
            if row is None:
                return False
            frontier = merkle.frontier_from_json(row.frontier)
            if _hex_id(merkle.frontier_root(frontier)) != base.root_hash:
                return False
        prev = None
        leaves = []
        for r in iter_rows(conn, base.tree_size if base else 0, tree_size):
            if entry_hash(dict(r._mapping)) != r.entry_hash or (prev is not None and r.prev_hash != prev):
                return False
            prev = r.entry_hash
            leaves.append(merkle.leaf_hash(body_bytes(r)))
    if len(leaves) != tree_size - (base.tree_size if base else 0):
        return False
    return _hex_id(merkle.frontier_root(merkle.extend(frontier, leaves))) == root_hash


def checkpoints(store: Store) -> list[Checkpoint]:
    """Checkpoints recorded in the database, oldest first."""
    sid = _store_id(store)
    with store.db.read() as conn:
        rows = conn.execute(sa.select(audit_checkpoints).order_by(audit_checkpoints.c.tree_size)).all()
    return [Checkpoint(r.tree_size, r.root_hash, r.time, r.key_id, r.signature, r.signed_at, sid) for r in rows]


def mirror_path(store: Store) -> Path:
    return store.root / "audit" / "checkpoints.jsonl"


def mirrored_checkpoints(store: Store) -> list[Checkpoint]:
    """Signed checkpoints kept outside the database (one JSON object a line)."""
    try:
        lines = mirror_path(store).read_text().splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            out.append(Checkpoint(**json.loads(line)))
        except (ValueError, TypeError):
            continue   # a torn last line from a crash; verify still checks every good one
    return out


def _mirror(store: Store, signed: list[Checkpoint]) -> None:
    if not signed:
        return
    path = mirror_path(store)
    try:
        if not path.parent.is_dir():
            store.modes.make_dir(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(fd, store.modes.file)
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            for cp in signed:
                f.write(json.dumps(cp.to_dict(), sort_keys=True) + "\n")
    except OSError as e:
        raise StoreError(f"Cannot write the checkpoint mirror {path}: {e.strerror}.") from e


def _store_id(store: Store) -> str | None:
    with store.db.read() as conn:
        return conn.execute(sa.select(store_info.c.value).where(store_info.c.key == "store_id")).scalar()


def _hex_id(h: bytes) -> str:
    return f"sha256:{h.hex()}"


# -- verify ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    seq: int | None
    kind: str       # altered | removed | reordered | rewritten | truncated | checkpoint
    message: str

    def to_dict(self) -> dict:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


@dataclass(frozen=True)
class VerifyReport:
    entries: int
    root_hash: str
    checkpoints_checked: int
    signed_checkpoints: int
    key_id: str | None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad(self) -> int | None:
        seqs = [p.seq for p in self.problems if p.seq is not None]
        return min(seqs) if seqs else None

    def to_dict(self) -> dict:
        return {"ok": self.ok, "entries": self.entries, "root_hash": self.root_hash,
                "checkpoints_checked": self.checkpoints_checked, "signed_checkpoints": self.signed_checkpoints,
                "key_id": self.key_id, "first_bad": self.first_bad,
                "problems": [p.to_dict() for p in self.problems]}


MAX_PROBLEMS = 50
REORDER_WINDOW = 256


def verify(store: Store, *, key: keys.PublicKey | None = None, deep: bool = False,
           progress: Callable[[int], None] | None = None) -> VerifyReport:
    """Recompute the chain and the Merkle tree, and check every checkpoint against them.

    ``key`` is the public key to trust (default: the one the store records, else its local
    key). Finds: an altered entry, a removed one, two swapped, entries cut off the end (against
    a checkpoint), history rewritten with a recomputed chain (against a signed checkpoint), a
    checkpoint altered or signed by another key, a required checkpoint (one every
    ``CHECKPOINT_EVERY`` entries) missing or unsigned, and a ``gate.pass`` whose attestation does
    not verify for its version. ``deep`` also recomputes every sealed record's state
    (``runlock.sealed``) and names each one that differs from its audit entry.
    """
    problems: list[Problem] = []
    if key is None:
        key = keys.trusted(store)
        own = keys.load(store)
        if own is not None and key is not None and own.keyid != key.keyid:
            problems.append(Problem(None, "checkpoint", f"The local signing key {own.keyid} is not the key the "
                                                        f"database records ({key.keyid})."))
    cps = _all_checkpoints(store, key, problems)
    note = signed_note(store)
    with store.db.read() as conn:
        n, frontier, roots = _walk(conn, set(cps) | ({note[0]} if note else set()), problems, progress)
        problems += gate_problems(store, conn, key)
        if deep:
            problems += sealed_problems(conn)
    for m in range(CHECKPOINT_EVERY, n + 1, CHECKPOINT_EVERY):
        cp = cps.get(m)
        if cp is None:
            problems.append(Problem(m, "checkpoint", f"Checkpoint {m} is missing from the database and the mirror: "
                                                     "checkpoints were deleted (the log may have been rewritten)."))
        elif not cp.signature:
            problems.append(Problem(m, "unsigned", f"Checkpoint {m} is not signed; sign it where the store's key "
                                                   "is kept (`runlock audit checkpoint`)."))
    beyond = [s for s in sorted(cps) if s > n]
    if beyond:
        problems.append(Problem(n + 1, "truncated",
                                f"Entries {n + 1}..{beyond[-1]} are missing: the log ends at entry {n}, "
                                f"but checkpoint {beyond[-1]} recorded {beyond[-1]} entries."))
    last_good = 0
    for size_ in sorted(s for s in roots if s in cps):
        if roots[size_] != cps[size_].root_hash:
            # "chain recomputed" only when the chain itself shows no break in that range
            broken = any(p.kind in {"altered", "removed", "reordered"} and p.seq is not None
                         and last_good < p.seq <= size_ for p in problems)
            problems.append(Problem(last_good + 1, "rewritten",
                                    f"The first {size_} entries do not give checkpoint {size_}'s root: an entry "
                                    f"between {last_good + 1} and {size_} was changed"
                                    + ("." if broken else " and the chain recomputed.")))
            break
        last_good = size_
    if note is not None and (note[0] > n or roots.get(note[0], note[1]) != note[1]):
        problems.append(Problem(None, "rewritten" if note[0] <= n else "truncated",
                                f"The last checkpoint this store's key signed ({note[0]} entries, root "
                                f"{note[1][:23]}…) no longer matches the log: it was rewritten or cut off."))
    signed = sum(1 for cp in cps.values() if key is not None and cp.signature_ok(key))
    return VerifyReport(n, _hex_id(merkle.frontier_root(frontier)), len(cps), signed,
                        key.keyid if key else None, _first_per_seq(problems))


def sealed_problems(conn: Connection) -> list[Problem]:
    """Every sealed record whose state no longer matches the digest its audit entry recorded."""
    return [Problem(None, "sealed", m) for m in sealed.changed(conn)]


def gate_problems(store: Store, conn: Connection, key: keys.PublicKey | None) -> list[Problem]:
    """Every ``gate.pass`` whose kept attestation does not let that exact version through."""
    return [Problem(None, "gate", m) for m in sealed.gate_failures(store, conn, key)]


require_sealed = sealed.require     # the commands that serve a record call it before any effect


def _all_checkpoints(store: Store, key: keys.PublicKey | None, problems: list[Problem]) -> dict[int, Checkpoint]:
    """Checkpoints from the database and the mirror, by size; bad signatures become problems."""
    out: dict[int, Checkpoint] = {}
    for cp in [*checkpoints(store), *mirrored_checkpoints(store)]:
        have = out.get(cp.tree_size)
        if have is not None and have.signature and cp.signature and have.root_hash != cp.root_hash:
            problems.append(Problem(None, "checkpoint", f"Checkpoint {cp.tree_size} differs between the database "
                                                        "and the mirror file: one of them was altered."))
        if cp.signature and key is not None and not cp.signature_ok(key):
            who = "another key" if cp.key_id != key.keyid else "a signature that does not match it"
            problems.append(Problem(None, "checkpoint", f"Checkpoint {cp.tree_size} carries {who}: "
                                                        "it was altered or forged."))
            continue
        if have is None or (cp.signature and not have.signature):
            out[cp.tree_size] = cp
    return out


def _walk(conn: Connection, sizes: set[int], problems: list[Problem],
          progress: Callable[[int], None] | None) -> tuple[int, merkle.Frontier, dict[int, str]]:
    """Stream every entry: check seq, own hash and link; extend the tree; note roots at checkpoints."""
    frontier: merkle.Frontier = []
    roots: dict[int, str] = {}
    expected, prev, n = 1, GENESIS, 0
    for r in iter_rows(conn):
        data = body_bytes(r)
        own = digest_bytes(data)
        if r.seq != expected and len(problems) < MAX_PROBLEMS:
            problems.append(Problem(expected, "removed", f"Entry {expected}"
                                    + (f"..{r.seq - 1} were" if r.seq - 1 > expected else " was")
                                    + f" removed: the log goes from {expected - 1} to {r.seq}."))
        elif own != r.entry_hash and len(problems) < MAX_PROBLEMS:
            problems.append(_altered(r))
        elif r.prev_hash != prev and len(problems) < MAX_PROBLEMS:
            problems.append(Problem(r.seq - 1, "altered",
                                    f"Entry {r.seq - 1} was altered or replaced: entry {r.seq} points at "
                                    "a different previous entry."))
        frontier = merkle.extend(frontier, [merkle.leaf_hash(data)])
        prev, expected, n = r.entry_hash, r.seq + 1, n + 1
        if n in sizes:
            roots[n] = _hex_id(merkle.frontier_root(frontier))
        if progress is not None and n % 10_000 == 0:
            progress(n)
    if progress is not None:
        progress(n)
    return n, frontier, roots


def _altered(r: sa.Row) -> Problem:
    """An entry whose hash does not match its fields: altered, or moved from another position
    (its hash matches its fields under another sequence number near by)."""
    row = dict(r._mapping)
    for origin in sorted(range(max(1, r.seq - REORDER_WINDOW), r.seq + REORDER_WINDOW), key=lambda s: abs(s - r.seq)):
        if origin != r.seq and entry_hash({**row, "seq": origin}) == r.entry_hash:
            return Problem(r.seq, "reordered", f"Entry {r.seq} holds entry {origin}: entries were reordered.")
    return Problem(r.seq, "altered", f"Entry {r.seq} was altered: its fields no longer match its hash.")


def _first_per_seq(problems: list[Problem]) -> list[Problem]:
    seen, out = set(), []
    for p in sorted(problems, key=lambda p: (p.seq is None, p.seq or 0)):
        if p.seq is None or p.seq not in seen:
            out.append(p)
            seen.add(p.seq)
    return out


# -- proofs ------------------------------------------------------------------------------
@dataclass(frozen=True)
class InclusionProof:
    entry: dict
    leaf_index: int
    tree_size: int
    path: list[str]
    checkpoint: dict

    def to_dict(self) -> dict:
        return {"schema": "runlock.audit-proof/v1", **{f: getattr(self, f) for f in self.__dataclass_fields__}}


def proof(store: Store, seq: int) -> InclusionProof:
    """An inclusion proof of entry ``seq`` against the latest signed checkpoint covering it."""
    entry = get(store, seq)
    signed = [c for c in checkpoints(store) if c.signature and c.tree_size >= seq]
    cp = signed[-1] if signed else checkpoint(store)
    with store.db.read() as conn:
        leaves = [merkle.leaf_hash(body_bytes(r)) for r in iter_rows(conn, 0, cp.tree_size)]
    if len(leaves) != cp.tree_size or _hex_id(merkle.root(leaves)) != cp.root_hash:
        raise IntegrityError(f"The audit log no longer matches checkpoint {cp.tree_size}.",
                             hint="Run `runlock audit verify` to find the entry that changed.")
    path = [h.hex() for h in merkle.inclusion_proof(leaves, seq - 1)]
    return InclusionProof(entry.to_dict(), seq - 1, cp.tree_size, path, cp.to_dict())


@dataclass(frozen=True)
class ProofCheck:
    ok: bool
    seq: int | None
    tree_size: int | None
    reasons: list[str]

    def to_dict(self) -> dict:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


def check_proof(data: dict, key: keys.PublicKey) -> ProofCheck:
    """Check a proof written by ``proof`` offline: the checkpoint's signature, the entry's own
    hash, and its audit path to the signed root. Needs no store."""
    reasons: list[str] = []
    try:
        entry, cp = data["entry"], Checkpoint(**data["checkpoint"])
        path = [bytes.fromhex(h) for h in data["path"]]
        index, size_ = int(data["leaf_index"]), int(data["tree_size"])
        body = canonical.dumps(entry_body(entry))
    except (KeyError, TypeError, ValueError, InvalidInput) as e:
        return ProofCheck(False, None, None, [f"not a runlock audit proof ({e})"])
    if not cp.signature_ok(key):
        reasons.append("the checkpoint is not signed by this key")
    if size_ != cp.tree_size:
        reasons.append("the proof's tree size differs from its checkpoint's")
    if digest_bytes(body) != entry.get("entry_hash"):
        reasons.append("the entry's fields do not match its hash")
    root = bytes.fromhex(cp.root_hash.split(":", 1)[1])
    if not merkle.verify_inclusion(merkle.leaf_hash(body), index, size_, path, root):
        reasons.append("the audit path does not lead to the checkpoint's root")
    if index != entry.get("seq", 0) - 1:
        reasons.append("the leaf index does not match the entry's sequence number")
    return ProofCheck(not reasons, entry.get("seq"), size_, reasons)
