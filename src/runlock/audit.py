"""The audit log: an append-only, hash-chained record of every write.

Each entry holds a sequence number, time, actor, action, target, the digests of the target's
state before and after, the hash of the previous entry and its own hash. ``append`` runs inside
the caller's write transaction, so an entry exists exactly when the write it describes does.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from runlock import canonical
from runlock.hashing import digest_bytes
from runlock.store.schema import METADATA, TIME, utcnow

GENESIS = "sha256:" + "0" * 64

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


def entry_body(row: dict) -> dict:
    """The fields an entry's hash covers (everything but the hash itself)."""
    return {k: row[k] for k in ("seq", "time", "actor", "action", "target", "before", "after",
                                "details", "prev_hash")}


def entry_hash(row: dict) -> str:
    return digest_bytes(canonical.dumps(entry_body(row)))


def append(conn: Connection, actor: str, action: str, target: str, *, before: str | None = None,
           after: str | None = None, details: dict | None = None) -> int:
    """Append one entry in the caller's transaction; return its sequence number."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("LOCK TABLE audit_log IN EXCLUSIVE MODE")
    last = conn.execute(sa.select(audit_log.c.seq, audit_log.c.entry_hash)
                        .order_by(audit_log.c.seq.desc()).limit(1)).first()
    row = {"seq": (last.seq + 1) if last else 1, "time": utcnow(), "actor": actor, "action": action,
           "target": target, "before": before, "after": after,
           "details": canonical.normalize(details or {}),
           "prev_hash": last.entry_hash if last else GENESIS}
    row["entry_hash"] = entry_hash(row)
    conn.execute(audit_log.insert().values(**row))
    return row["seq"]
