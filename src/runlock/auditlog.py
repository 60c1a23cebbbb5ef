"""The audit log's entries: an append-only, hash-chained log of every write (see ``runlock.audit``).

Each entry holds a sequence number, time, actor, action, target, the digests of the target's
state before and after, the hash of the previous entry and its own hash. ``append`` runs inside
the caller's write transaction, so an entry exists exactly when the write it describes does, and
it first asks ``runlock.authz`` whether the actor may do this at all: the one permission check.
Every ``CHECKPOINT_EVERY`` entries it records an unsigned checkpoint (tree size + RFC 6962 root)
in the same transaction; ``runlock.checkpoints`` signs them. Nothing in runlock updates or
deletes an entry.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from runlock import authz, canonical, merkle, sealed
from runlock.errors import Conflict, NotFound
from runlock.hashing import digest_bytes
from runlock.store import Store
from runlock.store.schema import METADATA, TIME, utcnow

GENESIS = "sha256:" + "0" * 64
CHECKPOINT_EVERY = 256          # a power of two; also on demand with `runlock audit checkpoint`
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
        record_checkpoint(conn, row["seq"])
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
        limit: int | None = 100, after_seq: int = 0, before_seq: int | None = None) -> list[Entry]:
    """Entries matching every filter given, oldest first (the last ``limit`` of them); only
    ``after_seq < seq < before_seq`` (the web UI pages back with ``before_seq``)."""
    q = sa.select(audit_log).where(audit_log.c.seq > after_seq)
    if before_seq is not None:
        q = q.where(audit_log.c.seq < before_seq)
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
        return [entry_from_row(r) for r in reversed(conn.execute(q).all())]


def get(store: Store, seq: int) -> Entry:
    with store.db.read() as conn:
        row = conn.execute(sa.select(audit_log).where(audit_log.c.seq == seq)).first()
    if row is None:
        raise NotFound("audit entry", str(seq), hint="List entries with `runlock audit log`.")
    return entry_from_row(row)


def entry_from_row(row: sa.Row) -> Entry:
    """An audit log row as an ``Entry``."""
    return Entry(**{k: row._mapping[k] for k in Entry.__dataclass_fields__})


def size(conn: Connection) -> int:
    return conn.execute(sa.select(sa.func.coalesce(sa.func.max(audit_log.c.seq), 0))).scalar()


def iter_rows(conn: Connection, start: int = 0, stop: int | None = None) -> Iterator[sa.Row]:
    """Entries with ``start < seq <= stop`` in order, streamed."""
    q = sa.select(audit_log).where(audit_log.c.seq > start).order_by(audit_log.c.seq)
    if stop is not None:
        q = q.where(audit_log.c.seq <= stop)
    yield from conn.execute(q.execution_options(yield_per=5000))


def record_checkpoint(conn: Connection, tree_size: int) -> None:
    """Insert an (unsigned) checkpoint at ``tree_size``, extending the latest earlier one."""
    prev = conn.execute(sa.select(audit_checkpoints.c.tree_size, audit_checkpoints.c.frontier)
                        .where(audit_checkpoints.c.tree_size < tree_size)
                        .order_by(audit_checkpoints.c.tree_size.desc()).limit(1)).first()
    frontier = merkle.frontier_from_json(prev.frontier) if prev else []
    start = prev.tree_size if prev else 0
    leaves = (merkle.leaf_hash(body_bytes(r)) for r in iter_rows(conn, start, tree_size))
    frontier = merkle.extend(frontier, leaves)
    conn.execute(audit_checkpoints.insert().values(
        tree_size=tree_size, root_hash=hex_id(merkle.frontier_root(frontier)),
        frontier=merkle.frontier_to_json(frontier), time=utcnow(),
        key_id=None, signature=None, signed_at=None))



def hex_id(h: bytes) -> str:
    return f"sha256:{h.hex()}"
