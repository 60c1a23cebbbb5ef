"""The audit log: an append-only, hash-chained Merkle log of every write, with signed checkpoints.

Each entry holds a sequence number, time, actor, action, target, the digests of the target's
state before and after, the hash of the previous entry and its own hash. ``append`` runs inside
the caller's write transaction, so an entry exists exactly when the write it describes does, and
it first asks ``runlock.authz`` whether the actor may do this at all: the one permission check.

The entries are also the leaves of an RFC 6962 / 9162 Merkle tree (leaf = ``SHA-256(0x00 ||
canonical entry bytes)``, the same bytes ``entry_hash`` covers). Every ``CHECKPOINT_EVERY``
entries, ``append`` records a checkpoint (tree size + root) in the same transaction; checkpoints
are signed with the store's Ed25519 key (``sign_pending``, run by a command that writes, and
``checkpoint`` on demand) and mirrored to ``.runlock/audit/checkpoints.jsonl``. ``verify``
recomputes the chain and the tree, checks every checkpoint and its signature, and names the first
entry that was altered, removed, reordered or cut off. Nothing in runlock updates or deletes an
entry.

Three modules, imported one way: ``runlock.auditlog`` (entries: append, read) <-
``runlock.checkpoints`` (sign, mirror) <- this one (verify, inclusion proofs), which also
re-exports the names of the other two, so ``from runlock import audit`` serves every caller.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from runlock import canonical, keys, merkle, sealed
from runlock.auditlog import (BODY_FIELDS, CHECKPOINT_EVERY, GATE_ACTIONS, GENESIS, Entry,  # noqa: F401 (re-exported)
                              append, audit_checkpoints, audit_log, body_bytes, entry_body, entry_hash,
                              gate_subject, get, hex_id, iter_rows, log, size)
from runlock.checkpoints import (CHECKPOINT_SCHEMA, SIGNED_NOTE, Checkpoint, checkpoint,  # noqa: F401 (re-exported)
                                 checkpoints, mirror_path, mirrored_checkpoints, sign_pending, signed_note)
from runlock.errors import IntegrityError, InvalidInput
from runlock.hashing import digest_bytes
from runlock.store import Store


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
    return VerifyReport(n, hex_id(merkle.frontier_root(frontier)), len(cps), signed,
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
            roots[n] = hex_id(merkle.frontier_root(frontier))
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
    if len(leaves) != cp.tree_size or hex_id(merkle.root(leaves)) != cp.root_hash:
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
