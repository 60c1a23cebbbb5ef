"""Signed checkpoints of the audit log: the tree size and Merkle root at a point, signed with the
store's Ed25519 key and mirrored outside the database (``.runlock/audit/checkpoints.jsonl``).

``runlock.auditlog.append`` records an unsigned checkpoint every ``CHECKPOINT_EVERY`` entries;
``sign_pending`` (run by a command that writes) and ``checkpoint`` (on demand) sign them, only
when the entries since the last signed checkpoint give the recorded root, so a log rewritten
together with its unsigned checkpoints is never signed. ``runlock.audit.verify`` checks them.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from runlock import authz, canonical, keys, merkle
from runlock.auditlog import audit_checkpoints, body_bytes, entry_hash, hex_id, iter_rows, record_checkpoint, size
from runlock.errors import InvalidInput, StoreError
from runlock.store import Store
from runlock.store.schema import store_info, utcnow

CHECKPOINT_SCHEMA = "runlock.checkpoint/v1"

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
            record_checkpoint(conn, n)
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
            if hex_id(merkle.frontier_root(frontier)) != base.root_hash:
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
    return hex_id(merkle.frontier_root(merkle.extend(frontier, leaves))) == root_hash


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
